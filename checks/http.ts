// `http`: one request, judged by its status code, body conditions and latency.
import { z } from 'zod';
import { defineCheck } from '../src/check.js';
import { fetchHttp, HttpError, DEFAULT_MAX_BODY_BYTES, loadHttpClient } from '../src/http.js';
import { condition, evaluateCondition } from '../src/conditions.js';
import { maskCredentials } from '../src/redact.js';

const options = z
  .object({
    url: z.url({ protocol: /^https?$/ }),
    method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']).default('GET'),
    headers: z.record(z.string(), z.string()).default({}),
    /** Sent as `Authorization: Bearer <token>`. */
    token: z.string().optional(),
    json: z.unknown().optional(),
    body: z.string().optional(),
    expectStatus: z.array(z.number().int().min(100).max(599)).default([200]),
    conditions: z.array(condition).default([]),
    maxLatencyMs: z.number().positive().optional(),
    tls: z.object({ caFile: z.string().optional(), insecure: z.boolean().default(false) }).strict().optional(),
    maxRedirects: z.number().int().min(0).max(20).default(0),
    maxBodyBytes: z.number().int().positive().default(DEFAULT_MAX_BODY_BYTES),
  })
  .strict();
type Options = z.infer<typeof options>;

export default defineCheck<Options>({
  kind: 'http',
  prepare: loadHttpClient,
  options,
  target: (o) => `${o.method} ${maskCredentials(o.url)}`,
  async run(o, ctx) {
    const headers = { ...o.headers };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    let res;
    try {
      res = await fetchHttp({
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
    } catch (err) {
      return { status: 'fail', message: err instanceof HttpError ? err.message : String(err) };
    }
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
        details: { ...details, body: res.text.slice(0, 300) },
        latencyMs,
      };
    }
    const failed = o.conditions
      .map((c) => evaluateCondition(c, res.json, res.text))
      .filter((r) => !r.ok);
    if (failed.length) {
      return { status: 'fail', message: failed.map((f) => f.description).join('; '), details, latencyMs };
    }
    if (o.maxLatencyMs && res.timings.totalMs > o.maxLatencyMs) {
      return { status: 'fail', message: `answered in ${latencyMs} ms, over ${o.maxLatencyMs} ms`, details, latencyMs };
    }
    const conds = o.conditions.length ? `, ${o.conditions.length} conditions hold` : '';
    return { status: 'pass', message: `HTTP ${res.status} in ${latencyMs} ms${conds}`, details, latencyMs };
  },
});
