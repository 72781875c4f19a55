// What soma-verify says about a SomaStack service must be true of that service's generation:
// gen2 SFM has Milvus, not Qdrant; gen2 SomaBrain's /metrics is a stub whose only proof is
// `somabrain_up 1`, even when it also carries zeroed gen1-looking counters; a service answering
// 503 everywhere is down, whatever generation it is. The compiled CLI runs against the SFM double
// and small HTTP servers that answer the contract's bodies (npm run build first).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveOnLoopback } from '../support/faults.js';
import { sfmDouble, type Double, type SfmState } from '../support/somastack.js';
import { checkOf, reportOf, runCli, tempProject } from '../support/cli.js';

/** An HTTP server answering `route(path)`; every request is recorded by path. */
async function httpServer(route: (path: string) => { status: number; body: string; type: string }): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const reply = route((req.url ?? '/').split('?')[0]!);
    res.writeHead(reply.status, { 'content-type': reply.type, 'content-length': String(Buffer.byteLength(reply.body)) });
    res.end(reply.body);
  });
  const peer = await serveOnLoopback(server);
  return { url: `http://127.0.0.1:${peer.port}`, close: () => peer.close() };
}

const JSON_TYPE = 'application/json';
const PROMETHEUS = 'text/plain; version=0.0.4; charset=utf-8';

// SomaBrain gen2 (contracts section 2): /health with infrastructure and internal_services; the
// /metrics stub reports somabrain_up 1 and zero counters, here including a gen1 counter name.
const brainGen2 = (path: string) => {
  if (path === '/health') {
    const ok = (name: string) => ({ name, status: 'healthy', response_time_ms: 1.5 });
    return {
      status: 200,
      type: JSON_TYPE,
      body: JSON.stringify({
        status: 'healthy',
        infrastructure: Object.fromEntries(['postgresql', 'redis', 'kafka', 'milvus', 'opa'].map((n) => [n, ok(n)])),
        internal_services: Object.fromEntries(['soma_fractal_memory', 'cognitive', 'embedder'].map((n) => [n, ok(n)])),
      }),
    };
  }
  if (path === '/metrics') {
    return {
      status: 200,
      type: PROMETHEUS,
      body:
        '# HELP somabrain_up SomaBrain is up\n# TYPE somabrain_up gauge\nsomabrain_up 1\n' +
        '# HELP somabrain_http_requests_total Requests\n# TYPE somabrain_http_requests_total counter\n' +
        'somabrain_http_requests_total{method="GET",path="/health",status="200"} 0\n',
    };
  }
  return { status: 404, type: JSON_TYPE, body: '{"detail":"Not Found"}' };
};

// A service whose every route answers 503 (a crashed backend behind a proxy, or gen2 SFM's
// /healthz with a store down, on every route).
const unavailable = () => ({ status: 503, type: JSON_TYPE, body: '{"detail":"Service Unavailable"}' });

let sfm2: Double<SfmState>;
let brain: Awaited<ReturnType<typeof httpServer>>;
let down: Awaited<ReturnType<typeof httpServer>>;
let project: { dir: string; remove(): Promise<void> };

beforeAll(async () => {
  [sfm2, brain, down] = await Promise.all([sfmDouble({ generation: 'gen2' }), httpServer(brainGen2), httpServer(unavailable)]);
  const config = {
    environments: {
      'sfm-gen2': { services: { sfm: { url: sfm2.url, generation: 'gen2', metrics: false } } },
      'sfm-auto': { services: { sfm: { url: sfm2.url, generation: 'auto', metrics: false } } },
      'brain-auto': { services: { somabrain: { url: brain.url, generation: 'auto' } } },
      'brain-gen2': { services: { somabrain: { url: brain.url, generation: 'gen2' } } },
      'down-auto': {
        services: { somabrain: { url: down.url, generation: 'auto' }, sfm: { url: down.url, generation: 'auto' }, gateway: { url: down.url } },
      },
    },
  };
  project = await tempProject({ 'soma-verify.config.json': JSON.stringify(config, null, 2) });
});

afterAll(async () => {
  await Promise.all([sfm2?.close(), brain?.close(), down?.close()]);
  await project?.remove();
});

const verify = (env: string) => runCli([env, '--format', 'json'], { cwd: project.dir, timeoutMs: 30_000 });

describe('messages true to the generation', () => {
  it.each(['sfm-gen2', 'sfm-auto'])('%s: a false vector_store on gen2 SFM names Milvus, not Qdrant', async (env) => {
    sfm2.set({ stores: { kv_store: true, vector_store: false, graph_store: true } });
    try {
      const result = await verify(env);
      const health = checkOf(reportOf(result), 'sfm.health');
      expect(result.code).toBe(1);
      expect(health.status).toBe('fail');
      expect(health.message).toMatch(/^vector_store is false: Milvus unreachable from SFM \((detected )?gen2\)$/);
      expect(health.message).not.toContain('Qdrant');
    } finally {
      sfm2.reset();
    }
  });

  it.each(['brain-auto', 'brain-gen2'])('%s: the gen2 metrics stub is judged by somabrain_up 1 and said to be gen2', async (env) => {
    const result = await verify(env);
    const metrics = checkOf(reportOf(result), 'somabrain.metrics');
    expect(result.code, result.stderr).toBe(0);
    expect(metrics.status).toBe('pass');
    expect(metrics.message).toContain('somabrain_up');
    if (env === 'brain-auto') {
      expect(metrics.details.matched).toBe('gen2');
      expect(metrics.message).toMatch(/gen2 matched: somabrain_up/);
    }
  });

  it('generation auto with every route answering 503: the service is down, not "set the generation"', async () => {
    const result = await verify('down-auto');
    const report = reportOf(result);
    expect(result.code).toBe(1);
    for (const id of ['somabrain.health', 'sfm.health', 'gateway.health']) {
      const check = checkOf(report, id);
      expect(check.status).toBe('fail');
      expect(check.message).toMatch(/^the service is down: \/\S* 503/);
      expect(check.message).not.toContain('set generation');
    }
  });
});
