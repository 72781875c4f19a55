// Doubles of the three SomaStack HTTP services, for the end-to-end tests of soma-verify. Each is a
// real node:http server on 127.0.0.1 that answers the routes of /work/shared/contracts/somastack.md
// sections 1-3 with the exact field names, status codes and auth behaviour of the chosen
// generation. Knobs (`double.set({...})`) make them degraded, down, slow, silent, resetting or
// huge; every request is recorded so a test can assert what a check sent (no writes, how many
// probes detection cost, which bearer token arrived).
//
// The memory routes (SFM /memories, SomaBrain /remember, /recall, /delete, /memory/*) follow the
// same contracts, for the smoke scenarios; their stored data is exposed (`memories`, `longTerm()`,
// `workingMemory`) so a test asserts from the double's own state that nothing was left behind.
// A SomaBrain double given an SFM double (`memory`) writes its long-term items into it, as the
// real SomaBrain writes into SFM. What they do NOT model: rate limits, JWTs, real vector search.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { rawServer, serveOnLoopback, type TcpPeer } from './faults.js';

export type Generation = 'gen1' | 'gen2';

/** How the double misbehaves, on every route or only on `paths`. */
export type Fault =
  /** Answer after `ms`; with `landsAnyway`, a write is carried out then even if the client hung up (a slow server). */
  | { mode: 'delay'; ms: number; paths?: string[]; landsAnyway?: boolean }
  | { mode: 'silent'; paths?: string[] }
  /** Half the body, then the socket dies; with a content-length promising more, or chunked. */
  | { mode: 'reset'; chunked?: boolean; paths?: string[] }
  | { mode: 'huge'; bytes?: number; paths?: string[] };

export interface RecordedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  headers: IncomingMessage['headers'];
  /** The request body, parsed as JSON when it is JSON (undefined when empty). */
  body?: unknown;
}

export interface Double<State> {
  url: string;
  port: number;
  /** The current knobs; change them with set(), restore them with reset(). */
  readonly state: State;
  set(patch: Partial<State>): void;
  /** Restore the knobs given at start and forget the recorded requests. */
  reset(): void;
  readonly requests: RecordedRequest[];
  /** Requests received, on one path or on all. */
  count(path?: string): number;
  /** Requests with a method other than GET/HEAD: a check must send none. */
  writes(): RecordedRequest[];
  /** The bearer tokens received, in order (undefined for a request without one). */
  bearerTokens(): Array<string | undefined>;
  close(): Promise<void>;
}

interface CommonState {
  generation: Generation;
  fault?: Fault;
}

type Reply = { status: number; body: unknown; type?: 'json' | 'text' | 'html' };
type Router<State> = (req: RecordedRequest, state: State) => Reply;

const json = (status: number, body: unknown): Reply => ({ status, body, type: 'json' });
const text = (status: number, body: string): Reply => ({ status, body, type: 'text' });
const NOT_FOUND = json(404, { detail: 'Not Found' });

/** The common server: records, applies faults, then answers what the router says. */
async function serve<State extends CommonState>(initial: State, route: Router<State>): Promise<Double<State>> {
  let state: State = structuredClone(initial);
  const requests: RecordedRequest[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const recorded: RecordedRequest = { method: req.method ?? 'GET', path, headers: req.headers };
    requests.push(recorded);
    const fault = state.fault && (!state.fault.paths || state.fault.paths.includes(path)) ? state.fault : undefined;
    if (fault?.mode === 'silent') return void req.resume(); // hold the socket; close() destroys it
    // Read the (small) body first: the memory routes need it.
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      if (raw) {
        try {
          recorded.body = JSON.parse(raw);
        } catch {
          recorded.body = raw;
        }
      }
      // A delayed answer is routed when it is sent: a write lands late, as on a slow server.
      const answer = () => send(res, route(recorded, state), fault);
      if (fault?.mode === 'delay') {
        const timer = setTimeout(answer, fault.ms);
        if (!fault.landsAnyway) res.on('close', () => clearTimeout(timer));
        return;
      }
      answer();
    });
  });
  const { port, close } = await serveOnLoopback(server);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get state() {
      return state;
    },
    set(patch) {
      state = { ...state, ...patch };
    },
    reset() {
      state = structuredClone(initial);
      requests.length = 0;
    },
    requests,
    count: (p) => (p === undefined ? requests.length : requests.filter((r) => r.path === p).length),
    writes: () => requests.filter((r) => r.method !== 'GET' && r.method !== 'HEAD'),
    bearerTokens: () =>
      requests.map((r) => /^Bearer (.+)$/.exec(String(r.headers.authorization ?? ''))?.[1]),
    close,
  };
}

function send(res: ServerResponse, reply: Reply, fault: Fault | undefined): void {
  if (fault?.mode === 'huge') {
    // A JSON string larger than the 1 MiB the health check accepts.
    const huge = Buffer.from(`{"status":"${'x'.repeat(fault.bytes ?? 2 * 1024 * 1024)}"}`);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(huge.length) });
    res.end(huge);
    return;
  }
  const body =
    reply.type === 'json' ? JSON.stringify(reply.body) : String(reply.body);
  const contentType =
    reply.type === 'json' ? 'application/json'
    : reply.type === 'html' ? 'text/html; charset=utf-8'
    : 'text/plain; version=0.0.4; charset=utf-8';
  const bytes = Buffer.from(body);
  if (fault?.mode === 'reset') {
    // The headers promise a body (by length, or chunked with no end yet); half of it arrives,
    // then the connection dies.
    res.writeHead(
      reply.status,
      fault.chunked ? { 'content-type': contentType } : { 'content-type': contentType, 'content-length': String(bytes.length) },
    );
    res.write(bytes.subarray(0, Math.max(1, Math.floor(bytes.length / 2))));
    setTimeout(() => res.socket?.destroy(), 20);
    return;
  }
  res.writeHead(reply.status, { 'content-type': contentType, 'content-length': String(bytes.length) });
  res.end(bytes);
}

const bearer = (req: RecordedRequest) => /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''))?.[1];

// ---------------------------------------------------------------------------------------------
// SomaFractalMemory (contracts section 1)

export interface SfmState extends CommonState {
  /** The three backends: false means that store is down (kv = Postgres+Redis, vector = Qdrant). */
  stores: { kv_store: boolean; vector_store: boolean; graph_store: boolean };
  /** SOMA_API_TOKEN; gen2 /health requires it, and the memory routes do. */
  token: string;
  /** gen2 /health overall word; derived from `stores` when unset. */
  gen2Status?: 'healthy' | 'degraded' | 'unhealthy';
  /** The memory routes take any request (SOMA_API_TOKEN unset). */
  authOff?: boolean;
  /** gen1: DELETE /memories/{coord} removes the data, then answers 500 (its vector delete is broken). */
  deleteAnswers500?: boolean;
  /** POST /memories/search answers an empty list (gen2 without a vector store whose exact match misses). */
  searchEmpty?: boolean;
  /** A degraded 200: POST /memories answers ok: false (gen1) and stores nothing. */
  writeNotOk?: boolean;
}

/** A memory the SFM double holds. */
export interface StoredMemory {
  /** Normalised `x,y,z`. */
  coord: string;
  coordinate: number[];
  payload: Record<string, unknown>;
  memory_type: string;
  /** gen2 deletes softly: the row stays, marked. */
  deleted: boolean;
}

export interface SfmDouble extends Double<SfmState> {
  /** Every memory held, soft-deleted ones included, by normalised coord. */
  readonly memories: Map<string, StoredMemory>;
  /** The memories still there (not deleted). */
  live(): StoredMemory[];
}

/** `x,y,z` as SFM parses it: three numbers, or undefined. */
function parseCoord(text: string): number[] | undefined {
  const parts = decodeURIComponent(text).split(',').map((p) => (p.trim() === '' ? NaN : Number(p)));
  return parts.length === 3 && parts.every(Number.isFinite) ? parts : undefined;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export async function sfmDouble(options: Partial<SfmState> & { generation: Generation }): Promise<SfmDouble> {
  const started = Date.now();
  const initial: SfmState = {
    stores: { kv_store: true, vector_store: true, graph_store: true },
    token: 'sfm-double-token',
    ...options,
  };
  const memories = new Map<string, StoredMemory>();
  const live = () => [...memories.values()].filter((m) => !m.deleted);
  const double = await serve(initial, (req, s) => {
    const all = s.stores.kv_store && s.stores.vector_store && s.stores.graph_store;
    if (req.path === '/ping') return json(200, { ping: 'pong' });
    if (req.path === '/memories' || req.path.startsWith('/memories/')) return sfmMemories(req, s, memories);
    if (s.generation === 'gen1') {
      if (['/healthz', '/readyz', '/health'].includes(req.path)) return json(200, { ...s.stores });
      if (req.path === '/stats') return json(200, { total_memories: 3 + live().length, episodic: 2 + live().length, semantic: 1 });
      if (req.path === '/metrics') return text(200, SFM_GEN1_METRICS);
      return NOT_FOUND;
    }
    if (req.path === '/healthz')
      return all ? json(200, { ...s.stores }) : json(503, { detail: 'System backend is unhealthy' });
    if (req.path === '/readyz') return json(200, { ...s.stores });
    if (req.path === '/health') {
      if (bearer(req) !== s.token) return json(401, { detail: 'Unauthorized' });
      const service = (name: string, healthy: boolean) => ({
        name,
        healthy,
        latency_ms: 1.2,
        details: healthy ? {} : { error: `${name} connection refused` },
      });
      const services = [
        service('postgresql', s.stores.kv_store),
        service('redis', s.stores.kv_store),
        service('milvus', s.stores.vector_store),
      ];
      const healthy = services.every((x) => x.healthy);
      const status = s.gen2Status ?? (healthy ? 'healthy' : s.stores.kv_store ? 'degraded' : 'unhealthy');
      return json(200, {
        healthy: status === 'healthy',
        status,
        version: '2.0.0',
        uptime_seconds: Math.round((Date.now() - started) / 1000),
        timestamp: new Date().toISOString(),
        services,
        database: { vendor: 'postgresql', connected: s.stores.kv_store },
      });
    }
    if (req.path === '/stats') return json(200, { total_memories: 3 + live().length, episodic: 2 + live().length, semantic: 1, namespace: 'default' });
    if (req.path === '/metrics') return text(200, PYTHON_PROCESS_METRICS);
    return NOT_FOUND;
  });
  const reset = double.reset;
  return Object.assign(double, {
    memories,
    live,
    reset() {
      reset();
      memories.clear();
    },
  });
}

/** SFM's /memories routes (contracts section 1), both generations. */
function sfmMemories(req: RecordedRequest, s: SfmState, memories: Map<string, StoredMemory>): Reply {
  if (!s.authOff) {
    const token = bearer(req);
    if (s.generation === 'gen1') {
      if (!token) return json(401, { detail: 'Missing bearer token' });
      if (token !== s.token) return json(403, { detail: 'Invalid token' });
    } else if (token !== s.token) return json(401, { detail: 'Unauthorized' });
  }
  const gen1 = s.generation === 'gen1';
  const shape = (m: StoredMemory) =>
    gen1
      ? { ...m.payload, memory_type: m.memory_type, coordinate: m.coordinate }
      : { coordinate: m.coordinate, payload: m.payload, memory_type: m.memory_type, created_at: '2026-11-23T06:28:00Z' };
  if (req.path === '/memories' && req.method === 'POST') {
    const body = req.body;
    if (!isRecord(body) || typeof body.coord !== 'string' || !isRecord(body.payload))
      return json(422, { detail: [{ loc: ['body'], msg: 'field required', type: 'value_error.missing' }] });
    const memoryType = body.memory_type ?? 'episodic';
    if (memoryType !== 'episodic' && memoryType !== 'semantic')
      return json(422, { detail: [{ loc: ['body', 'memory_type'], msg: 'invalid memory_type' }] });
    const coordinate = parseCoord(body.coord);
    if (!coordinate) return gen1 ? json(500, { detail: 'Internal Server Error' }) : json(400, { detail: 'Invalid coord' });
    if (s.writeNotOk) return json(200, { coord: body.coord, memory_type: memoryType, ok: false });
    const coord = coordinate.join(',');
    memories.set(coord, { coord, coordinate, payload: body.payload, memory_type: memoryType, deleted: false });
    return json(200, gen1 ? { coord: body.coord, memory_type: memoryType, ok: true } : { coord: body.coord, memory_type: memoryType });
  }
  if (req.path === '/memories/search' && req.method === 'POST') {
    const body = req.body;
    if (!isRecord(body) || typeof body.query !== 'string') return json(422, { detail: [{ loc: ['body', 'query'], msg: 'field required' }] });
    const query = body.query;
    const topK = typeof body.top_k === 'number' ? body.top_k : 5;
    if (s.searchEmpty) return json(200, { memories: [] });
    const found = [...memories.values()].filter((m) => {
      if (m.deleted) return false;
      // gen1 (vector search): anything whose payload mentions the query ranks first; gen2 without
      // a vector store: exact matches on text, content or summary only.
      if (gen1 || s.stores.vector_store) return JSON.stringify(m.payload).includes(query);
      return ['text', 'content', 'summary'].some((k) => m.payload[k] === query);
    });
    return json(200, { memories: found.slice(0, topK).map(shape) });
  }
  const coordinate = parseCoord(req.path.slice('/memories/'.length));
  if (!coordinate) return gen1 ? json(500, { detail: 'Internal Server Error' }) : json(400, { detail: 'Invalid coord' });
  const coord = coordinate.join(',');
  const memory = memories.get(coord);
  if (req.method === 'GET') {
    if (!memory || memory.deleted) return json(404, { detail: 'Memory not found' });
    return json(200, { memory: shape(memory) });
  }
  if (req.method === 'DELETE') {
    const existed = !!memory && !memory.deleted;
    if (gen1) {
      memories.delete(coord);
      if (existed && s.deleteAnswers500) return json(500, { detail: 'Internal Server Error' });
    } else if (memory) memory.deleted = true;
    return json(200, { coord: req.path.slice('/memories/'.length), deleted: existed });
  }
  return json(405, { detail: 'Method Not Allowed' });
}

const PYTHON_PROCESS_METRICS = `# HELP python_info Python platform information
# TYPE python_info gauge
python_info{implementation="CPython",major="3",minor="12",patchlevel="3",version="3.12.3"} 1.0
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.7e+09
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 8.1e+07
`;

const SFM_GEN1_METRICS = `# HELP api_requests_total Total API requests
# TYPE api_requests_total counter
api_requests_total{endpoint="/memories",method="POST"} 12.0
# HELP api_request_latency_seconds API request latency
# TYPE api_request_latency_seconds histogram
api_request_latency_seconds_bucket{endpoint="/memories",le="0.1"} 12.0
api_request_latency_seconds_bucket{endpoint="/memories",le="+Inf"} 12.0
api_request_latency_seconds_sum{endpoint="/memories"} 0.3
api_request_latency_seconds_count{endpoint="/memories"} 12.0
# HELP api_responses_total Total API responses
# TYPE api_responses_total counter
api_responses_total{endpoint="/memories",status="200"} 12.0
# HELP http_404_requests_total Total 404 responses
# TYPE http_404_requests_total counter
http_404_requests_total 0.0
${PYTHON_PROCESS_METRICS}`;

// ---------------------------------------------------------------------------------------------
// SomaBrain (contracts section 2)

export interface SomabrainState extends CommonState {
  /** gen1: memory_ok and components.memory.http. */
  memoryOk: boolean;
  embedderOk: boolean;
  predictorOk: boolean;
  /** gen1: OPA unreachable, so its middleware answers 403 on every route, /health too. */
  opaDown: boolean;
  /** gen2: component statuses by name; unnamed ones are "healthy". */
  componentStatus: Record<string, string>;
  /** gen2 overall word; derived from the components when unset. */
  gen2Status?: 'healthy' | 'degraded' | 'critical';
  /** gen2: Django ALLOWED_HOSTS; any other Host header gets 400. */
  allowedHosts: string[];
  /** The bearer token of the memory routes (gen1 SOMABRAIN_API_TOKEN: 401 missing, 403 invalid;
   *  gen2 SOMABRAIN_MEMORY_HTTP_TOKEN: 401); unset: dev mode, no auth. */
  token?: string;
  /** Long-term writes land this long after remember answers (asynchronous writes). */
  longTermDelayMs: number;
  /** The write is only queued: gen1 answers breaker_open/queued, gen2 `coordinate: null`; only
   *  working memory gets the item. */
  queueWrites: boolean;
  /** gen2 recall answers `degraded: true` with working memory only. */
  recallDegraded: boolean;
}

/** An item SomaBrain keeps in working memory: an in-process buffer it evicts itself. */
export interface WorkingMemoryItem {
  tenant: string;
  payload: Record<string, unknown>;
}

export interface SomabrainDouble extends Double<SomabrainState> {
  /** The long-term items still there: the linked SFM double's live memories, or its own. */
  longTerm(): StoredMemory[];
  /** Working memory (no route removes from it; SomaBrain evicts it itself). */
  readonly workingMemory: WorkingMemoryItem[];
  /** Long-term writes accepted and not landed yet (longTermDelayMs). */
  pendingWrites(): number;
  /** The X-Tenant-ID headers of the memory requests, in order. */
  tenantHeaders(): Array<string | undefined>;
}

/** SomaBrain's long-term store: the SFM double's memories when linked (as SomaBrain writes into
 *  SFM), else its own; writes may land late, and a delete cancels a write still on its way. */
class LongTermStore {
  private readonly own = new Map<string, StoredMemory>();
  private readonly pending = new Map<string, NodeJS.Timeout>();
  constructor(private readonly sfm?: SfmDouble) {}
  private get map() {
    return this.sfm?.memories ?? this.own;
  }
  write(coordinate: number[], payload: Record<string, unknown>, delayMs: number): void {
    const coord = coordinate.join(',');
    const land = () => {
      this.pending.delete(coord);
      this.map.set(coord, { coord, coordinate, payload, memory_type: 'episodic', deleted: false });
    };
    if (delayMs <= 0) return land();
    clearTimeout(this.pending.get(coord));
    this.pending.set(coord, setTimeout(land, delayMs));
  }
  remove(coordinate: number[]): void {
    const coord = coordinate.join(',');
    clearTimeout(this.pending.get(coord));
    this.pending.delete(coord);
    const m = this.map.get(coord);
    if (this.sfm?.state.generation === 'gen2' && m) m.deleted = true;
    else this.map.delete(coord);
  }
  live(): StoredMemory[] {
    return [...this.map.values()].filter((m) => !m.deleted);
  }
  pendingCount(): number {
    return this.pending.size;
  }
  clear(): void {
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
    this.own.clear();
  }
}

const randomCoordinate = () => [0, 0, 0].map(() => Math.round(Math.random() * 2e6) / 1e3 - 1000);

const GEN2_INFRASTRUCTURE = ['postgresql', 'redis', 'kafka', 'milvus', 'opa'];
const GEN2_INTERNAL = ['soma_fractal_memory', 'cognitive', 'embedder'];

export async function somabrainDouble(
  options: Partial<SomabrainState> & { generation: Generation },
  { memory }: { memory?: SfmDouble } = {},
): Promise<SomabrainDouble> {
  const initial: SomabrainState = {
    memoryOk: true,
    embedderOk: true,
    predictorOk: true,
    opaDown: false,
    componentStatus: {},
    allowedHosts: ['127.0.0.1', 'localhost'],
    longTermDelayMs: 0,
    queueWrites: false,
    recallDegraded: false,
    ...options,
  };
  const served = new Map<string, number>(); // gen1 /metrics counts what it really served
  const store = new LongTermStore(memory);
  const workingMemory: WorkingMemoryItem[] = [];
  const double = await serve(initial, (req, s) => {
    const reply = s.generation === 'gen1' ? somabrainGen1(req, s, served, store, workingMemory) : somabrainGen2(req, s, store, workingMemory);
    const key = `${req.method} ${req.path} ${reply.status}`;
    served.set(key, (served.get(key) ?? 0) + 1);
    return reply;
  });
  const { reset, close } = double;
  return Object.assign(double, {
    longTerm: () => store.live(),
    workingMemory,
    pendingWrites: () => store.pendingCount(),
    tenantHeaders: () =>
      double.requests.filter((r) => /remember|recall|delete/.test(r.path)).map((r) => r.headers['x-tenant-id'] as string | undefined),
    reset() {
      reset();
      store.clear();
      workingMemory.length = 0;
    },
    close() {
      store.clear();
      return close();
    },
  });
}

/** SomaBrain's memory routes (contracts section 2), or undefined for any other path. */
function brainMemory(
  req: RecordedRequest,
  s: SomabrainState,
  store: LongTermStore,
  wm: WorkingMemoryItem[],
): Reply | undefined {
  const gen1 = s.generation === 'gen1';
  const path = req.path.replace(/^\/api(?=\/memory\/)/, '');
  const routes = gen1 ? ['/remember', '/recall', '/delete'] : ['/memory/remember', '/memory/recall'];
  if (!routes.includes(path)) return undefined;
  if (req.method !== 'POST') return json(405, { detail: 'Method Not Allowed' });
  if (s.token) {
    const token = bearer(req);
    if (gen1 && !token) return json(401, { detail: 'Missing bearer token' });
    if (token !== s.token) return json(gen1 ? 403 : 401, { detail: gen1 ? 'Invalid token' : 'Unauthorized' });
  }
  const body = isRecord(req.body) ? req.body : {};
  const headerTenant = req.headers['x-tenant-id'] as string | undefined;
  if (!gen1 && typeof body.tenant === 'string' && headerTenant !== body.tenant)
    return json(400, { detail: 'X-Tenant-ID must equal the tenant of the body' });
  const tenant = (typeof body.tenant === 'string' ? body.tenant : headerTenant) ?? 'public';
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const holds = (payload: unknown, query: string) => JSON.stringify(payload).includes(query);

  if (path === '/remember') {
    if (!isRecord(body.payload)) return json(422, { detail: [{ loc: ['body', 'payload'], msg: 'field required' }] });
    const coordinate = typeof body.coord === 'string' ? parseCoord(body.coord) : randomCoordinate();
    if (!coordinate) return json(422, { detail: [{ loc: ['body', 'coord'], msg: 'invalid coord' }] });
    wm.push({ tenant, payload: body.payload });
    const namespace = `somabrain_ns:${tenant}`;
    if (s.queueWrites) return json(200, { ok: false, success: false, namespace, trace_id: traceId, breaker_open: true, queued: true });
    store.write(coordinate, body.payload, s.longTermDelayMs);
    return json(200, { ok: true, success: true, namespace, trace_id: traceId, breaker_open: false, queued: false });
  }
  if (path === '/recall' || path === '/memory/recall') {
    if (typeof body.query !== 'string') return json(422, { detail: [{ loc: ['body', 'query'], msg: 'field required' }] });
    const query = body.query;
    const topK = typeof body.top_k === 'number' ? body.top_k : 10;
    const longTerm = store.live().filter((m) => holds(m.payload, query)).slice(0, topK);
    if (gen1) {
      const memoryItems = longTerm.map((m) => ({ score: 0.83, payload: m.payload, coordinate: m.coordinate }));
      return json(200, {
        wm: wm.filter((w) => holds(w.payload, query)).map((w) => ({ score: 0.91, payload: w.payload })),
        memory: memoryItems,
        results: memoryItems,
        namespace: `somabrain_ns:${tenant}`,
        trace_id: traceId,
      });
    }
    // gen2 working memory answers every item of the tenant, whatever the query.
    const content = (p: Record<string, unknown>) => (typeof p.content === 'string' ? p.content : JSON.stringify(p));
    const working = wm.filter((w) => w.tenant === tenant).map((w) => ({ content: content(w.payload), layer: 'wm', score: 1.0 }));
    const results = s.recallDegraded
      ? working
      : [...working, ...longTerm.filter((m) => m.payload.tenant === tenant).map((m) => ({ content: content(m.payload), layer: 'ltm', score: 0.83, coordinate: m.coordinate }))];
    return json(200, { results, total_results: results.length, degraded: s.recallDegraded, query });
  }
  if (path === '/delete') {
    const c = body.coordinate;
    if (!Array.isArray(c) || c.length !== 3 || !c.every((n) => typeof n === 'number'))
      return json(422, { detail: [{ loc: ['body', 'coordinate'], msg: 'three numbers expected' }] });
    store.remove(c as number[]);
    return json(200, { ok: true });
  }
  // gen2 /memory/remember
  if (!isRecord(body.value) || typeof body.key !== 'string' || typeof body.tenant !== 'string')
    return json(422, { detail: [{ loc: ['body'], msg: 'tenant, key and value are required' }] });
  wm.push({ tenant, payload: body.value });
  const answer = { ok: true, tenant, namespace: body.namespace ?? 'default', key: body.key };
  if (s.queueWrites) return json(200, { ...answer, coordinate: null, queued: true });
  const coordinate = randomCoordinate();
  store.write(coordinate, { ...body.value, key: body.key, tenant, namespace: body.namespace, ttl_seconds: body.ttl_seconds }, s.longTermDelayMs);
  return json(200, { ...answer, coordinate });
}

function somabrainGen1(req: RecordedRequest, s: SomabrainState, served: Map<string, number>, store: LongTermStore, wm: WorkingMemoryItem[]): Reply {
  if (s.opaDown) return json(403, { detail: 'Forbidden' });
  const memoryReply = brainMemory(req, s, store, wm);
  if (memoryReply) return memoryReply;
  if (req.path === '/health' || req.path === '/healthz') {
    return json(200, {
      // Always false in gen1, whatever the state: a verdict must not use them.
      ok: false,
      ready: false,
      components: { memory: { http: s.memoryOk }, wm_items: 4 },
      namespace: 'somabrain_ns:public',
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
      memory_ok: s.memoryOk,
      embedder_ok: s.embedderOk,
      predictor_ok: s.predictorOk,
    });
  }
  if (req.path === '/metrics') {
    const lines = [
      '# HELP somabrain_http_requests_total HTTP requests',
      '# TYPE somabrain_http_requests_total counter',
      ...[...served].map(([key, n]) => {
        const [method, path, status] = key.split(' ');
        return `somabrain_http_requests_total{method="${method}",path="${path}",status="${status}"} ${n}.0`;
      }),
      '# HELP somabrain_http_latency_seconds HTTP latency',
      '# TYPE somabrain_http_latency_seconds histogram',
      'somabrain_http_latency_seconds_bucket{le="+Inf"} 1.0',
      'somabrain_http_latency_seconds_sum 0.01',
      'somabrain_http_latency_seconds_count 1.0',
      '# HELP somabrain_opa_allow_total OPA allows',
      '# TYPE somabrain_opa_allow_total counter',
      'somabrain_opa_allow_total 3.0',
    ];
    return text(200, `${lines.join('\n')}\n`);
  }
  return NOT_FOUND;
}

function somabrainGen2(req: RecordedRequest, s: SomabrainState, store: LongTermStore, wm: WorkingMemoryItem[]): Reply {
  const host = String(req.headers.host ?? '').replace(/:\d+$/, '');
  if (!s.allowedHosts.includes(host)) return { status: 400, body: '<h1>Bad Request (400)</h1>', type: 'html' };
  const memoryReply = brainMemory(req, s, store, wm);
  if (memoryReply) return memoryReply;
  const component = (name: string) => ({ name, status: s.componentStatus[name] ?? 'healthy', response_time_ms: 2.5 });
  const statuses = [...GEN2_INFRASTRUCTURE, ...GEN2_INTERNAL].map((n) => s.componentStatus[n] ?? 'healthy');
  const derived =
    statuses.some((x) => x === 'unhealthy' || x === 'critical') ? 'critical'
    : statuses.some((x) => x !== 'healthy') ? 'degraded'
    : 'healthy';
  const overall = s.gen2Status ?? derived;
  if (req.path === '/health') {
    return json(200, {
      status: overall,
      timestamp: new Date().toISOString(),
      infrastructure: Object.fromEntries(GEN2_INFRASTRUCTURE.map((n) => [n, component(n)])),
      internal_services: Object.fromEntries(GEN2_INTERNAL.map((n) => [n, component(n)])),
    });
  }
  if (req.path === '/healthz') return json(200, { status: 'healthy' });
  if (req.path === '/readyz') {
    const ready = overall === 'healthy';
    const checks = Object.fromEntries(GEN2_INFRASTRUCTURE.map((n) => [n, s.componentStatus[n] ?? 'healthy']));
    return json(ready ? 200 : 503, { status: ready ? 'ready' : 'degraded', checks });
  }
  if (req.path === '/metrics') {
    // The gen2 stub: static, whatever happens.
    return text(
      200,
      '# HELP somabrain_up SomaBrain is up\n# TYPE somabrain_up gauge\nsomabrain_up 1\n' +
        '# HELP somabrain_requests_total Requests\n# TYPE somabrain_requests_total counter\nsomabrain_requests_total 0\n',
    );
  }
  return NOT_FOUND;
}

// ---------------------------------------------------------------------------------------------
// SomaAgent01 gateway (contracts section 3)

export type GatewayWord = 'ok' | 'degraded' | 'down';

export interface GatewayState extends CommonState {
  /** Component statuses by name (postgres, redis, kafka, somabrain_http); unnamed ones are ok. */
  components: Record<string, GatewayWord>;
}

const GATEWAY_CORE = ['postgres', 'redis', 'kafka'];

export function gatewayDouble(
  options: Partial<GatewayState> & { generation: Generation },
): Promise<Double<GatewayState>> {
  const initial: GatewayState = { components: {}, ...options };
  return serve(initial, (req, s) => {
    const word = (name: string): GatewayWord => s.components[name] ?? 'ok';
    const componentMap = (names: string[]) =>
      Object.fromEntries(
        names.map((n) => [n, word(n) === 'ok' ? { status: 'ok' } : { status: word(n), detail: `${n} unreachable` }]),
      );
    // A core store down takes the gateway down; anything else (SomaBrain alone) degrades it.
    const overall = (names: string[]): GatewayWord =>
      names.some((n) => GATEWAY_CORE.includes(n) && word(n) === 'down') ? 'down'
      : names.some((n) => word(n) !== 'ok') ? 'degraded'
      : 'ok';
    const aggregate = (names: string[]) => json(200, { status: overall(names), components: componentMap(names) });
    const withBrain = [...GATEWAY_CORE, 'somabrain_http'];
    if (s.generation === 'gen1') {
      if (req.path === '/v1/health' || req.path === '/health') return aggregate(GATEWAY_CORE);
      if (req.path === '/healthz') return aggregate(withBrain);
      return NOT_FOUND;
    }
    if (req.path === '/health/' || req.path === '/api/health/') return json(200, { status: 'ok', service: 'gateway' });
    if (req.path === '/api/v2/core/health') return aggregate(withBrain);
    if (req.path === '/api/v2/aaas/health') {
      const o = overall(withBrain);
      return json(200, {
        status: o === 'ok' ? 'healthy' : o === 'degraded' ? 'degraded' : 'critical',
        services: withBrain.map((n) => ({
          name: n,
          status: word(n) === 'ok' ? 'healthy' : word(n) === 'degraded' ? 'degraded' : 'unhealthy',
          latency_ms: 1.5,
          message: word(n) === 'ok' ? 'ok' : `${n} unreachable`,
        })),
      });
    }
    if (req.path === '/api/v2/core/health/ready')
      return json(200, { status: overall(withBrain) === 'down' ? 'not_ready' : 'ready' });
    if (req.path === '/api/v2/observability/ready')
      return json(200, { ready: overall(withBrain) !== 'down', checks: withBrain.map((n) => ({ name: n, ok: word(n) !== 'down' })) });
    if (req.path === '/api/v2/observability/live') return json(200, { status: 'alive' });
    return NOT_FOUND;
  });
}

// ---------------------------------------------------------------------------------------------

/** A listener that answers any request with an SSH banner: not an HTTP server at all. */
export function notHttpServer(): Promise<TcpPeer> {
  return rawServer('SSH-2.0-OpenSSH_9.6p1 Debian-3\r\n');
}
