// `metrics`: fetch a Prometheus /metrics endpoint, parse it as the text exposition format (see
// src/prometheus.ts), and assert that series exist and that their values compare as expected.
//
// A series assertion is `{ name, labels?, value? }`:
//   - `name` matches a sample name exactly, or a family name, so `somabrain_http_latency_seconds`
//     matches its `_bucket`, `_sum` and `_count` samples (and an OpenMetrics counter `x` its
//     `x_total`).
//   - each label matcher is an exact value, or a regex when written `~<regex>`, anchored like
//     PromQL's `=~` (`~2..` matches "200", not "1200"). A literal value that starts with "~" is
//     written as a regex: `~\~literal`.
//   - `value` compares the SUM of all matching samples: `{op: '>', value: 0}` on a counter with
//     one sample per path asks "has anything been counted at all". Summing a whole histogram
//     family adds buckets, sum and count together, so name `x_count` or `x_sum` to compare those.
// `series`: every assertion must hold. `anyOf`: at least one named set must hold entirely; the
// first that does is reported in `details.matched` (the stack model uses one set per generation
// of a service when the generation is unknown). Both may be given; both must then hold.
// `minSeries` (default 1): an endpoint exposing no series at all is not a working /metrics.
import * as v from 'valibot';
import { defineCheck, type CheckOutcome } from '../src/check.js';
import { headersOption, httpUrlOption, tlsOption, tokenOption } from '../src/check-options.js';
import { fetchHttp, HttpError, type HttpResponse, unansweredBy } from '../src/clients/http.js';
import { startHttpThread } from '../src/clients/http-thread.js';
import { parsePrometheusText, PrometheusParseError, type PrometheusText, type Sample } from '../src/prometheus.js';
import { maskCredentials } from '../src/redact.js';

// /metrics of a busy Python service with many label combinations runs to megabytes.
const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;

const REGEX_PREFIX = '~';

const labelMatcher = v.pipe(
  v.string(),
  v.check(
    (m) => !m.startsWith(REGEX_PREFIX) || compileRegex(m.slice(REGEX_PREFIX.length)) !== undefined,
    'label matcher "~<regex>" is not a valid regular expression',
  ),
);

const seriesAssertion = v.strictObject({
  name: v.pipe(v.string(), v.regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/, 'not a valid metric name')),
  labels: v.optional(v.record(v.string(), labelMatcher)),
  value: v.optional(v.strictObject({ op: v.picklist(['>', '>=', '<', '<=', '==', '!=']), value: v.number() })),
});
export type SeriesAssertion = v.InferOutput<typeof seriesAssertion>;

const options = v.strictObject({
  url: httpUrlOption,
  token: tokenOption,
  headers: v.optional(headersOption),
  tls: v.optional(tlsOption),
  series: v.optional(v.array(seriesAssertion), []),
  anyOf: v.optional(
    v.pipe(v.array(v.strictObject({ name: v.pipe(v.string(), v.minLength(1)), series: v.pipe(v.array(seriesAssertion), v.minLength(1)) })), v.minLength(1)),
  ),
  /** A check this one depends on whose `details.generation` names the one set of `anyOf` that must hold. */
  anyOfBy: v.optional(v.string()),
  minSeries: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0)), 1),
  maxBodyBytes: v.optional(v.pipe(v.number(), v.integer(), v.gtValue(0)), DEFAULT_MAX_BODY_BYTES),
});
export type MetricsOptions = v.InferOutput<typeof options>;

export default defineCheck({
  kind: 'metrics',
  prepare: startHttpThread,
  options,
  target: (o) => maskCredentials(o.url),
  async run(o, ctx) {
    const where = maskCredentials(o.url);
    const headers: Record<string, string> = {
      // Ask for the classic text format: some clients would otherwise choose OpenMetrics or protobuf.
      accept: 'text/plain;version=0.0.4;q=1,*/*;q=0.1',
    };
    // Lower-cased so a user's "Accept" replaces ours instead of being sent beside it.
    for (const [name, value] of Object.entries(o.headers ?? {})) headers[name.toLowerCase()] = value;
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    try {
      const res = await fetchHttp({
        url: o.url,
        headers,
        timeoutMs: ctx.timeoutMs,
        signal: ctx.signal,
        tls: o.tls,
        maxBodyBytes: o.maxBodyBytes,
      });
      // A generation its health check detected narrows anyOf to that generation's set.
      const known = o.anyOfBy ? ctx.dependencies.get(o.anyOfBy)?.details.generation : undefined;
      const anyOf = o.anyOf?.some((set) => set.name === known) ? o.anyOf.filter((set) => set.name === known) : o.anyOf;
      return judge(res, { ...o, anyOf });
    } catch (err) {
      if (err instanceof HttpError && err.code === 'BODY_TOO_LARGE')
        return fail(`${where}: ${err.message}; raise maxBodyBytes if that is expected`);
      if (err instanceof HttpError) return { ...fail(err.message), unanswered: unansweredBy(err, o.url) };
      // Anything else happened before the request, e.g. an unreadable tls.caFile.
      return fail(`cannot fetch ${where}: ${err instanceof Error ? err.message : String(err)}`);
    }
  },
});

/** The verdict on one /metrics answer; pure, so it is tested without a server. */
export function judge(res: HttpResponse, o: Pick<MetricsOptions, 'url' | 'token' | 'series' | 'anyOf' | 'minSeries'>): CheckOutcome {
  const where = maskCredentials(o.url);
  const http = { status: res.status, bytes: res.body.length, contentType: res.headers['content-type'] };
  if (res.status !== 200) {
    const hint =
      res.status === 401 || res.status === 403
        ? o.token
          ? ' (token rejected)'
          : ' (no token set)'
        : '';
    return fail(`HTTP ${res.status} from ${where}${hint}`, { http });
  }

  let parsed: PrometheusText;
  try {
    parsed = parsePrometheusText(res.text);
  } catch (err) {
    if (err instanceof PrometheusParseError)
      return fail(`not Prometheus text format at ${where}: ${err.message}`, { http, line: err.line });
    throw err;
  }

  const seriesCount = countDistinctSeries(parsed.samples);
  const counts = { seriesCount, familyCount: parsed.families.size, sampleCount: parsed.samples.length };

  const all = o.series.map((a) => evaluate(a, parsed));
  const sets = o.anyOf?.map((set) => {
    const results = set.series.map((a) => evaluate(a, parsed));
    return { name: set.name, ok: results.every((r) => r.ok), series: results };
  });
  const matched = sets?.find((s) => s.ok);
  const details: Record<string, unknown> = { ...counts, http, series: all };
  if (sets) Object.assign(details, { anyOf: sets, matched: matched?.name ?? null });

  const problems: string[] = [];
  if (seriesCount < o.minSeries)
    problems.push(`only ${seriesCount} series, expected at least ${o.minSeries}`);
  problems.push(...all.filter((r) => !r.ok).map((r) => r.summary));
  if (sets && !matched)
    problems.push(
      `no set of series matched: ${sets
        .map((s) => `${s.name}: ${s.series.filter((r) => !r.ok).map((r) => r.summary).join(', ')}`)
        .join('; ')}`,
    );
  const latencyMs = res.timings.totalMs;
  if (problems.length > 0) return { ...fail(`${problems.join('; ')} at ${where}`, details), latencyMs };

  const found = [
    ...(matched ? [`${matched.name} matched: ${matched.series.map((r) => r.summary).join(', ')}`] : []),
    ...all.map((r) => r.summary),
  ];
  const head = `${seriesCount} series`;
  return {
    status: 'pass',
    message: found.length > 0 ? `${head}; ${found.join('; ')}` : `${head} in ${parsed.families.size} families`,
    details,
    latencyMs,
  };
}

interface AssertionResult {
  name: string;
  labels?: Record<string, string>;
  value?: SeriesAssertion['value'];
  ok: boolean;
  /** Samples that matched the name and every label matcher. */
  found: number;
  sum: number | string | null;
  /** One phrase for the message: "x present (sum 3)", "x missing", "x sum 0, expected > 0". */
  summary: string;
}

function evaluate(assertion: SeriesAssertion, parsed: PrometheusText): AssertionResult {
  const matchers = Object.entries(assertion.labels ?? {}).map(([label, m]) => labelPredicate(label, m));
  // A family's own samples, plus samples named exactly so that live in another family.
  const byName = new Set<Sample>(parsed.families.get(assertion.name)?.samples ?? []);
  for (const s of parsed.samples) if (s.name === assertion.name) byName.add(s);
  const matching = [...byName].filter((s) => matchers.every((test) => test(s.labels)));

  const what = describeSeries(assertion);
  const base = { name: assertion.name, labels: assertion.labels, value: assertion.value, found: matching.length };
  if (matching.length === 0) {
    const near = byName.size > 0 ? ` (${byName.size} ${assertion.name} series, none with those labels)` : '';
    return { ...base, ok: false, sum: null, summary: `${what} missing${near}` };
  }
  const sum = matching.reduce((total, s) => total + s.value, 0);
  const ok = assertion.value === undefined || compare(sum, assertion.value.op, assertion.value.value);
  const summary = ok
    ? `${what} present (sum ${formatNumber(sum)})`
    : `${what} sum ${formatNumber(sum)}, expected ${assertion.value?.op} ${formatNumber(assertion.value?.value ?? 0)}`;
  // JSON has no NaN or Inf: details carry those as the strings the format writes.
  return { ...base, ok, sum: Number.isFinite(sum) ? sum : formatNumber(sum), summary };
}

function labelPredicate(label: string, matcher: string): (labels: Record<string, string>) => boolean {
  // PromQL semantics: a missing label is the empty string, so `""` and `~.*` match its absence.
  const valueOf = (labels: Record<string, string>) => (Object.hasOwn(labels, label) ? labels[label] : '');
  if (matcher.startsWith(REGEX_PREFIX)) {
    const regex = compileRegex(matcher.slice(REGEX_PREFIX.length));
    return (labels) => regex?.test(valueOf(labels) ?? '') ?? false;
  }
  return (labels) => valueOf(labels) === matcher;
}

function compileRegex(source: string): RegExp | undefined {
  try {
    // No 'u' flag: it rejects identity escapes such as `\-` that RE2 (PromQL) users write.
    return new RegExp(`^(?:${source})$`);
  } catch {
    return undefined;
  }
}

/** NaN compares false with everything, `!=` included: a NaN sum is never what was asked for. */
function compare(actual: number, op: NonNullable<SeriesAssertion['value']>['op'], expected: number): boolean {
  if (Number.isNaN(actual)) return false;
  switch (op) {
    case '>':
      return actual > expected;
    case '>=':
      return actual >= expected;
    case '<':
      return actual < expected;
    case '<=':
      return actual <= expected;
    case '==':
      return actual === expected;
    case '!=':
      return actual !== expected;
  }
}

/** Distinct (name, label set) pairs: a series repeated with another timestamp counts once. */
function countDistinctSeries(samples: readonly Sample[]): number {
  const keys = new Set<string>();
  for (const s of samples) {
    const labels = Object.entries(s.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    keys.add(JSON.stringify([s.name, labels]));
  }
  return keys.size;
}

function describeSeries(a: SeriesAssertion): string {
  const labels = Object.entries(a.labels ?? {}).map(([k, m]) =>
    m.startsWith(REGEX_PREFIX) ? `${k}=~${JSON.stringify(m.slice(1))}` : `${k}=${JSON.stringify(m)}`,
  );
  return labels.length > 0 ? `${a.name}{${labels.join(',')}}` : a.name;
}

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n > 0 ? '+Inf' : '-Inf';
  if (Number.isInteger(n)) return String(n);
  return String(Number(n.toPrecision(6)));
}

function fail(message: string, details: Record<string, unknown> = {}): CheckOutcome {
  return { status: 'fail', message, details };
}
