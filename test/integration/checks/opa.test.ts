// The opa check against an OPA peer (a real container with Docker, else the HTTP double of the
// public API) and against faulty peers. Each case runs the compiled check in a child process,
// which proves the process exits by itself (no open handle).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerAvailable } from '../../support/docker.js';
import { refusedPort, rawServer, silentServer } from '../../support/faults.js';
import { runCheck, MARGIN_MS, expectNoSecret } from '../../support/run-check.js';
import { opaPeer, type OpaPeer } from '../../support/peers/opa.js';

// Budgets: a peer that answers gets a long one (the machine may be loaded, and these tests are
// not about speed); a dead or hanging peer a short one, since failing within it is the point.
const ANSWERING_PEER_MS = 10_000;
const DEAD_PEER_MS = 1500;
// Child start-up on top of the check's own budget: generous, this is not a speed test.
const TOKEN = 'opa-test-token-4b81e2';

// SomaStack's default decision, as the stack model supplies it: anonymous input, deny.
const DENY_BY_DEFAULT = { path: 'soma/policy/allow', input: {}, expect: false };

const check = (options: Record<string, unknown>, timeoutMs = ANSWERING_PEER_MS) =>
  runCheck('opa', options, { timeoutMs });

function expectWithinTimeout(result: { wallMs: number }, timeoutMs = ANSWERING_PEER_MS) {
  expect(result.wallMs).toBeLessThan(timeoutMs + MARGIN_MS);
}

// Decided before the tests are named, so a run on the double says so in every test name.
const provider = (await dockerAvailable()) ? 'opa container' : 'HTTP double of the public API';

describe(`opa check against an OPA peer with the soma policies (${provider})`, () => {
  let peer: OpaPeer;
  beforeAll(async () => {
    peer = await opaPeer({ policies: ['soma-allow-admins'] });
  });
  afterAll(() => peer?.close());

  it('passes deny-by-default for an anonymous input, with decision latency in details', async () => {
    const result = await check({ url: peer.url, bundles: true, plugins: true, decisions: [DENY_BY_DEFAULT] });
    expect(result.status, result.message).toBe('pass');
    expect(result.message).toBe('OPA healthy, bundles activated, plugins ready, 1 decision as expected');
    expect(result.details).toMatchObject({
      latencyMs: expect.any(Number),
      bundles: 'activated',
      plugins: 'ready',
      decisions: [
        { path: 'soma/policy/allow', defined: true, result: false, expected: false, matched: true, latencyMs: expect.any(Number) },
      ],
    });
    expect(result.target).toBe(peer.url);
  });

  it('sends the input: an admin is allowed where the anonymous caller is denied', async () => {
    const result = await check({
      url: peer.url,
      decisions: [
        { path: 'soma.policy.allow', input: { user: { role: 'admin' } }, expect: true },
        { path: '/v1/data/soma/policy/allow', expect: false },
      ],
    });
    expect(result.status, result.message).toBe('pass');
    expect(result.message).toBe('OPA healthy, 2 decisions as expected');
  });

  it('fails naming the actual and expected result on a decision mismatch', async () => {
    const result = await check({ url: peer.url, decisions: [{ path: 'soma/policy/allow', expect: true }] });
    expect(result.status).toBe('fail');
    expect(result.message).toBe('soma/policy/allow returned false, expected true');
    expect(result.details).toMatchObject({ decisions: [{ matched: false, result: false, expected: true }] });
  });

  it('fails with "policy path not loaded" when the decision is undefined', async () => {
    const result = await check({ url: peer.url, decisions: [{ path: 'somabrain/auth/allow', expect: false }] });
    expect(result.status).toBe('fail');
    expect(result.message).toMatch(/^policy path somabrain\/auth\/allow not loaded/);
    expect(result.details).toMatchObject({ decisions: [{ path: 'somabrain/auth/allow', defined: false }] });
  });

  it('passes on health alone when no decisions are asked for (decisions: [])', async () => {
    const result = await check({ url: peer.url, decisions: [] });
    expect(result.status, result.message).toBe('pass');
    expect(result.message).toBe('OPA healthy');
  });
});

describe(`opa check against an OPA peer with no policy loaded (${provider})`, () => {
  let peer: OpaPeer;
  beforeAll(async () => {
    peer = await opaPeer();
  });
  afterAll(() => peer?.close());

  it('fails with "policy path not loaded" for SomaStack\'s default decision', async () => {
    const result = await check({ url: peer.url, decisions: [DENY_BY_DEFAULT] });
    expect(result.status).toBe('fail');
    expect(result.message).toMatch(/^policy path soma\/policy\/allow not loaded/);
    expectWithinTimeout(result);
  });
});

describe(`opa check against an OPA peer whose bundle never activates (${provider})`, () => {
  let peer: OpaPeer;
  beforeAll(async () => {
    peer = await opaPeer({ bundle: 'never', policies: ['soma-deny-by-default'] });
  });
  afterAll(() => peer?.close());

  it('fails with "bundles not activated" when bundles are required', async () => {
    const result = await check({ url: peer.url, bundles: true, decisions: [DENY_BY_DEFAULT] });
    expect(result.status).toBe('fail');
    expect(result.message).toMatch(/: bundles not activated \(HTTP 500: not all configured bundles have been activated\)$/);
    expect(result.details).toMatchObject({ bundles: 'not activated' });
  });

  it('fails with "plugins not ready", quoting OPA\'s reason, when plugins are required', async () => {
    const result = await check({ url: peer.url, plugins: true });
    expect(result.status).toBe('fail');
    expect(result.message).toMatch(/: plugins not ready \(HTTP 500: not all plugins in OK state\)$/);
  });

  it('passes when neither bundles nor plugins are required', async () => {
    const result = await check({ url: peer.url, decisions: [DENY_BY_DEFAULT] });
    expect(result.status, result.message).toBe('pass');
  });
});

describe(`opa check against an OPA peer with token authentication (${provider})`, () => {
  let peer: OpaPeer;
  beforeAll(async () => {
    peer = await opaPeer({ token: TOKEN, policies: ['soma-deny-by-default'] });
  });
  afterAll(() => peer?.close());

  it('passes with the right bearer token and never prints it', async () => {
    const result = await check({ url: peer.url, token: TOKEN, decisions: [DENY_BY_DEFAULT] });
    expect(result.status, result.message).toBe('pass');
    expectNoSecret(result.output, TOKEN);
  });

  it('fails with "OPA rejected the token" on a wrong token and never prints it', async () => {
    const wrongToken = 'wrong-token-91d0c3';
    const result = await check({ url: peer.url, token: wrongToken, decisions: [DENY_BY_DEFAULT] });
    expect(result.status).toBe('fail');
    expect(result.message).toBe('OPA rejected the token (HTTP 401)');
    expectNoSecret(result.output, wrongToken);
    expectNoSecret(result.output, TOKEN);
    expectWithinTimeout(result);
  });

  it('fails saying a token is required when none is configured', async () => {
    const result = await check({ url: peer.url, decisions: [DENY_BY_DEFAULT] });
    expect(result.status).toBe('fail');
    expect(result.message).toBe('OPA requires a token (HTTP 401) and none is configured');
  });
});

describe('opa check against faulty peers', () => {
  it('fails with "connection refused" on a port nobody listens on', async () => {
    const port = await refusedPort();
    const result = await check({ url: `http://127.0.0.1:${port}`, token: TOKEN, decisions: [DENY_BY_DEFAULT] }, DEAD_PEER_MS);
    expect(result.status).toBe('fail');
    expect(result.message).toMatch(/^GET \/health: connection refused on 127\.0\.0\.1:\d+$/);
    expectNoSecret(result.output, TOKEN);
    expectWithinTimeout(result, DEAD_PEER_MS);
  });

  it('fails within its timeout on a peer that accepts and never answers', async () => {
    const peer = await silentServer();
    try {
      const result = await check({ url: peer.url(), token: TOKEN, bundles: true, decisions: [DENY_BY_DEFAULT] }, DEAD_PEER_MS);
      expect(result.status).toBe('fail');
      expect(result.message).toMatch(/no response from 127\.0\.0\.1:\d+ within 1\d{3} ms/);
      expectNoSecret(result.output, TOKEN);
      expectWithinTimeout(result, DEAD_PEER_MS);
    } finally {
      await peer.close();
    }
  });

  it('fails with "not an HTTP server" on a peer answering non-HTTP bytes', async () => {
    // What Redis answers to an HTTP request line.
    const peer = await rawServer('-ERR unknown command \'GET\'\r\n');
    try {
      const result = await check({ url: peer.url(), decisions: [DENY_BY_DEFAULT] }, DEAD_PEER_MS);
      expect(result.status).toBe('fail');
      expect(result.message).toMatch(/not an HTTP server on 127\.0\.0\.1:\d+/);
      expectWithinTimeout(result, DEAD_PEER_MS);
    } finally {
      await peer.close();
    }
  });

  it('fails with "not an OPA API" on an HTTP server that is not OPA', async () => {
    const other = await httpServer((path) =>
      path === '/health' ? [200, 'text/html', '<html><body>OK</body></html>'] : [404, 'application/json', '{"detail":"Not Found"}'],
    );
    try {
      const result = await check({ url: other.url, decisions: [DENY_BY_DEFAULT] });
      expect(result.status).toBe('fail');
      expect(result.message).toMatch(/^not an OPA API at http:\/\/127\.0\.0\.1:\d+ \(GET \/health answered HTTP 200/);
      expectWithinTimeout(result);
    } finally {
      await other.close();
    }
  });

  it('fails with "not an OPA API" when /health looks right but the Data API is missing', async () => {
    const other = await httpServer((path) =>
      path === '/health' ? [200, 'application/json', '{}'] : [404, 'text/plain', 'Cannot POST'],
    );
    try {
      const result = await check({ url: other.url, decisions: [DENY_BY_DEFAULT] });
      expect(result.status).toBe('fail');
      expect(result.message).toMatch(/^not an OPA API at .*\(POST \/v1\/data\/soma\/policy\/allow answered HTTP 404/);
    } finally {
      await other.close();
    }
  });

  it('fails when a decision body is larger than the cap instead of reading it all', async () => {
    const peer = await endlessDecisionServer();
    try {
      const result = await check({ url: peer.url, decisions: [DENY_BY_DEFAULT] });
      expect(result.status).toBe('fail');
      expect(result.message).toMatch(/POST \/v1\/data\/soma\/policy\/allow: body larger than 1 MiB/);
      expectWithinTimeout(result);
    } finally {
      await peer.close();
    }
  });
});

/** A plain HTTP server that is not OPA, answering by path. */
async function httpServer(route: (path: string) => [number, string, string]) {
  const server: Server = createServer((req, res) => {
    const [status, type, body] = route(new URL(req.url ?? '/', 'http://x').pathname);
    res.writeHead(status, { 'content-type': type }).end(body);
  });
  return listen(server);
}

/** Answers /health like OPA, then streams a decision body that never ends. */
async function endlessDecisionServer() {
  const chunk = Buffer.from(`"${'x'.repeat(64 * 1024)}",`);
  const server: Server = createServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"result":[');
    const pump = () => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', pump);
    };
    res.on('error', () => {});
    pump();
  });
  return listen(server);
}

async function listen(server: Server) {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
