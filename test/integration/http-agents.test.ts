// src/http.ts shares one undici agent per connect settings across requests (issue 11: 1000
// endpoints must not open 1000 connections). What that sharing must keep: connections reused
// and counted on the server's side, few agents kept however many timeouts a process sees, and a
// kept connection never holding the process open.
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchHttp } from '../../src/clients/http.js';

let server: ReturnType<typeof createHttpServer>;
let url: string;
const open = new Set<Socket>();
let accepted = 0;

beforeAll(async () => {
  server = createHttpServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"status":"ok"}');
  });
  // Idle connections stay open on the server's side: only the client can let them go.
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket: Socket) => {
    accepted++;
    open.add(socket);
    socket.on('close', () => open.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}/health`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const until = async (condition: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (!condition() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return condition();
};

describe('one agent per connect settings', () => {
  it('20 requests one after another with the same settings reuse their connections (1 or 2, not 20), each answered in full', async () => {
    const before = accepted;
    for (let i = 0; i < 20; i++) {
      const res = await fetchHttp({ url, timeoutMs: 4321, signal: AbortSignal.timeout(4321) });
      expect(res.status).toBe(200);
      expect(res.json).toEqual({ status: 'ok' });
      expect(res.timings.totalMs).toBeGreaterThanOrEqual(res.timings.firstByteMs);
    }
    expect(accepted - before).toBeLessThanOrEqual(2);
  });

  it('keeps at most 8 agents: one that falls out closes its kept connection', async () => {
    server.closeAllConnections();
    expect(await until(() => open.size === 0, 2000)).toBe(true);
    // 12 timeouts: 12 agents made, each leaving one kept-alive connection, the 4 oldest closed.
    for (let i = 0; i < 12; i++) await fetchHttp({ url, timeoutMs: 3000 + i, signal: AbortSignal.timeout(3000 + i) });
    expect(await until(() => open.size <= 8, 2000)).toBe(true);
    expect(open.size).toBeGreaterThan(0);
  });
});

describe('a kept connection', () => {
  it('does not hold the process open: a process that fetched exits by itself', async () => {
    const source = `
      const { fetchHttp } = await import(${JSON.stringify(new URL('../../dist/src/clients/http.js', import.meta.url).href)});
      const res = await fetchHttp({ url: ${JSON.stringify(url)}, timeoutMs: 5000, signal: AbortSignal.timeout(5000) });
      console.log(res.status);
    `;
    const started = performance.now();
    const proc = spawn(process.execPath, ['--input-type=module', '-e', source], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((resolve) => {
      const killer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      proc.on('exit', (c) => {
        clearTimeout(killer);
        resolve(c);
      });
    });
    expect(out.trim()).toBe('200');
    expect(code).toBe(0);
    // Exited by itself (not killed at 15 s), though the server keeps idle connections for 60 s.
    expect(performance.now() - started).toBeLessThan(15_000);
  });
});
