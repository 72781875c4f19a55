// opa: does the policy engine answer, are its bundles and plugins up, and do the decisions
// SomaStack relies on come back defined and as expected? Speaks OPA's public HTTP API only:
//   GET /health, GET /health?bundles, GET /health?plugins, POST /v1/data/<path> {"input": ...}.
// All requests are independent, so `run` sends them at once (the whole check shares ctx's
// deadline) and `judge` reads the answers.
// Without `decisions`, SomaStack's own is asked: soma/policy/allow with an anonymous input must be
// false (deny by default). `decisions: []` asks none.
import { isDeepStrictEqual } from 'node:util';
import * as v from 'valibot';
import { defineCheck, type CheckOutcome } from '../src/check.js';
import { httpUrlOption, tlsOption, tokenOption } from '../src/check-options.js';
import { bodyReason, fetchHttp, firstRequestFailure, remainingBudget, type HttpResponse } from '../src/clients/http.js';
import { startHttpThread } from '../src/clients/http-thread.js';
import { isJsonObject } from '../src/conditions.js';
import { excerpt, maskCredentials } from '../src/redact.js';

const decision = v.strictObject({
  path: v.pipe(v.string(), v.minLength(1)),
  input: v.optional(v.unknown()),
  // `expect: null` is a real expectation; only an absent key means "any defined result".
  expect: v.optional(v.unknown()),
});

const options = v.strictObject({
  url: httpUrlOption,
  token: tokenOption,
  bundles: v.optional(v.boolean(), false),
  plugins: v.optional(v.boolean(), false),
  decisions: v.optional(v.array(decision), [{ path: 'soma/policy/allow', input: {}, expect: false }]),
  tls: v.optional(tlsOption),
});
export type OpaOptions = v.InferOutput<typeof options>;
type Decision = v.InferOutput<typeof decision>;

// Health answers are `{}` or `{"error": ...}`; a decision may legitimately be a large document.
const HEALTH_BODY_CAP = 64 * 1024;
// Results longer than this are summarised in details instead of copied.
const RESULT_EXCERPT_CHARS = 200;

export default defineCheck({
  kind: 'opa',
  prepare: startHttpThread,
  options,
  target: (o) => maskCredentials(o.url),
  async run(o, ctx) {
    const where = baseOf(o.url);
    const left = remainingBudget(ctx.timeoutMs);
    const request = (method: 'GET' | 'POST', path: string, json?: unknown, maxBodyBytes?: number) =>
      fetchHttp({
        url: `${where}${path}`,
        method,
        json,
        headers: o.token ? { authorization: `Bearer ${o.token}` } : {},
        timeoutMs: left(),
        signal: ctx.signal,
        tls: o.tls,
        maxBodyBytes,
      });
    const queries = healthQueries(o);
    const decisions = o.decisions.map((d) => normalizePolicyPath(d.path));
    const settled = await Promise.allSettled([
      ...queries.map((q) => request('GET', `/health${q}`, undefined, HEALTH_BODY_CAP)),
      ...o.decisions.map((d, i) => request('POST', `/v1/data/${encodePath(decisions[i]!)}`, { input: d.input ?? {} })),
    ]);
    return judge({ health: settled.slice(0, queries.length), decisions: settled.slice(queries.length) }, o);
  },
});

/** OPA's answers: one per health query (plain, then ?bundles, ?plugins as asked), one per decision. */
export interface OpaFacts {
  health: Array<PromiseSettledResult<HttpResponse>>;
  decisions: Array<PromiseSettledResult<HttpResponse>>;
}

interface Step {
  name: string;
  settled: PromiseSettledResult<HttpResponse>;
}

const baseOf = (url: string) => {
  const base = new URL(url);
  return base.origin + base.pathname.replace(/\/$/, '');
};

// Asked one by one (not `?bundles&plugins` together) so a 500 says which of the two failed.
const healthQueries = (o: Pick<OpaOptions, 'bundles' | 'plugins'>) => ['', ...(o.bundles ? ['?bundles'] : []), ...(o.plugins ? ['?plugins'] : [])];

/** The verdict on OPA's answers; pure, so it is tested without a server. */
export function judge(f: OpaFacts, o: Pick<OpaOptions, 'url' | 'token' | 'bundles' | 'plugins' | 'decisions'>): CheckOutcome {
  const where = baseOf(o.url);
  const decisions = o.decisions.map((d) => ({ ...d, path: normalizePolicyPath(d.path) }));
  const queries = healthQueries(o);
  const health: Step[] = queries.map((q, i) => ({ name: `GET /health${q}`, settled: f.health[i]! }));
  const answers: Step[] = decisions.map((d, i) => ({ name: `POST /v1/data/${d.path}`, settled: f.decisions[i]! }));

  const unanswered = firstRequestFailure([...health, ...answers].map((step) => [step.name, step.settled] as const), o.url);
  if (unanswered) return unanswered;
  const [plain, ...healthDetail] = health.map((s) => (s.settled as PromiseFulfilledResult<HttpResponse>).value);
  const responses = answers.map((s) => (s.settled as PromiseFulfilledResult<HttpResponse>).value);

  const rejected = [plain!, ...responses].find((r) => r.status === 401 || r.status === 403);
  if (rejected) {
    return {
      status: 'fail',
      message: o.token
        ? `OPA rejected the token (HTTP ${rejected.status})`
        : `OPA requires a token (HTTP ${rejected.status}) and none is configured`,
    };
  }
  if (!isOpaHealth(plain!)) {
    return {
      status: 'fail',
      message: `not an OPA API at ${where} (GET /health answered HTTP ${plain!.status}${describeBody(plain!)})`,
    };
  }

  const details: Record<string, unknown> = { latencyMs: Math.round(plain!.timings.totalMs) };
  if (plain!.status !== 200) {
    return {
      status: 'fail',
      message: `OPA at ${where} is not healthy (GET /health answered HTTP ${plain!.status}${describeBody(plain!)})`,
      details,
    };
  }
  const healthQueriesAsked = queries.slice(1);
  for (const [i, query] of healthQueriesAsked.entries()) {
    const res = healthDetail[i]!;
    const ok = res.status === 200;
    if (query === '?bundles') details.bundles = ok ? 'activated' : 'not activated';
    else details.plugins = ok ? 'ready' : 'not ready';
    if (ok) continue;
    const what = query === '?bundles' ? 'bundles not activated' : 'plugins not ready';
    return {
      status: 'fail',
      message: `OPA at ${where}: ${what} (HTTP ${res.status}${describeBody(res)})`,
      details,
    };
  }

  const verdicts = decisions.map((d, i) => judgeDecision(d, responses[i]!));
  details.decisions = verdicts.map((v) => v.facts);
  const notOpa = verdicts.find((v) => v.notOpa);
  if (notOpa) return { status: 'fail', message: `not an OPA API at ${where} (${notOpa.problem})`, details };
  const problems = verdicts.flatMap((v) => (v.problem ? [v.problem] : []));
  if (problems.length > 0) return { status: 'fail', message: problems.join('; '), details };

  const parts = ['OPA healthy'];
  if (o.bundles) parts.push('bundles activated');
  if (o.plugins) parts.push('plugins ready');
  if (decisions.length > 0)
    parts.push(`${decisions.length} decision${decisions.length === 1 ? '' : 's'} as expected`);
  return { status: 'pass', message: parts.join(', '), details };
}

interface DecisionVerdict {
  problem?: string;
  /** The answer is not OPA's Data API at all (e.g. a 404 page). */
  notOpa?: boolean;
  facts: Record<string, unknown>;
}

function judgeDecision(d: Decision, res: HttpResponse): DecisionVerdict {
  const facts: Record<string, unknown> = {
    path: d.path,
    latencyMs: Math.round(res.timings.totalMs),
  };
  const body = isJsonObject(res.json) ? res.json : undefined;
  // OPA's Data API answers 200 for any path, defined or not; a 404 or a non-object body is
  // something else listening on the port.
  if (res.status === 404 || (res.status === 200 && !body)) {
    return {
      notOpa: true,
      problem: `POST /v1/data/${d.path} answered HTTP ${res.status}${describeBody(res)}`,
      facts,
    };
  }
  if (res.status !== 200) {
    // OPA's errors are {"code", "message"}: evaluation errors (500), bad input (400).
    return {
      problem: `policy ${d.path} failed to evaluate (HTTP ${res.status}${describeBody(res)})`,
      facts,
    };
  }
  if (!body || !Object.hasOwn(body, 'result')) {
    facts.defined = false;
    return { problem: `policy path ${d.path} not loaded (no result)`, facts };
  }
  const result = body.result;
  facts.defined = true;
  facts.result = valueExcerpt(result);
  if (Object.hasOwn(d, 'expect')) {
    facts.expected = valueExcerpt(d.expect);
    facts.matched = isDeepStrictEqual(result, d.expect);
    if (!facts.matched) {
      return {
        problem: `${d.path} returned ${oneLine(result)}, expected ${oneLine(d.expect)}`,
        facts,
      };
    }
  }
  return { facts };
}

/**
 * `soma/policy/allow`, `/v1/data/soma/policy/allow` and the Rego reference `soma.policy.allow`
 * (or `data.soma.policy.allow`) all name the same decision.
 */
function normalizePolicyPath(path: string): string {
  let p = path.trim().replace(/^\/+/, '').replace(/^v1\/data\//, '').replace(/\/+$/, '');
  if (!p.includes('/')) p = p.replace(/^data\./, '').split('.').join('/');
  return p;
}

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

/** OPA answers /health with a JSON object: `{}`, or `{"error": "..."}` with a 500. */
function isOpaHealth(res: HttpResponse): boolean {
  const body = res.json;
  if (!isJsonObject(body)) return false;
  if (res.status === 200) return Object.keys(body).length === 0;
  return res.status === 500 && typeof body.error === 'string';
}

function valueExcerpt(value: unknown): unknown {
  const text = JSON.stringify(value) ?? 'undefined';
  return text.length <= RESULT_EXCERPT_CHARS ? value : excerpt(text, RESULT_EXCERPT_CHARS - 3, '...');
}

function oneLine(value: unknown): string {
  const text = JSON.stringify(value) ?? 'undefined';
  return excerpt(text, 77, '...');
}

/** A short, single-line excerpt of a body; OPA puts its reason in `error` or `message`. */
function describeBody(res: HttpResponse): string {
  const body = res.json as { error?: unknown; message?: unknown } | undefined;
  return bodyReason(res, typeof body?.error === 'string' ? body.error : body?.message);
}
