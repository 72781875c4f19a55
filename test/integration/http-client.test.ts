// src/clients/http.ts itself, in process: what the check kinds' child-process tests cannot isolate.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchHttp, HttpError } from '../../src/clients/http.js';
import { silentServer, type TcpPeer } from '../support/faults.js';

describe('fetchHttp against a peer that accepts and never starts the TLS handshake', () => {
  let silent: TcpPeer;
  beforeAll(async () => {
    silent = await silentServer();
  });
  afterAll(async () => {
    await silent?.close();
  });

  it("stops waiting as soon as the caller's signal aborts, not at its own timeout", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const started = performance.now();
    const failure = await fetchHttp({ url: `https://127.0.0.1:${silent.port}/`, timeoutMs: 20_000, signal: controller.signal }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(HttpError);
    expect((failure as HttpError).message).toBe(`aborted before 127.0.0.1:${silent.port} answered`);
    expect(performance.now() - started).toBeLessThan(10_000); // far under its 20 s timeout
  });

  it('fails at its own timeout, naming it', async () => {
    const started = performance.now();
    const failure = await fetchHttp({ url: `https://127.0.0.1:${silent.port}/`, timeoutMs: 1000 }).catch((e: unknown) => e);
    expect((failure as HttpError).message).toBe(`no response from 127.0.0.1:${silent.port} within 1000 ms`);
    expect(performance.now() - started).toBeLessThan(1000 + 3000);
  });
});
