// qdrant: is the vector store ready, and are the collections SomaStack needs there, shaped as
// expected (vector size, distance) and healthy (green)? Speaks Qdrant's public HTTP API only:
//   GET /readyz, GET / (version), GET /collections, GET /collections/{name} for each required
//   collection. All requests are independent, so `run` sends them at once (the whole check
//   shares ctx's deadline) and `judge` reads the answers.
import * as v from 'valibot';
import { defineCheck, type CheckOutcome } from '../src/check.js';
import { httpUrlOption, tlsOption } from '../src/check-options.js';
import { bodyReason, fetchHttp, firstRequestFailure, remainingBudget, type HttpResponse } from '../src/clients/http.js';
import { startHttpThread } from '../src/clients/http-thread.js';
import { jsonField as field } from '../src/conditions.js';
import { worse } from '../src/health-body.js';
import { maskCredentials } from '../src/redact.js';

const distance = v.picklist(['Cosine', 'Euclid', 'Dot', 'Manhattan']);
type Distance = v.InferOutput<typeof distance>;

const requiredCollection = v.union([
  v.pipe(v.string(), v.minLength(1)),
  v.strictObject({
    name: v.pipe(v.string(), v.minLength(1)),
    size: v.optional(v.pipe(v.number(), v.integer(), v.gtValue(0))),
    distance: v.optional(distance),
  }),
]);

const options = v.strictObject({
  url: httpUrlOption,
  apiKey: v.optional(v.pipe(v.string(), v.minLength(1))),
  collections: v.optional(v.array(requiredCollection), []),
  tls: v.optional(tlsOption),
});
export type QdrantOptions = v.InferOutput<typeof options>;

interface Expectation {
  name: string;
  size?: number;
  distance?: Distance;
}

/** The vector parameters of a collection: one unnamed vector, or named vectors. */
interface VectorParams {
  name?: string;
  size: unknown;
  distance: unknown;
}

interface CollectionFinding {
  status: 'pass' | 'warn' | 'fail';
  problem?: string;
  facts: Record<string, unknown>;
}

// Health endpoints answer short text; collection listings can be long, hence the larger cap.
const HEALTH_BODY_CAP = 64 * 1024;

/** Qdrant's answers to the check's requests, each an answer or the failure to get one. */
export interface QdrantFacts {
  readyz: PromiseSettledResult<HttpResponse>;
  root: PromiseSettledResult<HttpResponse>;
  listing: PromiseSettledResult<HttpResponse>;
  /** One per required collection, in the order of the options. */
  collections: Array<PromiseSettledResult<HttpResponse>>;
}

export default defineCheck({
  kind: 'qdrant',
  prepare: startHttpThread,
  options,
  target: (o) => maskCredentials(o.url),
  async run(o, ctx) {
    const base = new URL(o.url);
    const left = remainingBudget(ctx.timeoutMs);
    const get = (path: string, maxBodyBytes?: number) =>
      fetchHttp({
        url: joinUrl(base, path),
        headers: o.apiKey ? { 'api-key': o.apiKey } : {},
        timeoutMs: left(),
        signal: ctx.signal,
        tls: o.tls,
        maxBodyBytes,
      });
    const [readyz, root, listing, ...collections] = await Promise.allSettled([
      get('/readyz', HEALTH_BODY_CAP),
      get('/', HEALTH_BODY_CAP),
      get('/collections'),
      ...o.collections.map(toExpectation).map((e) => get(`/collections/${encodeURIComponent(e.name)}`)),
    ]);
    return judge({ readyz: readyz!, root: root!, listing: listing!, collections }, o);
  },
});

/** The verdict on Qdrant's answers; pure, so it is tested without a server. */
export function judge(f: QdrantFacts, o: Pick<QdrantOptions, 'url' | 'apiKey' | 'collections'>): CheckOutcome {
  const base = new URL(o.url);
  const where = maskCredentials(base.origin + base.pathname.replace(/\/$/, ''));
  const expectations = o.collections.map(toExpectation);
  const { readyz: ready, listing, collections: infos } = f;

  const unanswered = firstRequestFailure([
    ['GET /readyz', ready],
    ['GET /collections', listing],
    ...infos.map((s, i) => [`GET /collections/${expectations[i]!.name}`, s] as const),
  ], o.url);
  if (unanswered) return unanswered;
  const readyAnswer = readiness((ready as PromiseFulfilledResult<HttpResponse>).value);
  const list = (listing as PromiseFulfilledResult<HttpResponse>).value;

  if (list.status === 401 || list.status === 403) {
    const message = o.apiKey
      ? `Qdrant rejected the API key (HTTP ${list.status})`
      : `Qdrant requires an API key (HTTP ${list.status}) and none is configured`;
    return { status: 'fail', message };
  }
  const names = collectionNames(list);
  if (names === undefined && (list.status < 500 || readyAnswer.kind === 'absent')) {
    return {
      status: 'fail',
      message: `not a Qdrant API at ${where} (GET /collections answered HTTP ${list.status}${describeBody(list)})`,
    };
  }

  const details: Record<string, unknown> = {
    readiness: readyAnswer.kind,
    readinessEndpoint: readyAnswer.endpoint,
    latencyMs: Math.round(readyAnswer.response?.timings.totalMs ?? list.timings.totalMs),
  };
  const version = serverVersion(f.root);
  if (version) details.version = version;
  if (names) {
    details.collections = names;
    details.collectionCount = names.length;
  }

  if (readyAnswer.kind === 'not-ready') {
    return {
      status: 'fail',
      message: `Qdrant at ${where}: shards not ready (${readyAnswer.endpoint} answered HTTP 503${describeBody(readyAnswer.response)})`,
      details,
    };
  }
  if (readyAnswer.kind === 'unhealthy') {
    return {
      status: 'fail',
      message: `Qdrant at ${where} is not healthy (${readyAnswer.endpoint} answered HTTP ${readyAnswer.response?.status}${describeBody(readyAnswer.response)})`,
      details,
    };
  }
  if (names === undefined) {
    return {
      status: 'fail',
      message: `Qdrant at ${where} could not list collections (HTTP ${list.status}${describeBody(list)})`,
      details,
    };
  }

  const findings = expectations.map((e, i) => judgeCollection(e, (infos[i] as PromiseFulfilledResult<HttpResponse>).value));
  details.required = Object.fromEntries(expectations.map((e, i) => [e.name, findings[i]!.facts]));
  const status = findings.reduce<'pass' | 'warn' | 'fail'>((worst, f) => worse(worst, f.status), 'pass');
  const problems = findings.flatMap((f) => (f.problem ? [f.problem] : []));
  if (problems.length > 0) return { status, message: problems.join('; '), details };
  const required = expectations.length ? `, required ${expectations.map((e) => e.name).join(', ')} green` : '';
  const listed = `${names.length} collection${names.length === 1 ? '' : 's'}${required}`;
  // Without /readyz (Qdrant before 1.5, or a proxy that hides it) shard readiness is unknown: the
  // contract's Qdrant has it, so the answer alone is not a pass.
  if (readyAnswer.kind === 'absent') return { status: 'warn', message: `Qdrant answers, but has no /readyz: shard readiness unknown; ${listed}`, details };
  return { status: 'pass', message: `Qdrant ready, ${listed}`, details };
}

function toExpectation(spec: string | Expectation): Expectation {
  return typeof spec === 'string' ? { name: spec } : spec;
}

function joinUrl(base: URL, path: string): string {
  // Keep a path prefix (Qdrant behind a reverse proxy at /qdrant) instead of replacing it.
  return `${base.origin}${base.pathname.replace(/\/$/, '')}${path}`;
}

interface Readiness {
  /** ready; not-ready (503); unhealthy (another error status); absent (no /readyz: 404). */
  kind: 'ready' | 'not-ready' | 'unhealthy' | 'absent';
  endpoint: '/readyz' | 'none';
  response?: HttpResponse;
}

/** /readyz says whether all shards are ready; every released Qdrant with /healthz has it too. */
function readiness(response: HttpResponse): Readiness {
  if (response.status === 404) return { kind: 'absent', endpoint: 'none' };
  if (response.status >= 200 && response.status < 300) return { kind: 'ready', endpoint: '/readyz', response };
  if (response.status === 503) return { kind: 'not-ready', endpoint: '/readyz', response };
  return { kind: 'unhealthy', endpoint: '/readyz', response };
}

/** Names from `{"result":{"collections":[{"name"}]}}`, or undefined when that is not the shape. */
function collectionNames(res: HttpResponse): string[] | undefined {
  if (res.status !== 200) return undefined;
  const collections = field(field(res.json, 'result'), 'collections');
  if (!Array.isArray(collections)) return undefined;
  const names = collections.map((c) => field(c, 'name'));
  return names.every((n): n is string => typeof n === 'string') ? names : undefined;
}

function serverVersion(root: PromiseSettledResult<HttpResponse>): string | undefined {
  if (root.status !== 'fulfilled' || root.value.status !== 200) return undefined;
  const version = field(root.value.json, 'version');
  return typeof version === 'string' ? version : undefined;
}

function judgeCollection(expected: Expectation, res: HttpResponse): CollectionFinding {
  const name = expected.name;
  if (res.status === 404) {
    return { status: 'fail', problem: `collection ${name} missing`, facts: { present: false } };
  }
  const result = field(res.json, 'result');
  const params = field(field(result, 'config'), 'params');
  const state = field(result, 'status');
  if (res.status !== 200 || typeof state !== 'string' || params === undefined) {
    return {
      status: 'fail',
      problem: `collection ${name}: unexpected answer (HTTP ${res.status}${describeBody(res)})`,
      facts: { present: res.status === 200 },
    };
  }
  const vectors = vectorParams(field(params, 'vectors'));
  const facts: Record<string, unknown> = {
    present: true,
    status: state,
    pointsCount: field(result, 'points_count'),
    indexedVectorsCount: field(result, 'indexed_vectors_count'),
    segmentsCount: field(result, 'segments_count'),
    vectors: vectors.map((v) => ({ ...(v.name ? { name: v.name } : {}), size: v.size, distance: v.distance })),
  };

  const shapeProblem = vectorMismatch(expected, vectors);
  if (shapeProblem) return { status: 'fail', problem: `collection ${name} ${shapeProblem}`, facts };
  switch (state) {
    case 'green':
      return { status: 'pass', facts };
    case 'yellow':
      return { status: 'warn', problem: `collection ${name} is yellow (optimizing)`, facts };
    case 'grey':
      return {
        status: 'warn',
        problem: `collection ${name} is grey (optimizations pending until the next update)`,
        facts,
      };
    case 'red':
      return { status: 'fail', problem: `collection ${name} is red (an operation failed)`, facts };
    default:
      return { status: 'warn', problem: `collection ${name} has unknown status ${state}`, facts };
  }
}

/** `vectors` is `{size, distance}` for one unnamed vector, or a map of name -> that. */
function vectorParams(vectors: unknown): VectorParams[] {
  if (vectors === null || typeof vectors !== 'object') return [];
  if ('size' in vectors) {
    return [{ size: field(vectors, 'size'), distance: field(vectors, 'distance') }];
  }
  return Object.entries(vectors).map(([name, v]) => ({
    name,
    size: field(v, 'size'),
    distance: field(v, 'distance'),
  }));
}

/**
 * What is wrong with the vectors, or undefined. With named vectors the options cannot say which
 * one is meant, so the expectation holds when at least one named vector meets it whole.
 */
function vectorMismatch(expected: Expectation, vectors: VectorParams[]): string | undefined {
  if (expected.size === undefined && expected.distance === undefined) return undefined;
  if (vectors.length === 0) return 'has no dense vector configuration';
  const fits = (v: VectorParams) =>
    (expected.size === undefined || v.size === expected.size) &&
    (expected.distance === undefined || v.distance === expected.distance);
  if (vectors.some(fits)) return undefined;
  if (vectors.length === 1 && !vectors[0]!.name) {
    const v = vectors[0]!;
    const wrong: string[] = [];
    if (expected.size !== undefined && v.size !== expected.size)
      wrong.push(`vector size ${String(v.size)}, expected ${expected.size}`);
    if (expected.distance !== undefined && v.distance !== expected.distance)
      wrong.push(`distance ${String(v.distance)}, expected ${expected.distance}`);
    return wrong.join(', ');
  }
  const want = [expected.size, expected.distance].filter((x) => x !== undefined).join(', ');
  const have = vectors.map((v) => `${v.name}(${String(v.size)}, ${String(v.distance)})`).join(', ');
  return `has no vector with ${want}: ${have}`;
}

/** A short, single-line excerpt of a body for a message (Qdrant errors sit in status.error). */
function describeBody(res: HttpResponse | undefined): string {
  return res ? bodyReason(res, field(field(res.json, 'status'), 'error')) : '';
}
