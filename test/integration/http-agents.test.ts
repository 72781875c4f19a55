// src/clients/http.ts keeps connections alive per TLS settings across requests (issue 11: 1000
// endpoints must not open 1000 connections). What that sharing must keep: connections reused
// and counted on the server's side whatever each request's timeout, few HTTPS agents kept however
// many CA files a process sees, and a kept connection never holding the process open.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchHttp } from '../../src/clients/http.js';
import { makeTestCertificates } from '../support/certificates.js';

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

  it('requests with different timeouts share the same kept connections', async () => {
    server.closeAllConnections();
    expect(await until(() => open.size === 0, 2000)).toBe(true);
    const before = accepted;
    for (let i = 0; i < 12; i++) expect((await fetchHttp({ url, timeoutMs: 3000 + i })).status).toBe(200);
    expect(accepted - before).toBeLessThanOrEqual(2);
  });
});

describe('a kept connection the server drops as it is reused', () => {
  // A server that answers each connection's first request (keeping it alive) and closes the
  // connection without answering the next: what a server does when its idle timeout fires just
  // as a kept connection is reused.
  let connections = 0;
  const dropping = createTcpServer((socket) => {
    connections++;
    let requests = 0;
    socket.on('error', () => {});
    socket.on('data', () => {
      if (++requests === 1) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok');
      else socket.destroy();
    });
  });
  let base: string;
  beforeAll(async () => {
    await new Promise<void>((resolve) => dropping.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(dropping.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise((resolve) => dropping.close(resolve)));

  it('a GET is sent again on a new connection and answered', async () => {
    expect((await fetchHttp({ url: `${base}/a`, timeoutMs: 5000 })).text).toBe('ok');
    const before = connections;
    expect((await fetchHttp({ url: `${base}/b`, timeoutMs: 5000 })).text).toBe('ok');
    expect(connections - before).toBe(1);
  });

  it('a POST is not repeated: it fails, naming the reset', async () => {
    expect((await fetchHttp({ url: `${base}/a`, timeoutMs: 5000 })).status).toBe(200);
    const failure = await fetchHttp({ url: `${base}/b`, method: 'POST', json: {}, timeoutMs: 5000 }).catch((e: unknown) => e);
    expect((failure as Error).message).toBe(`connection reset by ${new URL(base).host}`);
  });
});

describe('HTTPS agents, one per CA file content', () => {
  it('keeps at most 8: one that falls out closes its kept connection', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'soma-agents-'));
    const certs = await makeTestCertificates(dir);
    const tlsOpen = new Set<Socket>();
    const tls = createHttpsServer({ cert: await readFile(certs.certFile), key: await readFile(certs.keyFile) }, (req, res) => {
      req.resume();
      res.end('{"status":"ok"}');
    });
    tls.keepAliveTimeout = 60_000;
    tls.on('secureConnection', (socket: Socket) => {
      tlsOpen.add(socket);
      socket.on('close', () => tlsOpen.delete(socket));
    });
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    try {
      const tlsUrl = `https://127.0.0.1:${(tls.address() as { port: number }).port}/health`;
      const pem = await readFile(certs.caFile, 'utf8');
      // 12 CA files that trust the same CA but differ (text before a PEM block is ignored):
      // 12 agents, each keeping one connection, the 4 least recently used closed.
      for (let i = 0; i < 12; i++) {
        const caFile = join(dir, `ca-${i}.crt`);
        await writeFile(caFile, `agent ${i}\n${pem}`);
        expect((await fetchHttp({ url: tlsUrl, timeoutMs: 5000, tls: { caFile } })).status).toBe(200);
      }
      expect(await until(() => tlsOpen.size <= 8, 2000)).toBe(true);
      expect(tlsOpen.size).toBeGreaterThan(0);
    } finally {
      tls.closeAllConnections();
      await new Promise((resolve) => tls.close(resolve));
      await rm(dir, { recursive: true, force: true });
    }
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
