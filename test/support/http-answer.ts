// An HTTP answer built by hand, shaped as src/clients/http.ts returns it, for judges' unit tests.
import type { HttpResponse } from '../../src/clients/http.js';

export function httpAnswer(
  status: number,
  body: unknown,
  { totalMs = 2, firstByteMs = 1, headers = {} }: { totalMs?: number; firstByteMs?: number; headers?: Record<string, string> } = {},
): HttpResponse {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status, headers, body: Buffer.from(text), text, json, timings: { firstByteMs, totalMs } };
}

/** The same answer as a settled request, for judges that read several requests at once. */
export function settledAnswer(status: number, body: unknown, timings?: { totalMs?: number }): PromiseSettledResult<HttpResponse> {
  return { status: 'fulfilled', value: httpAnswer(status, body, timings) };
}
