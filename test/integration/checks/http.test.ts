// The `http` kind against real HTTP and HTTPS servers on loopback.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { runCheck, expectNoSecret } from '../../support/run-check.js';
import { makeTestCertificates, type TestCertificates } from '../../support/certificates.js';
import { refusedPort } from '../../support/faults.js';

const TOKEN = 'http-check-token-6f1d';
const received: Array<{ method: string; url: string; auth?: string; body: string; header?: string }> = [];

function handler(req: IncomingMessage, res: ServerResponse) {
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    received.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, body, header: req.headers['x-soma'] as string | undefined });
    const json = (status: number, value: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    switch (req.url) {
      case '/ok':
        return json(200, { status: 'ok', version: '2.1.0', components: [{ name: 'redis', ms: 3 }], count: 7 });
      case '/private':
        return req.headers.authorization === `Bearer ${TOKEN}` ? json(200, { ok: true }) : json(401, { detail: 'Unauthorized', echo: req.headers.authorization });
      case '/echo':
        return json(201, { method: req.method, received: body ? JSON.parse(body) : null });
      case '/moved':
        res.writeHead(302, { location: '/ok' });
        return res.end();
      case '/slow':
        return void setTimeout(() => json(200, { status: 'ok' }), 400);
      case '/text':
        res.writeHead(200, { 'content-type': 'text/plain' });
        return res.end('all shards are ready');
      default:
        return json(404, { detail: 'Not Found' });
    }
  });
}

let server: Server;
let tlsServer: Server;
let certs: TestCertificates;
let base: string;
let tlsBase: string;

beforeAll(async () => {
  server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  certs = await makeTestCertificates(await mkdtemp(join(tmpdir(), 'soma-http-certs-')));
  tlsServer = createHttpsServer({ cert: await readFile(certs.certFile), key: await readFile(certs.keyFile) }, handler);
  await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
  tlsBase = `https://127.0.0.1:${(tlsServer.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.close();
  tlsServer.close();
  await rm(certs.dir, { recursive: true, force: true });
});

describe('http', () => {
  it('passes on the expected status with every condition holding', async () => {
    const out = await runCheck('http', {
      url: `${base}/ok`,
      conditions: [
        { path: 'status', oneOf: ['ok', 'healthy'] },
        { path: 'components[0].name', equals: 'redis' },
        { path: 'count', gte: 5, lt: 10 },
        { path: 'version', matches: '^2\\.' },
        { path: 'missing', exists: false },
      ],
    });
    expect(out.status).toBe('pass');
    expect(out.message).toMatch(/^HTTP 200 in [\d.]+ ms, 5 conditions hold$/);
    expect(out.details).toMatchObject({ httpStatus: 200 });
  });

  it('fails naming each condition that does not hold, with the value found', async () => {
    const out = await runCheck('http', { url: `${base}/ok`, conditions: [{ path: 'status', equals: 'healthy' }, { path: 'count', gt: 10 }] });
    expect(out).toMatchObject({ status: 'fail', message: 'status is "ok", expected "healthy"; count is 7, expected gt 10' });
  });

  it('fails on an unexpected status, and accepts it when listed', async () => {
    expect(await runCheck('http', { url: `${base}/nope` })).toMatchObject({ status: 'fail', message: 'HTTP 404, expected 200' });
    expect((await runCheck('http', { url: `${base}/nope`, expectStatus: [404] })).status).toBe('pass');
  });

  it('sends method, headers, a JSON body and the bearer token, and never prints the token', async () => {
    const echo = await runCheck('http', { url: `${base}/echo`, method: 'POST', json: { probe: 1 }, headers: { 'x-soma': 'yes' }, expectStatus: [201], conditions: [{ path: 'received.probe', equals: 1 }] });
    expect(echo.status).toBe('pass');
    expect(received.at(-1)).toMatchObject({ method: 'POST', body: '{"probe":1}', header: 'yes' });
    expect((await runCheck('http', { url: `${base}/private`, token: TOKEN })).status).toBe('pass');
    const wrong = await runCheck('http', { url: `${base}/private`, token: `${TOKEN}-wrong` });
    expect(wrong).toMatchObject({ status: 'fail', message: 'HTTP 401, expected 200' });
    expect(received.at(-1)!.auth).toBe(`Bearer ${TOKEN}-wrong`);
    // The server echoed the token into the body the check reports: redaction masks it.
    expect(JSON.stringify(wrong.details)).toContain('Bearer ***');
    expectNoSecret(wrong.output, TOKEN);
  });

  it('does not follow redirects unless told to', async () => {
    expect(await runCheck('http', { url: `${base}/moved` })).toMatchObject({ status: 'fail', message: 'HTTP 302, expected 200' });
    expect((await runCheck('http', { url: `${base}/moved`, maxRedirects: 2 })).status).toBe('pass');
  });

  it('sends no header of the config on to another origin after a redirect (an API key in x-api-key, the token)', async () => {
    const seen: IncomingMessage['headers'][] = [];
    const other = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    const first = createServer((req, res) => res.writeHead(302, { location: `http://127.0.0.1:${(other.address() as AddressInfo).port}/land` }).end());
    await new Promise<void>((resolve) => first.listen(0, '127.0.0.1', resolve));
    try {
      const out = await runCheck('http', {
        url: `http://127.0.0.1:${(first.address() as AddressInfo).port}/go`,
        maxRedirects: 1,
        token: `${TOKEN}-redirected`,
        headers: { 'X-Api-Key': 'api-key-7f0c1d2e', 'X-Tenant': 'soma' },
      });
      expect(out.status).toBe('pass');
      expect(seen).toHaveLength(1);
      expect(Object.keys(seen[0]!).filter((h) => ['authorization', 'x-api-key', 'x-tenant'].includes(h))).toEqual([]);
    } finally {
      first.close();
      other.close();
    }
  });

  it('fails an answer slower than maxLatencyMs', async () => {
    const out = await runCheck('http', { url: `${base}/slow`, maxLatencyMs: 100 });
    expect(out.status).toBe('fail');
    expect(out.message).toMatch(/^answered in [\d.]+ ms, over 100 ms$/);
  });

  it('matches a regular expression on a plain-text body', async () => {
    expect((await runCheck('http', { url: `${base}/text`, conditions: [{ matches: 'shards are ready' }] })).status).toBe('pass');
  });

  it('refuses a body larger than maxBodyBytes', async () => {
    expect(await runCheck('http', { url: `${base}/ok`, maxBodyBytes: 10 })).toMatchObject({ status: 'fail', message: 'body larger than 10 bytes' });
  });

  it('trusts a server certificate through caFile, refuses it without, and skips verification only when insecure', async () => {
    expect((await runCheck('http', { url: `${tlsBase}/ok`, tls: { caFile: certs.caFile } })).status).toBe('pass');
    const untrusted = await runCheck('http', { url: `${tlsBase}/ok` });
    expect(untrusted.status).toBe('fail');
    expect(untrusted.message).toMatch(/^TLS certificate of 127\.0\.0\.1:\d+ not trusted/);
    expect((await runCheck('http', { url: `${tlsBase}/ok`, tls: { insecure: true } })).status).toBe('pass');
  });

  it('refuses a FIFO as caFile at once instead of waiting on it for a writer', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'soma-http-ca-'));
    try {
      const fifo = join(dir, 'ca.pem');
      execFileSync('mkfifo', [fifo]);
      const out = await runCheck('http', { url: `${tlsBase}/ok`, tls: { caFile: fifo } }, { timeoutMs: 2000 });
      expect(out.status).toBe('fail');
      expect(out.message).toContain(`${fifo} is a FIFO (named pipe), not a regular file`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('names a plain-HTTP server behind an https URL as a TLS failure', async () => {
    const out = await runCheck('http', { url: `${base.replace('http:', 'https:')}/ok` });
    expect(out.status).toBe('fail');
    expect(out.message).toMatch(/TLS handshake with 127\.0\.0\.1:\d+ failed/);
  });

  it('fails a refused port at once', async () => {
    const port = await refusedPort();
    const out = await runCheck('http', { url: `http://127.0.0.1:${port}/` }, { timeoutMs: 2000 });
    expect(out).toMatchObject({ status: 'fail', message: `connection refused on 127.0.0.1:${port}` });
    expect(out.wallMs).toBeLessThan(2000 + 4000);
  });

  it('rejects options it does not know, to catch typos', async () => {
    const out = await runCheck('http', { url: `${base}/ok`, expectStaus: [200] });
    expect(out.invalid?.join(' ')).toMatch(/expectStaus/);
  });
});
