// `http`: one request, judged by its status code, body conditions and latency.
import * as z from 'zod';
import { defineCheck, type CheckOutcome } from '../src/check.js';
import { headersOption, httpUrlOption, tlsOption, tokenOption } from '../src/check-options.js';
import { describeHttpFailure, fetchHttp, DEFAULT_MAX_BODY_BYTES, unansweredBy, type HttpResponse } from '../src/clients/http.js';
import { startHttpThread } from '../src/clients/http-thread.js';
import { condition, evaluateCondition } from '../src/conditions.js';
import { excerpt, maskCredentials } from '../src/redact.js';

const options = z
  .object({
    url: httpUrlOption,
    method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']).default('GET'),
    headers: headersOption.default({}),
    token: tokenOption,
    json: z.unknown().optional(),
    body: z.string().optional(),
    expectStatus: z.array(z.number().int().min(100).max(599)).default([200]),
    conditions: z.array(condition).default([]),
    maxLatencyMs: z.number().positive().optional(),
    tls: tlsOption.optional(),
    maxRedirects: z.number().int().min(0).max(20).default(0),
    maxBodyBytes: z.number().int().positive().default(DEFAULT_MAX_BODY_BYTES),
  })
  .strict();
type Options = z.infer<typeof options>;

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
