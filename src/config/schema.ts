// The shape of soma-verify.config.yaml / .json. Store services and custom checks carry the
// options of their check kind, which that kind's own schema validates at plan time.
import * as z from 'zod';
import { checkDuration } from './duration.js';
import { PROJECTS_WITH_REQUIREMENTS } from '../stack/requirements.js';

// Each schema parses a handful of values per run: compiling it into a function first costs more.
z.config({ jitless: true });

/** 500, "500ms", "5s", "1.5m": milliseconds. */
export const duration = z.union([z.number().positive(), z.string()]).transform((value, ctx) => {
  const checked = checkDuration(value);
  if ('problem' in checked) {
    ctx.addIssue({ code: 'custom', message: checked.problem });
    return z.NEVER;
  }
  return checked.ms;
});

export const tlsOptions = z
  .object({ caFile: z.string().optional(), insecure: z.boolean().default(false) })
  .strict();

const httpUrl = z.url({ protocol: /^https?$/, error: 'not an http(s) URL' });

/** SomaBrain, SomaFractalMemory and the SomaAgent01 gateway. */
export const httpService = z
  .object({
    url: httpUrl,
    token: z.string().optional(),
    generation: z.enum(['gen1', 'gen2', 'auto']).default('auto'),
    timeout: duration.optional(),
    metrics: z.boolean().default(true),
    tls: tlsOptions.optional(),
  })
  .strict();

/**
 * Postgres, Redis, Kafka, Qdrant, OPA: the options of their check kind, plus a timeout, and the
 * projects whose needs (topics, groups, tables) the store must meet.
 */
export const storeService = z.looseObject({
  timeout: duration.optional(),
  requiredBy: z.array(z.enum(PROJECTS_WITH_REQUIREMENTS)).optional(),
});

export const customCheck = z.looseObject({
  id: z.string().regex(/^[A-Za-z0-9_.:/-]+$/, 'ids use letters, digits and . _ : / -'),
  kind: z.string().min(1),
  service: z.string().optional(),
  dependsOn: z.array(z.string()).optional(),
  timeout: duration.optional(),
});

export const environment = z
  .object({
    services: z
      .object({
        somabrain: httpService.optional(),
        sfm: httpService.optional(),
        gateway: httpService.optional(),
        postgres: storeService.optional(),
        redis: storeService.optional(),
        kafka: storeService.optional(),
        qdrant: storeService.optional(),
        opa: storeService.optional(),
      })
      .strict()
      .default({}),
    checks: z.array(customCheck).default([]),
    /** Run the smoke scenarios by default (--no-smoke turns them off); `{ timeout }` sets their budget. */
    smoke: z
      .union([z.boolean(), z.object({ timeout: duration.optional() }).strict()], { error: 'expected true, false or { timeout: 45s }' })
      .default(false),
  })
  .strict();

export const configFile = z
  .object({
    plugins: z.array(z.string()).default([]),
    defaults: z
      .object({
        timeout: duration.optional(),
        deadline: duration.optional(),
        concurrency: z.number().int().positive().optional(),
      })
      .strict()
      .default({}),
    environments: z.record(z.string(), environment),
  })
  .strict();

export type HttpServiceConfig = z.infer<typeof httpService>;
export type StoreServiceConfig = z.infer<typeof storeService>;
export type CustomCheckConfig = z.infer<typeof customCheck>;
export type EnvironmentConfig = z.infer<typeof environment>;
export type ConfigFile = z.infer<typeof configFile>;
export type ServiceName = keyof EnvironmentConfig['services'];
