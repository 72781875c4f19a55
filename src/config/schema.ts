// The shape of soma-verify.config.yaml / .json. Store services and custom checks carry the
// options of their check kind, which that kind's own schema validates at plan time.
import * as v from 'valibot';
import { checkDuration } from './duration.js';
import { isHttpUrl } from '../check-options.js';
import { PROJECTS_WITH_REQUIREMENTS } from '../stack/requirements.js';

/** 500, "500ms", "5s", "1.5m": milliseconds. */
export const duration = v.pipe(
  v.union([v.number(), v.string()], 'expected a duration like 500ms, 5s or 1m'),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const checked = checkDuration(dataset.value);
    if ('ms' in checked) return checked.ms;
    addIssue({ message: checked.problem });
    return NEVER;
  }),
);

export const tlsOptions = v.strictObject({ caFile: v.optional(v.string()), insecure: v.optional(v.boolean(), false) });

const httpUrl = v.pipe(v.string(), v.check(isHttpUrl, 'not an http(s) URL'));

/** SomaBrain, SomaFractalMemory and the SomaAgent01 gateway. */
export const httpService = v.strictObject({
  url: httpUrl,
  token: v.optional(v.string()),
  generation: v.optional(v.picklist(['gen1', 'gen2', 'auto']), 'auto'),
  timeout: v.optional(duration),
  metrics: v.optional(v.boolean(), true),
  tls: v.optional(tlsOptions),
});

/**
 * Postgres, Redis, Kafka, Qdrant, OPA: the options of their check kind, plus a timeout, and the
 * projects whose needs (topics, groups, tables) the store must meet.
 */
export const storeService = v.looseObject({
  timeout: v.optional(duration),
  requiredBy: v.optional(v.array(v.picklist(PROJECTS_WITH_REQUIREMENTS))),
});

export const customCheck = v.looseObject({
  id: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.:/-]+$/, 'ids use letters, digits and . _ : / -')),
  kind: v.pipe(v.string(), v.minLength(1)),
  service: v.optional(v.string()),
  dependsOn: v.optional(v.array(v.string())),
  timeout: v.optional(duration),
});

export const environment = v.strictObject({
  services: v.optional(
    v.strictObject({
      somabrain: v.optional(httpService),
      sfm: v.optional(httpService),
      gateway: v.optional(httpService),
      postgres: v.optional(storeService),
      redis: v.optional(storeService),
      kafka: v.optional(storeService),
      qdrant: v.optional(storeService),
      opa: v.optional(storeService),
    }),
    {},
  ),
  checks: v.optional(v.array(customCheck), []),
  /** Run the smoke scenarios by default (--no-smoke turns them off); `{ timeout }` sets their budget. */
  smoke: v.optional(v.union([v.boolean(), v.strictObject({ timeout: v.optional(duration) })], 'expected true, false or { timeout: 45s }'), false),
});

export const configFile = v.strictObject({
  plugins: v.optional(v.array(v.string()), []),
  defaults: v.optional(
    v.strictObject({
      timeout: v.optional(duration),
      deadline: v.optional(duration),
      concurrency: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
    }),
    {},
  ),
  environments: v.record(v.string(), environment),
});

export type HttpServiceConfig = v.InferOutput<typeof httpService>;
export type StoreServiceConfig = v.InferOutput<typeof storeService>;
export type CustomCheckConfig = v.InferOutput<typeof customCheck>;
export type EnvironmentConfig = v.InferOutput<typeof environment>;
export type ConfigFile = v.InferOutput<typeof configFile>;
export type ServiceName = keyof EnvironmentConfig['services'];
