// `health`: the body-aware verdict for /health, /healthz, /readyz and friends. A 200 is never
// enough: SomaStack's health routes answer 200 with bodies that say degraded or down.
//
// Without `variants` the check fetches `url` and judges the body by the generic rules below
// (the status words and component shapes live in src/health-body.ts).
// With `variants` (one probe per generation of a service, supplied by the stack model) it either
// uses the named `generation`, or, for `auto`, sends the `detect` probes and takes the first
// generation whose answer matches, then reports which one it found.
import * as v from 'valibot';
import { defineCheck, type CheckOutcome } from '../src/check.js';
import { headersOption, httpUrlOption, tlsOption, tokenOption } from '../src/check-options.js';
import { describeHttpFailure, fetchHttp, type HttpResponse, unansweredBy } from '../src/clients/http.js';
import { startHttpThread } from '../src/clients/http-thread.js';
import { isJsonObject, jsonPathValue } from '../src/conditions.js';
import { componentsAt, judgeText, summarize, WORDS, worse, type Verdict } from '../src/health-body.js';
import { maskCredentials } from '../src/redact.js';
import { matchGeneration } from '../src/stack/generation.js';

export const probe = v.strictObject({
  /** Resolved against `url`; empty means `url` itself. */
  path: v.optional(v.string(), ''),
  /** Send the bearer token with this probe. */
  auth: v.optional(v.boolean(), true),
  expectStatus: v.optional(v.array(v.pipe(v.number(), v.integer())), [200]),
  /** What a status code means for this service, e.g. 403 on SomaBrain gen1: OPA is down. */
  statusMeaning: v.optional(v.record(v.string(), v.string()), {}),
  /** The JSON path of the overall status word. */
  statusField: v.optional(v.string(), 'status'),
  /** Top-level fields not to judge (SomaBrain gen1's `ok` and `ready` are always false). */
  ignore: v.optional(v.array(v.string()), []),
  /** Booleans that must be true, with what false means: { memory_ok: "..." }; missing or not a boolean fails too. */
  require: v.optional(v.record(v.string(), v.string()), {}),
  /** Components that fail when not healthy even if the service calls itself degraded, with what that means. */
  critical: v.optional(v.record(v.string(), v.string()), {}),
  /** A "degraded" status word turns the failing parts into a warning (the gateway with SomaBrain alone down). */
  degradedIsWarn: v.optional(v.boolean(), true),
  /** The route answers a known JSON shape: a body that is not JSON, or says nothing about health, fails. */
  expectJson: v.optional(v.boolean(), false),
  /** Booleans that warn when false. */
  warnIfFalse: v.optional(v.record(v.string(), v.string()), {}),
  /** Where component maps or lists live. */
  componentPaths: v.optional(v.array(v.string()), ['components', 'infrastructure', 'internal_services', 'services', 'checks']),
});
type Probe = v.InferOutput<typeof probe>;

const detectRule = v.strictObject({
  generation: v.string(),
  path: v.string(),
  auth: v.optional(v.boolean(), false),
  status: v.array(v.pipe(v.number(), v.integer())),
  /** The JSON body must have at least one of these top-level keys. */
  anyKey: v.optional(v.array(v.string())),
});

const options = v.pipe(
  v.strictObject({
    url: httpUrlOption,
    token: tokenOption,
    headers: v.optional(headersOption, {}),
    tls: v.optional(tlsOption),
    maxLatencyMs: v.optional(v.pipe(v.number(), v.gtValue(0))),
    generation: v.optional(v.string()),
    variants: v.optional(v.record(v.string(), probe)),
    detect: v.optional(v.array(detectRule), []),
  }),
  v.forward(
    v.check(
      (o) => !o.variants || (o.generation ?? 'auto') === 'auto' || Object.hasOwn(o.variants, o.generation!),
      (issue) => `expected auto or ${Object.keys(issue.input.variants ?? {}).join(', ')}`,
    ),
    ['generation'],
  ),
  v.forward(
    v.check((o) => !o.variants || (o.generation ?? 'auto') !== 'auto' || o.detect.length > 0, 'auto needs detect rules'),
    ['detect'],
  ),
);
type Options = v.InferOutput<typeof options>;

export default defineCheck<Options>({
  kind: 'health',
  prepare: startHttpThread,
  options,
  target: (o) => maskCredentials(o.url),
  async run(o, ctx) {
    // One fetch per distinct request: detection and judging often ask the same route.
    const fetched = new Map<string, Promise<HttpResponse>>();
    const get = (path: string, auth: boolean) => {
      const url = path ? new URL(path, o.url).href : o.url;
      const key = `${auth && o.token ? 'auth ' : ''}${url}`;
      let pending = fetched.get(key);
      if (!pending) {
        const headers: Record<string, string> = { accept: 'application/json', ...o.headers };
        if (auth && o.token) headers.authorization = `Bearer ${o.token}`;
        pending = fetchHttp({ url, headers, timeoutMs: ctx.timeoutMs, signal: ctx.signal, tls: o.tls });
        pending.catch(() => {}); // awaited below; a detection probe may go unused
        fetched.set(key, pending);
      }
      return pending;
    };

    let generation = o.generation;
    let chosen: Probe = v.parse(probe, {});
    if (o.variants) {
      if (!generation || generation === 'auto') {
        const found = await detect(o, get);
        if ('outcome' in found) return found.outcome;
        generation = found.generation;
      }
      chosen = o.variants[generation]!;
    }
    const path = chosen.path;
    let res: HttpResponse;
    try {
      res = await get(path, chosen.auth);
    } catch (err) {
      return { status: 'fail', message: describeHttpFailure(err), details: generation ? { generation } : {}, unanswered: unansweredBy(err, o.url) };
    }
    const outcome = judge(res, chosen, path || new URL(o.url).pathname);
    const details: Record<string, unknown> = { httpStatus: res.status, latencyMs: round(res.timings.totalMs), ...outcome.details };
    if (generation) details.generation = generation;
    let { status, message } = outcome;
    if (o.maxLatencyMs && res.timings.totalMs > o.maxLatencyMs && status === 'pass') {
      status = 'warn';
      message = `${message}; answered in ${round(res.timings.totalMs)} ms, over ${o.maxLatencyMs} ms`;
    }
    const detected = o.generation === 'auto' || (o.variants && !o.generation) ? ` (detected ${generation})` : generation ? ` (${generation})` : '';
    return { status, message: `${message}${detected}`, details, latencyMs: res.timings.totalMs };
  },
});

type Get = (path: string, auth: boolean) => Promise<HttpResponse>;

/** Send the detection probes concurrently; the first rule (in order) that matches wins. */
async function detect(o: Options, get: Get): Promise<{ generation: string } | { outcome: CheckOutcome }> {
  const answers = await Promise.allSettled(o.detect.map((rule) => get(rule.path, rule.auth)));
  const generation = matchGeneration(o.detect, answers.map((a) => (a.status === 'fulfilled' ? a.value : undefined)));
  if (generation) return { generation };
  const failure = answers.find((a) => a.status === 'rejected');
  if (failure && answers.every((a) => a.status === 'rejected')) {
    const reason = (failure as PromiseRejectedResult).reason;
    return { outcome: { status: 'fail', message: describeHttpFailure(reason), unanswered: unansweredBy(reason, o.url) } };
  }
  const seen = o.detect
    .map((rule, i) => {
      const a = answers[i]!;
      return `${rule.path} ${a.status === 'fulfilled' ? a.value.status : 'no answer'}`;
    })
    .filter((v, i, all) => all.indexOf(v) === i)
    .join(', ');
  // Every route failing with a server error is a service that is down, whatever its generation.
  if (answers.every((a) => a.status === 'rejected' || a.value.status >= 500)) {
    return { outcome: { status: 'fail', message: `the service is down: ${seen}` } };
  }
  return {
    outcome: {
      status: 'fail',
      message: `cannot tell the generation: ${seen}; set generation: gen1 or gen2`,
    },
  };
}

/** Judge one answer: status code, then the body's own words, booleans and components. */
export function judge(res: HttpResponse, p: Probe, path: string): Verdict {
  const body = res.json;
  if (!p.expectStatus.includes(res.status)) {
    const meaning = p.statusMeaning[String(res.status)];
    const said = isJsonObject(body) && typeof body.detail === 'string' ? `: ${body.detail}` : '';
    return {
      status: 'fail',
      message: `HTTP ${res.status} from ${path}${meaning ? ` (${meaning})` : said}`,
      details: isJsonObject(body) ? { body: summarize(body) } : {},
    };
  }
  if (!isJsonObject(body)) {
    const verdict = judgeText(res.text, path);
    return p.expectJson ? { ...verdict, status: 'fail', message: `HTTP ${res.status} from ${path} is not the service's JSON: ${verdict.message}` } : verdict;
  }

  let status: Verdict['status'] = 'pass';
  const problems: string[] = [];
  const notes: string[] = [];
  let judged = false;
  const details: Record<string, unknown> = {};
  const ignored = new Set(p.ignore);
  const flag = (s: Verdict['status'], text: string) => {
    status = worse(status, s);
    if (s !== 'pass') problems.push(text);
  };

  const word = jsonPathValue(body, p.statusField);
  if (typeof word === 'string' && !ignored.has(p.statusField)) {
    judged = true;
    details.status = word;
    const verdict = WORDS[word.toLowerCase()];
    if (verdict) flag(verdict, `status ${word}`);
    else flag('warn', `unknown status word "${word}"`);
  }
  for (const key of ['healthy', 'ready', 'ok'] as const) {
    if (typeof body[key] === 'boolean' && !ignored.has(key) && !Object.hasOwn(p.require, key)) {
      judged = true;
      if (body[key] === false) flag('fail', `${key} is false`);
    }
  }
  let requiredFailed = false;
  const required: Record<string, unknown> = {};
  for (const [key, meaning] of Object.entries(p.require)) {
    const v = jsonPathValue(body, key);
    judged = true;
    required[key] = v ?? null;
    if (v === true) continue;
    requiredFailed = true;
    flag('fail', v === false ? `${key} is false: ${meaning}` : v === undefined ? `${key} is missing` : `${key} is ${JSON.stringify(v)}, not true or false`);
  }
  for (const [key, meaning] of Object.entries(p.warnIfFalse)) {
    const v = jsonPathValue(body, key);
    if (v === false) flag('warn', `${key} is false: ${meaning}`);
  }

  // A body made only of booleans is a component map (SFM: kv_store, vector_store, graph_store).
  const entries = Object.entries(body).filter(([k]) => !ignored.has(k) && !Object.hasOwn(p.require, k));
  if (entries.length > 0 && entries.every(([, v]) => typeof v === 'boolean')) {
    judged = true;
    details.components = Object.fromEntries(entries);
    for (const [k, v] of entries) {
      if (v === false) flag('fail', `${k} is false`);
    }
  }

  const components: Record<string, Record<string, unknown>> = {};
  for (const path of p.componentPaths) {
    if (ignored.has(path)) continue;
    for (const c of componentsAt(jsonPathValue(body, path))) {
      judged = true;
      components[c.name] = c.summary;
      const critical = Object.hasOwn(p.critical, c.name) ? p.critical[c.name] : undefined;
      if (critical && c.verdict !== 'pass') {
        requiredFailed = true;
        flag('fail', `${c.name} ${c.word}: ${critical}`);
      } else if (c.verdict !== 'pass') flag(c.verdict, `${c.name} ${c.word}`);
      else if (c.word && !WORDS[c.word.toLowerCase()]) notes.push(`${c.name} ${c.word}`);
    }
  }
  if (Object.keys(components).length) details.components = components;
  else if (Object.keys(required).length && !details.components) details.components = required;

  // A service that calls itself "degraded" has judged its failing parts tolerable (the gateway
  // with SomaBrain alone down): warn, and name the parts. A required boolean or a critical
  // component overrides that word, and a service whose every part is required (SFM) never says it.
  const own = typeof word === 'string' && !ignored.has(p.statusField) ? WORDS[word.toLowerCase()] : undefined;
  // (status is widened: `flag` changes it inside a closure, which TypeScript does not see.)
  if (p.degradedIsWarn && own === 'warn' && (status as Verdict['status']) === 'fail' && !requiredFailed) status = 'warn';

  if (!judged) {
    return {
      status: p.expectJson ? 'fail' : 'warn',
      message: `HTTP ${res.status} from ${path}, but the body says nothing about health`,
      details: { body: summarize(body) },
    };
  }
  const count = Object.keys(details.components ?? {}).length;
  const summary =
    status === 'pass'
      ? `${typeof word === 'string' ? word : 'healthy'}${count ? `: ${count} components ok` : ''}`
      : problems.join('; ');
  return { status, message: summary, details };
}

const round = (ms: number) => Math.round(ms * 10) / 10;
