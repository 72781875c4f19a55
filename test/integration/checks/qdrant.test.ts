// The qdrant check against a Qdrant peer (a real container with Docker, else the HTTP double of
// the public API) and against faulty peers. Each case runs the compiled check in a child process,
// which proves the process exits by itself (no open handle).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusedPort, rawServer, silentServer } from '../../support/faults.js';
import { runCheck, MARGIN_MS, expectNoSecret } from '../../support/run-check.js';
import { dockerAvailable } from '../../support/docker.js';
import { qdrantHttpDouble, qdrantPeer, type QdrantPeer } from '../../support/peers/qdrant.js';
import { fetchHttp } from '../../../src/clients/http.js';

// Budgets: a peer that answers gets a long one (the machine may be loaded, and these tests are
// not about speed); a dead or hanging peer a short one, since failing within it is the point.
const ANSWERING_PEER_MS = 10_000;
const DEAD_PEER_MS = 1500;
// Child start-up on top of the check's own budget: generous, this is not a speed test.
const API_KEY = 'qdrant-test-key-7f3a91';

const check = (options: Record<string, unknown>, timeoutMs = ANSWERING_PEER_MS) =>
  runCheck('qdrant', options, { timeoutMs });

function expectWithinTimeout(result: { wallMs: number }, timeoutMs = ANSWERING_PEER_MS) {
  expect(result.wallMs).toBeLessThan(timeoutMs + MARGIN_MS);
}

// Decided before the tests are named, so a run on the double says so in every test name.
const provider = (await dockerAvailable()) ? 'qdrant container' : 'HTTP double of the public API';

describe(`qdrant check against a Qdrant peer (${provider})`, () => {
  let peer: QdrantPeer;
  beforeAll(async () => {
    peer = await qdrantPeer({
      apiKey: API_KEY,
      collections: [
        { name: 'memories', vectors: { size: 768, distance: 'Cosine' } },
        {
          name: 'multimodal',
          vectors: { text: { size: 384, distance: 'Dot' }, image: { size: 512, distance: 'Euclid' } },
        },
      ],
    });
  });
  afterAll(() => peer?.close());

  it('passes when required collections are present, sized and green, with details', async () => {
    const result = await check({
      url: peer.url,
      apiKey: API_KEY,
      collections: ['multimodal', { name: 'memories', size: 768, distance: 'Cosine' }],
    });
    expect(result.status, result.message).toBe('pass');
    expect(result.message).toMatch(/Qdrant ready, 2 collections, required multimodal, memories green/);
    expect(result.details).toMatchObject({
      readiness: 'ready',
      readinessEndpoint: '/readyz',
      collectionCount: 2,
      version: expect.stringMatching(/^\d+\.\d+/),
      required: {
        memories: { present: true, status: 'green', vectors: [{ size: 768, distance: 'Cosine' }] },
        multimodal: { present: true, status: 'green' },
      },
    });
    expect((result.details!.collections as string[]).sort()).toEqual(['memories', 'multimodal']);
    expect(result.target).toBe(peer.url);
    expectNoSecret(result.output, API_KEY);
  });

  it('fails naming a missing collection', async () => {
    const result = await check({ url: peer.url, apiKey: API_KEY, collections: ['memories', 'ghosts'] });
    expect(result.status).toBe('fail');
    expect(result.message).toBe('collection ghosts missing');
    expect(result.details).toMatchObject({ required: { ghosts: { present: false } } });
  });

  it('fails naming the actual and expected vector size', async () => {
    const result = await check({ url: peer.url, apiKey: API_KEY, collections: [{ name: 'memories', size: 1536 }] });
    expect(result.status).toBe('fail');
    expect(result.message).toBe('collection memories vector size 768, expected 1536');
  });

  it('fails naming the actual and expected distance', async () => {
    const result = await check({ url: peer.url, apiKey: API_KEY, collections: [{ name: 'memories', distance: 'Dot' }] });
    expect(result.status).toBe('fail');
    expect(result.message).toBe('collection memories distance Cosine, expected Dot');
  });

  it('accepts named vectors when one of them matches, and lists them when none does', async () => {
    const ok = await check({
      url: peer.url,
      apiKey: API_KEY,
      collections: [{ name: 'multimodal', size: 512, distance: 'Euclid' }],
    });
    expect(ok.status, ok.message).toBe('pass');
    const bad = await check({
      url: peer.url,
      apiKey: API_KEY,
      collections: [{ name: 'multimodal', size: 384, distance: 'Euclid' }],
    });
    expect(bad.status).toBe('fail');
    expect(bad.message).toMatch(/collection multimodal has no vector with 384, Euclid: .*text\(384, Dot\)/);
  });

  it('fails with "rejected the API key" on a wrong key and never prints the key', async () => {
    const wrongKey = 'wrong-key-5c2e8d';
    const result = await check({ url: peer.url, apiKey: wrongKey, collections: ['memories'] });
    expect(result.status).toBe('fail');
    expect(result.message).toMatch(/^Qdrant rejected the API key \(HTTP 40[13]\)$/);
    expectNoSecret(result.output, wrongKey);
    expectNoSecret(result.output, API_KEY);
    expectWithinTimeout(result);
  });

  it('fails saying a key is required when none is configured', async () => {
    const result = await check({ url: peer.url });
    expect(result.status).toBe('fail');
    expect(result.message).toMatch(/Qdrant requires an API key/);
  });
});

describe('qdrant check on states only the HTTP double of the public API can be put in', () => {
  const seeds = [{ name: 'memories', vectors: { size: 768, distance: 'Cosine' as const } }];

  it('warns on a yellow collection (HTTP double of the public API)', async () => {
    const peer = await qdrantHttpDouble({ collections: seeds, statuses: { memories: 'yellow' } });
    try {
      const result = await check({ url: peer.url, collections: ['memories'] });
      expect(result.status).toBe('warn');
      expect(result.message).toMatch(/collection memories is yellow/);
      expect(result.details).toMatchObject({ required: { memories: { status: 'yellow' } } });
    } finally {
      await peer.close();
    }
  });

  it('warns on a grey collection (HTTP double of the public API)', async () => {
    const peer = await qdrantHttpDouble({ collections: seeds, statuses: { memories: 'grey' } });
    try {
      const result = await check({ url: peer.url, collections: ['memories'] });
      expect(result.status).toBe('warn');
      expect(result.message).toMatch(/collection memories is grey/);
    } finally {
      await peer.close();
    }
  });

  it('fails on a red collection (HTTP double of the public API)', async () => {
    const peer = await qdrantHttpDouble({ collections: seeds, statuses: { memories: 'red' } });
    try {
      const result = await check({ url: peer.url, collections: ['memories'] });
      expect(result.status).toBe('fail');
      expect(result.message).toMatch(/collection memories is red/);
    } finally {
      await peer.close();
    }
  });

  it('the HTTP double, like Qdrant, takes the key as Authorization: Bearer and answers a wrong key with 401', async () => {
    const peer = await qdrantHttpDouble({ apiKey: API_KEY, collections: seeds });
    try {
      const get = (headers: Record<string, string>) => fetchHttp({ url: `${peer.url}/collections`, headers, timeoutMs: 5000 });
      expect((await get({ authorization: `Bearer ${API_KEY}` })).status).toBe(200);
      expect((await get({ 'api-key': API_KEY })).status).toBe(200);
      expect((await get({ authorization: 'Bearer wrong' })).status).toBe(401);
      expect((await get({ 'api-key': 'wrong' })).status).toBe(401);
      expect((await get({})).status).toBe(401);
    } finally {
      await peer.close();
    }
  });

  it('fails with "shards not ready" when /readyz answers 503 (HTTP double of the public API)', async () => {
    const peer = await qdrantHttpDouble({ collections: seeds, readiness: 'not-ready' });
    try {
      const result = await check({ url: peer.url, collections: ['memories'] });
      expect(result.status).toBe('fail');
      expect(result.message).toMatch(/shards not ready \(\/readyz answered HTTP 503/);
      expect(result.details).toMatchObject({ readiness: 'not-ready', collectionCount: 1 });
    } finally {
      await peer.close();
    }
  });
});

describe('qdrant check against faulty peers', () => {
  it('fails with "connection refused" on a port nobody listens on', async () => {
    const port = await refusedPort();
    const result = await check({ url: `http://127.0.0.1:${port}`, apiKey: API_KEY }, DEAD_PEER_MS);
    expect(result.status).toBe('fail');
    expect(result.message).toMatch(/connection refused on 127\.0\.0\.1:\d+/);
    expectNoSecret(result.output, API_KEY);
    expectWithinTimeout(result, DEAD_PEER_MS);
  });

  it('fails within its timeout on a peer that accepts and never answers', async () => {
    const peer = await silentServer();
    try {
      const result = await check({ url: peer.url(), apiKey: API_KEY, collections: ['memories'] }, DEAD_PEER_MS);
      expect(result.status).toBe('fail');
      expect(result.message).toMatch(/no response from 127\.0\.0\.1:\d+ within 1\d{3} ms/);
      expectNoSecret(result.output, API_KEY);
      expectWithinTimeout(result, DEAD_PEER_MS);
    } finally {
      await peer.close();
    }
  });

  it('fails with "not an HTTP server" on a peer answering non-HTTP bytes', async () => {
    const peer = await rawServer('-ERR unknown command\r\n');
    try {
      const result = await check({ url: peer.url() }, DEAD_PEER_MS);
      expect(result.status).toBe('fail');
      expect(result.message).toMatch(/not an HTTP server on 127\.0\.0\.1:\d+/);
      expectWithinTimeout(result, DEAD_PEER_MS);
    } finally {
      await peer.close();
    }
  });

  it('fails with "not a Qdrant API" on an HTTP server that is not Qdrant', async () => {
    const other = await jsonServer((path) =>
      path === '/collections' ? [200, { items: [], page: 1 }] : [404, { detail: 'Not Found' }],
    );
    try {
      const result = await check({ url: other.url, collections: ['memories'] });
      expect(result.status).toBe('fail');
      expect(result.message).toMatch(/^not a Qdrant API at http:\/\/127\.0\.0\.1:\d+ \(GET \/collections answered HTTP 200/);
      expectWithinTimeout(result);
    } finally {
      await other.close();
    }
  });

  it('fails when a listing body is larger than the cap instead of reading it all', async () => {
    const peer = await endlessCollectionsServer();
    try {
      const result = await check({ url: peer.url });
      expect(result.status).toBe('fail');
      expect(result.message).toMatch(/GET \/collections: body larger than 1 MiB/);
      expectWithinTimeout(result);
    } finally {
      await peer.close();
    }
  });
});

/** Answers /readyz like Qdrant, then streams a /collections body that never ends. */
async function endlessCollectionsServer() {
  const chunk = Buffer.from(`{"name":"${'x'.repeat(64 * 1024)}"},`);
  const server: Server = createServer((req, res) => {
    if (req.url !== '/collections') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('all shards are ready');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"result":{"collections":[');
    const pump = () => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', pump);
    };
    res.on('error', () => {});
    pump();
  });
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

/** A plain JSON HTTP server that is not Qdrant, answering by path. */
async function jsonServer(route: (path: string) => [number, unknown]) {
  const server: Server = createServer((req, res) => {
    const [status, body] = route(new URL(req.url ?? '/', 'http://x').pathname);
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
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
