// `http`: one request, judged by its status code, body conditions and latency.
import * as v from 'valibot';
import { defineCheck, type CheckOutcome } from '../src/check.js';
import { headersOption, httpUrlOption, tlsOption, tokenOption } from '../src/check-options.js';
import { describeHttpFailure, fetchHttp, DEFAULT_MAX_BODY_BYTES, unansweredBy, type HttpResponse } from '../src/clients/http.js';
import { startHttpThread } from '../src/clients/http-thread.js';
import { condition, evaluateCondition } from '../src/conditions.js';
import { excerpt, maskCredentials } from '../src/redact.js';

const options = v.strictObject({
  url: httpUrlOption,
  method: v.optional(v.picklist(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']), 'GET'),
  headers: v.optional(headersOption, {}),
  token: tokenOption,
  json: v.optional(v.unknown()),
  body: v.optional(v.string()),
  expectStatus: v.optional(v.array(v.pipe(v.number(), v.integer(), v.minValue(100), v.maxValue(599))), [200]),
  conditions: v.optional(v.array(condition), []),
  maxLatencyMs: v.optional(v.pipe(v.number(), v.gtValue(0))),
  tls: v.optional(tlsOption),
  maxRedirects: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(20)), 0),
  maxBodyBytes: v.optional(v.pipe(v.number(), v.integer(), v.gtValue(0)), DEFAULT_MAX_BODY_BYTES),
});
type Options = v.InferOutput<typeof options>;

/** The verdict on one answer; pure, so it is tested without a server. */
export function judge(res: HttpResponse, o: Pick<Options, 'expectStatus' | 'conditions' | 'maxLatencyMs'>): CheckOutcome {
  const latencyMs = Math.round(res.timings.totalMs * 10) / 10;
  const details: Record<string, unknown> = {
    httpStatus: res.status,
    latencyMs,
    firstByteMs: Math.round(res.timings.firstByteMs * 10) / 10,
    bytes: res.body.length,
  };
  if (!o.expectStatus.includes(res.status)) {
    return {
      status: 'fail',
      message: `HTTP ${res.status}, expected ${o.expectStatus.join(' or ')}`,
      details: { ...details, body: excerpt(res.text, 300) },
      latencyMs,
    };
  }
  const failed = o.conditions.map((c) => evaluateCondition(c, res.json, res.text)).filter((r) => !r.ok);
  if (failed.length) return { status: 'fail', message: failed.map((f) => f.description).join('; '), details, latencyMs };
  if (o.maxLatencyMs && res.timings.totalMs > o.maxLatencyMs) {
    return { status: 'fail', message: `answered in ${latencyMs} ms, over ${o.maxLatencyMs} ms`, details, latencyMs };
  }
  const conds = o.conditions.length ? `, ${o.conditions.length} conditions hold` : '';
  return { status: 'pass', message: `HTTP ${res.status} in ${latencyMs} ms${conds}`, details, latencyMs };
}

export default defineCheck<Options>({
  kind: 'http',
  prepare: startHttpThread,
  options,
  target: (o) => `${o.method} ${maskCredentials(o.url)}`,
  async run(o, ctx) {
    const headers = { ...o.headers };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    try {
      const res = await fetchHttp({
        url: o.url,
        method: o.method,
        headers,
        json: o.json,
        body: o.body,
        timeoutMs: ctx.timeoutMs,
        signal: ctx.signal,
        tls: o.tls,
        maxRedirects: o.maxRedirects,
        maxBodyBytes: o.maxBodyBytes,
      });
      return judge(res, o);
    } catch (err) {
      return { status: 'fail', message: describeHttpFailure(err), unanswered: unansweredBy(err, o.url) };
    }
  },
});
