// A Qdrant peer for the qdrant check's tests: a real qdrant/qdrant container when Docker answers,
// else a small node:http double that follows Qdrant's public HTTP API for the routes the check
// uses (status codes, content types and body shapes of Qdrant 1.x).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { announcePeer, dockerAvailable } from '../docker.js';
import { fetchHttp } from '../../../src/clients/http.js';
import { serveOnLoopback } from '../faults.js';

export type Distance = 'Cosine' | 'Euclid' | 'Dot' | 'Manhattan';
export type CollectionStatus = 'green' | 'yellow' | 'grey' | 'red';

export interface VectorSpec {
  size: number;
  distance: Distance;
}

/** A collection to create: one unnamed vector (size, distance) or named vectors. */
export interface CollectionSeed {
  name: string;
  vectors: VectorSpec | Record<string, VectorSpec>;
}

export interface QdrantPeerOptions {
  apiKey?: string;
  collections?: CollectionSeed[];
}

/** States only the double can be put in (a real server cannot be made red on demand). */
export interface QdrantDoubleOptions extends QdrantPeerOptions {
  /** Status per collection name (default green). */
  statuses?: Record<string, CollectionStatus>;
  /** `not-ready`: /readyz answers 503. */
  readiness?: 'ready' | 'not-ready';
}

export interface QdrantPeer {
  provider: 'testcontainers' | 'http-double';
  url: string;
  apiKey?: string;
  close(): Promise<void>;
}

const QDRANT_IMAGE = 'qdrant/qdrant:v1.13.6';
const DOUBLE_VERSION = '1.13.6';

/** A real Qdrant in a container when Docker is available, else the HTTP double. */
export async function qdrantPeer(options: QdrantPeerOptions = {}): Promise<QdrantPeer> {
  if (await dockerAvailable()) return qdrantContainer(options);
  return qdrantHttpDouble(options);
}

async function qdrantContainer(options: QdrantPeerOptions): Promise<QdrantPeer> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const container = await new GenericContainer(QDRANT_IMAGE)
    .withEnvironment(options.apiKey ? { QDRANT__SERVICE__API_KEY: options.apiKey } : {})
    .withExposedPorts(6333)
    .withWaitStrategy(Wait.forHttp('/readyz', 6333).forStatusCode(200))
    .withStartupTimeout(60_000)
    .start();
  const url = `http://${container.getHost()}:${container.getMappedPort(6333)}`;
  try {
    // Test setup, not the check: the check itself never creates anything.
    for (const c of options.collections ?? []) {
      const res = await fetchHttp({
        url: `${url}/collections/${encodeURIComponent(c.name)}`,
        method: 'PUT',
        headers: options.apiKey ? { 'api-key': options.apiKey } : {},
        json: { vectors: c.vectors },
        timeoutMs: 10_000,
      });
      if (res.status !== 200) throw new Error(`creating collection ${c.name}: HTTP ${res.status} ${res.text}`);
    }
  } catch (err) {
    await container.stop();
    throw err;
  }
  announcePeer('qdrant', 'testcontainers', `${QDRANT_IMAGE} ${url}`);
  return { provider: 'testcontainers', url, apiKey: options.apiKey, close: async () => void (await container.stop()) };
}

/** The HTTP double, always: for states a real server cannot be put in on demand. */
export async function qdrantHttpDouble(options: QdrantDoubleOptions = {}): Promise<QdrantPeer> {
  const collections = new Map((options.collections ?? []).map((c) => [c.name, c]));
  const server = createServer((req, res) => {
    try {
      answer(req, res, options, collections);
    } catch (err) {
      sendJson(res, 500, { status: { error: `Service internal error: ${String(err)}` }, time: 0 });
    }
  });
  const served = await serveOnLoopback(server);
  const url = served.url();
  announcePeer('qdrant', 'http-double', url);
  return {
    provider: 'http-double',
    url,
    apiKey: options.apiKey,
    close: served.close,
  };
}

// Qdrant lets these through without an API key (probes must work without secrets).
const OPEN_PATHS = new Set(['/', '/healthz', '/livez', '/readyz']);

function answer(
  req: IncomingMessage,
  res: ServerResponse,
  options: QdrantDoubleOptions,
  collections: Map<string, CollectionSeed>,
): void {
  const path = new URL(req.url ?? '/', 'http://double').pathname;
  if (options.apiKey && !OPEN_PATHS.has(path)) {
    // Qdrant reads the key from `api-key` or from `Authorization: Bearer`, and answers 401 to a
    // missing key and to a wrong one alike.
    const bearer = /^Bearer (.*)$/i.exec(req.headers.authorization ?? '')?.[1];
    const key = req.headers['api-key'] ?? bearer;
    if (key === undefined) return sendText(res, 401, 'Must provide an API key or an Authorization bearer token');
    if (key !== options.apiKey) return sendText(res, 401, 'Invalid API key or JWT');
  }
  if (req.method !== 'GET') return sendText(res, 405, '');
  const readiness = options.readiness ?? 'ready';
  if (path === '/') {
    return sendJson(res, 200, { title: 'qdrant - vector search engine', version: DOUBLE_VERSION, commit: '0000000' });
  }
  if (path === '/healthz') return sendText(res, 200, 'healthz check passed');
  if (path === '/livez') return sendText(res, 200, 'livez check passed');
  if (path === '/readyz' && readiness === 'ready') return sendText(res, 200, 'all shards are ready');
  if (path === '/readyz' && readiness === 'not-ready') return sendText(res, 503, 'some shards are not ready');
  if (path === '/collections') {
    const list = [...collections.keys()].map((name) => ({ name }));
    return sendJson(res, 200, { result: { collections: list }, status: 'ok', time: 0.000012 });
  }
  const match = /^\/collections\/([^/]+)$/.exec(path);
  if (match) {
    const name = decodeURIComponent(match[1]!);
    const c = collections.get(name);
    if (!c) {
      return sendJson(res, 404, { status: { error: `Not found: Collection \`${name}\` doesn't exist!` }, time: 0.000008 });
    }
    return sendJson(res, 200, { result: collectionInfo(c, options.statuses?.[name] ?? 'green'), status: 'ok', time: 0.00002 });
  }
  // actix-web's answer for an unknown route: 404 with an empty body.
  sendText(res, 404, '');
}

function collectionInfo(c: CollectionSeed, status: CollectionStatus) {
  return {
    status,
    optimizer_status: status === 'red' ? { error: 'Service internal error: disk full' } : 'ok',
    indexed_vectors_count: 0,
    points_count: 0,
    segments_count: 2,
    config: {
      params: { vectors: c.vectors, shard_number: 1, replication_factor: 1, write_consistency_factor: 1, on_disk_payload: true },
      hnsw_config: { m: 16, ef_construct: 100, full_scan_threshold: 10000, max_indexing_threads: 0, on_disk: false },
      optimizer_config: {
        deleted_threshold: 0.2,
        vacuum_min_vector_number: 1000,
        default_segment_number: 0,
        max_segment_size: null,
        memmap_threshold: null,
        indexing_threshold: 20000,
        flush_interval_sec: 5,
        max_optimization_threads: null,
      },
      wal_config: { wal_capacity_mb: 32, wal_segments_ahead: 0 },
      quantization_config: null,
    },
    payload_schema: {},
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function sendText(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(body);
}
