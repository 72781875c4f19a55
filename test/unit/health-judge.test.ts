// judge() of checks/health.ts on every health body of /work/shared/contracts/somastack.md, with
// the probes the stack model really uses for each service and generation (src/stack/*), so a
// change to either the judge or a preset shows here.
import * as valibot from 'valibot';
import { describe, expect, it } from 'vitest';
import { judge, probe } from '../../checks/health.js';
import { httpAnswer } from '../support/http-answer.js';
import { sfm } from '../../src/stack/sfm.js';
import { somabrain } from '../../src/stack/somabrain.js';
import { gateway } from '../../src/stack/gateway.js';
import type { HttpServiceModel } from '../../src/stack/spec.js';

type Probe = valibot.InferOutput<typeof probe>;

const answer = (status: number, body: unknown) => httpAnswer(status, body);

/** The probe the stack model hands the health kind for one service and generation. */
function presetOf(model: HttpServiceModel, generation: 'gen1' | 'gen2', token?: string): Probe {
  const [health] = model.checks({ url: 'http://127.0.0.1:1', generation, token, metrics: false }, 'test');
  const variants = (health!.options as { variants: Record<string, unknown> }).variants;
  return valibot.parse(probe, variants[generation]);
}

const generic = valibot.parse(probe, {});

describe('generic bodies', () => {
  it('a plain-text body: a negated good word fails ("NOT OK", "not ready"); a negated bad word is no verdict', () => {
    expect(judge(answer(200, 'NOT OK'), generic, '/health').status).toBe('fail');
    expect(judge(answer(200, 'vector store not ready'), generic, '/health').status).toBe('fail');
    expect(judge(answer(200, 'OK'), generic, '/health').status).toBe('pass');
    expect(judge(answer(200, 'no errors'), generic, '/health').status).toBe('warn');
  });

  it('passes a status word that says ok or healthy', () => {
    expect(judge(answer(200, { status: 'ok' }), generic, '/health')).toMatchObject({ status: 'pass', message: 'ok' });
    expect(judge(answer(200, { status: 'healthy' }), generic, '/health').status).toBe('pass');
  });

  it('warns on a degraded body served with 200', () => {
    const v = judge(answer(200, { status: 'degraded' }), generic, '/health');
    expect(v.status).toBe('warn');
    expect(v.message).toBe('status degraded');
  });

  it('fails on down, critical and unhealthy bodies served with 200', () => {
    for (const word of ['down', 'critical', 'unhealthy', 'not_ready']) {
      const v = judge(answer(200, { status: word }), generic, '/health');
      expect(v.status, word).toBe('fail');
      expect(v.message).toBe(`status ${word}`);
    }
  });

  it('warns on an unknown status word rather than passing it', () => {
    const v = judge(answer(200, { status: 'purple' }), generic, '/health');
    expect(v).toMatchObject({ status: 'warn', message: 'unknown status word "purple"' });
  });

  it('fails on a 503 and quotes its detail', () => {
    const v = judge(answer(503, { detail: 'System backend is unhealthy' }), generic, '/healthz');
    expect(v.status).toBe('fail');
    expect(v.message).toBe('HTTP 503 from /healthz: System backend is unhealthy');
  });

  it('warns when a JSON body says nothing about health', () => {
    const v = judge(answer(200, { version: '1.2.3', uptime: 42 }), generic, '/health');
    expect(v.status).toBe('warn');
    expect(v.message).toBe('HTTP 200 from /health, but the body says nothing about health');
    expect(v.details.body).toBe('{"version":"1.2.3","uptime":42}');
  });

  it('judges text bodies by their words', () => {
    expect(judge(answer(200, 'healthz check passed'), generic, '/healthz').status).toBe('pass');
    expect(judge(answer(200, 'degraded: cache cold'), generic, '/healthz').status).toBe('warn');
    const silent = judge(answer(200, 'hello there'), generic, '/healthz');
    expect(silent).toMatchObject({ status: 'warn', message: 'body of /healthz is not JSON and says nothing about health' });
  });

  it('judges component lists by name, with their latency', () => {
    const v = judge(
      answer(200, {
        status: 'degraded',
        services: [
          { name: 'postgres', status: 'healthy', latency_ms: 3 },
          { name: 'redis', status: 'unhealthy', latency_ms: 1500, message: 'timeout' },
        ],
      }),
      generic,
      '/api/v2/aaas/health',
    );
    // The service's own "degraded" caps the verdict at a warning; the failing part is named.
    expect(v.status).toBe('warn');
    expect(v.message).toBe('status degraded; redis unhealthy (timeout)');
    expect(v.details.components).toEqual({
      postgres: { status: 'healthy', latencyMs: 3 },
      redis: { status: 'unhealthy', latencyMs: 1500, detail: 'timeout' },
    });
  });

  it('accepts the seed 003 documented shape (components with status and latency_ms, version, mode)', () => {
    const body = {
      status: 'healthy',
      components: {
        redis: { status: 'healthy', latency_ms: 2 },
        postgres: { status: 'healthy', latency_ms: 4 },
        kafka: { status: 'healthy', latency_ms: 7 },
        opa: { status: 'healthy', latency_ms: 1 },
      },
      version: '1.0.0',
      mode: 'production',
    };
    const v = judge(answer(200, body), generic, '/health');
    expect(v).toMatchObject({ status: 'pass', message: 'healthy: 4 components ok' });
    const broken = structuredClone(body);
    broken.status = 'degraded';
    broken.components.kafka.status = 'unhealthy';
    const w = judge(answer(200, broken), generic, '/health');
    expect(w).toMatchObject({ status: 'warn', message: 'status degraded; kafka unhealthy' });
    broken.status = 'down';
    expect(judge(answer(200, broken), generic, '/health')).toMatchObject({ status: 'fail', message: 'status down; kafka unhealthy' });
  });
});

describe('SomaFractalMemory', () => {
  const gen1 = presetOf(sfm, 'gen1');

  it('gen1: passes when kv_store, vector_store and graph_store are all true', () => {
    const v = judge(answer(200, { kv_store: true, vector_store: true, graph_store: true }), gen1, '/healthz');
    expect(v.status).toBe('pass');
    expect(v.details.components).toEqual({ kv_store: true, vector_store: true, graph_store: true });
  });

  it('gen1: fails a false boolean under 200, naming the store and what it means', () => {
    const v = judge(answer(200, { kv_store: true, vector_store: false, graph_store: true }), gen1, '/healthz');
    expect(v.status).toBe('fail');
    expect(v.message).toBe('vector_store is false: Qdrant unreachable from SFM');
    const kv = judge(answer(200, { kv_store: false, vector_store: true, graph_store: false }), gen1, '/healthz');
    expect(kv.message).toBe('kv_store is false: Postgres or Redis unreachable from SFM; graph_store is false: in-process graph store down');
  });

  it('gen2 without a token (/readyz booleans) judges like gen1', () => {
    const readyz = presetOf(sfm, 'gen2');
    expect(readyz.path).toBe('/readyz');
    const v = judge(answer(200, { kv_store: false, vector_store: true, graph_store: true }), readyz, '/readyz');
    expect(v.message).toBe('kv_store is false: Postgres or Redis unreachable from SFM');
  });

  it('gen2 /healthz 503 fails with its detail', () => {
    const v = judge(answer(503, { detail: 'System backend is unhealthy' }), generic, '/healthz');
    expect(v.message).toBe('HTTP 503 from /healthz: System backend is unhealthy');
  });

  const gen2 = presetOf(sfm, 'gen2', 'a-token');
  const body = (healthy: boolean[], status: string) => ({
    healthy: healthy.every(Boolean),
    status,
    version: '2.0.0',
    uptime_seconds: 12,
    timestamp: '2026-01-01T00:00:00Z',
    services: ['postgresql', 'redis', 'milvus'].map((name, i) => ({
      name,
      healthy: healthy[i],
      latency_ms: 1.5,
      details: healthy[i] ? {} : { error: `${name} connection refused` },
    })),
    database: { connected: true },
  });

  it('gen2 /health: passes a healthy body and lists its services', () => {
    const v = judge(answer(200, body([true, true, true], 'healthy')), gen2, '/health');
    expect(v).toMatchObject({ status: 'pass', message: 'healthy: 3 components ok' });
    expect(Object.keys(v.details.components as object)).toEqual(['postgresql', 'redis', 'milvus']);
  });

  // Every store must be up (seed 002; gen2's own /healthz answers 503 otherwise): SFM calling
  // itself degraded does not soften it.
  it('gen2 /health degraded (healthy false, one service down) fails, naming the service', () => {
    const v = judge(answer(200, body([true, true, false], 'degraded')), gen2, '/health');
    expect(v.status).toBe('fail');
    expect(v.message).toBe('status degraded; healthy is false; milvus healthy=false');
  });

  it('gen1: a store that is missing, null or a string fails, naming it; other keys beside the stores do not hide them', () => {
    const v = judge(answer(200, { kv_store: true, vector_store: null, version: '0.9.1' }), gen1, '/healthz');
    expect(v).toMatchObject({ status: 'fail', message: 'vector_store is null, not true or false; graph_store is missing' });
    expect(judge(answer(200, { kv_store: 'false', vector_store: true, graph_store: true }), gen1, '/healthz').message).toBe('kv_store is "false", not true or false');
  });

  it('gen1: a body that is not its JSON (an HTML page, "NOT OK", empty) fails', () => {
    for (const text of ['<title>502 Bad Gateway</title>', 'NOT OK', '']) {
      const v = judge(answer(200, text), gen1, '/healthz');
      expect(v.status, text).toBe('fail');
    }
  });

  it('gen2 /health unhealthy fails, naming the services', () => {
    const v = judge(answer(200, body([false, false, true], 'unhealthy')), gen2, '/health');
    expect(v.status).toBe('fail');
    expect(v.message).toBe('status unhealthy; healthy is false; postgresql healthy=false; redis healthy=false');
  });

  it('gen2 /health 401 says the token was rejected', () => {
    const v = judge(answer(401, { detail: 'Unauthorized' }), gen2, '/health');
    expect(v.message).toBe('HTTP 401 from /health (token rejected: check SOMA_API_TOKEN)');
  });
});

describe('SomaBrain', () => {
  const gen1 = presetOf(somabrain, 'gen1');
  const gen1Body = (over: Record<string, unknown> = {}) => ({
    ok: false,
    ready: false,
    components: { memory: { http: true }, wm_items: 4 },
    namespace: 'somabrain_ns:public',
    trace_id: 'abc',
    memory_ok: true,
    embedder_ok: true,
    predictor_ok: true,
    ...over,
  });

  it('gen1: ignores the always-false ok and ready', () => {
    const v = judge(answer(200, gen1Body()), gen1, '/health');
    expect(v.status).toBe('pass');
    expect(v.message).not.toMatch(/ok is false|ready is false/);
  });

  it('a required boolean fails even under a "degraded" word', () => {
    const v = judge(answer(200, { ...gen1Body({ memory_ok: false }), status: 'degraded' }), valibot.parse(probe, { ...gen1, statusField: 'status', ignore: ['ok', 'ready'] }), '/health');
    expect(v.status).toBe('fail');
  });

  it('gen1: memory_ok false fails, naming SomaFractalMemory', () => {
    const v = judge(answer(200, gen1Body({ memory_ok: false, components: { memory: { http: false }, wm_items: 0 } })), gen1, '/health');
    expect(v.status).toBe('fail');
    expect(v.message).toContain('memory_ok is false: memory backend (SomaFractalMemory) unreachable from SomaBrain');
  });

  it('gen1: a false embedder or predictor only warns', () => {
    const v = judge(answer(200, gen1Body({ embedder_ok: false })), gen1, '/health');
    expect(v).toMatchObject({ status: 'warn', message: 'embedder_ok is false: embedder not ready' });
  });

  it('gen1: 403 means OPA is unreachable, not bad credentials', () => {
    const v = judge(answer(403, { detail: 'Forbidden' }), gen1, '/health');
    expect(v.status).toBe('fail');
    expect(v.message).toBe('HTTP 403 from /health (OPA unreachable: the gen1 OPA middleware denies every route, /health too)');
  });

  const gen2 = presetOf(somabrain, 'gen2');
  const gen2Body = (status: string, overrides: Record<string, string> = {}) => {
    const component = (name: string) => ({ name, status: overrides[name] ?? 'healthy', response_time_ms: 2 });
    return {
      status,
      infrastructure: Object.fromEntries(['postgresql', 'redis', 'kafka', 'milvus', 'opa'].map((n) => [n, component(n)])),
      internal_services: Object.fromEntries(['soma_fractal_memory', 'cognitive', 'embedder'].map((n) => [n, component(n)])),
    };
  };

  it('gen2: healthy passes with eight components and their response_time_ms', () => {
    const v = judge(answer(200, gen2Body('healthy')), gen2, '/health');
    expect(v).toMatchObject({ status: 'pass', message: 'healthy: 8 components ok' });
    expect((v.details.components as Record<string, unknown>).kafka).toEqual({ status: 'healthy', latencyMs: 2 });
  });

  it('gen2: its memory store unhealthy fails even when it calls itself degraded, as gen1 memory_ok false does', () => {
    const v = judge(answer(200, gen2Body('degraded', { soma_fractal_memory: 'unhealthy' })), gen2, '/health');
    expect(v).toMatchObject({ status: 'fail', message: 'status degraded; soma_fractal_memory unhealthy: memory backend (SomaFractalMemory) unreachable from SomaBrain' });
  });

  // The contract accepts seed 003's documented shape, which lists no internal services: a
  // critical component judges only when the body lists it.
  it("gen2: seed 003's documented body (components, no internal_services) passes", () => {
    const body = { status: 'healthy', components: { redis: { status: 'healthy', latency_ms: 1 }, postgres: { status: 'healthy', latency_ms: 2 }, kafka: { status: 'healthy', latency_ms: 3 }, opa: { status: 'healthy', latency_ms: 1 } }, version: '1.0.0', mode: 'prod' };
    expect(judge(answer(200, body), gen2, '/health')).toMatchObject({ status: 'pass', message: 'healthy: 4 components ok' });
  });

  it('gen2: degraded warns and names the component', () => {
    const v = judge(answer(200, gen2Body('degraded', { cognitive: 'degraded' })), gen2, '/health');
    expect(v).toMatchObject({ status: 'warn', message: 'status degraded; cognitive degraded' });
  });

  it('gen2: critical fails and names the component', () => {
    const v = judge(answer(200, gen2Body('critical', { postgresql: 'unhealthy' })), gen2, '/health');
    expect(v).toMatchObject({ status: 'fail', message: 'status critical; postgresql unhealthy' });
  });

  it('gen2: /healthz {"status":"healthy"} passes', () => {
    expect(judge(answer(200, { status: 'healthy' }), generic, '/healthz').status).toBe('pass');
  });

  it('gen2: /readyz 503 degraded fails', () => {
    const v = judge(answer(503, { status: 'degraded', checks: {} }), generic, '/readyz');
    expect(v).toMatchObject({ status: 'fail', message: 'HTTP 503 from /readyz' });
  });

  it('gen2: 400 names the Host header', () => {
    const v = judge(answer(400, '<h1>Bad Request (400)</h1>'), gen2, '/health');
    expect(v.message).toBe('HTTP 400 from /health (Host header not in SomaBrain ALLOWED_HOSTS)');
  });
});

describe('SomaAgent01 gateway', () => {
  const gen1 = presetOf(gateway, 'gen1');
  const body = (status: string, words: Record<string, string>) => ({
    status,
    components: Object.fromEntries(
      Object.entries(words).map(([n, w]) => [n, w === 'ok' ? { status: w } : { status: w, detail: `${n} unreachable` }]),
    ),
  });

  it('gen1 /healthz ok passes with four components', () => {
    const v = judge(answer(200, body('ok', { postgres: 'ok', redis: 'ok', kafka: 'ok', somabrain_http: 'ok' })), gen1, '/healthz');
    expect(v).toMatchObject({ status: 'pass', message: 'ok: 4 components ok' });
  });

  it('gen1: SomaBrain alone down is degraded: a warning (the gateway\'s own word) naming somabrain_http', () => {
    const v = judge(answer(200, body('degraded', { postgres: 'ok', redis: 'ok', kafka: 'ok', somabrain_http: 'down' })), gen1, '/healthz');
    expect(v.status).toBe('warn');
    expect(v.message).toBe('status degraded; somabrain_http down (somabrain_http unreachable)');
  });

  it('a component down under an overall "ok" is a contradiction and fails', () => {
    const v = judge(answer(200, body('ok', { postgres: 'down', redis: 'ok' })), gen1, '/healthz');
    expect(v).toMatchObject({ status: 'fail', message: 'postgres down (postgres unreachable)' });
  });

  it('gen1: down fails naming the component and its detail', () => {
    const v = judge(answer(200, body('down', { postgres: 'down', redis: 'ok', kafka: 'ok' })), gen1, '/healthz');
    expect(v).toMatchObject({ status: 'fail', message: 'status down; postgres down (postgres unreachable)' });
  });

  it('gen2 aaas list with healthy|degraded|critical words', () => {
    const v = judge(
      answer(200, { status: 'degraded', services: [{ name: 'kafka', status: 'degraded', latency_ms: 9, message: 'lag' }] }),
      generic,
      '/api/v2/aaas/health',
    );
    expect(v).toMatchObject({ status: 'warn', message: 'status degraded; kafka degraded (lag)' });
  });

  it('gen2 readiness words: ready passes, not_ready fails', () => {
    expect(judge(answer(200, { status: 'ready' }), generic, '/api/v2/core/health/ready').status).toBe('pass');
    expect(judge(answer(200, { status: 'not_ready' }), generic, '/api/v2/core/health/ready').status).toBe('fail');
  });

  it('gen2 observability ready:false fails', () => {
    const v = judge(answer(200, { ready: false, checks: [{ name: 'db', ok: false }] }), generic, '/api/v2/observability/ready');
    expect(v.status).toBe('fail');
    expect(v.message).toContain('ready is false');
    expect(v.message).toContain('db ok=false');
  });
});
