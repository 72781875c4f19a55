// soma-verify end to end against doubles of the three SomaStack services (test/support/
// somastack.ts, which follow the contracts of both generations): the compiled CLI runs as a
// process with a config file in a temp folder, and each test reads its exit code and report.
// Build first: npm run build.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  gatewayDouble,
  sfmDouble,
  somabrainDouble,
  type Double,
  type GatewayState,
  type SfmState,
  type SomabrainState,
} from '../support/somastack.js';
import { checkOf, reportOf, runCli, tempProject } from '../support/cli.js';

const SFM_TOKEN = 'sfm-e2e-token-5c81d2f7';
const WRONG_TOKEN = 'wrong-e2e-token-0b3e94aa';

let sfm1: Double<SfmState>, sfm2: Double<SfmState>;
let brain1: Double<SomabrainState>, brain2: Double<SomabrainState>;
let gw1: Double<GatewayState>, gw2: Double<GatewayState>;
let project: { dir: string; remove(): Promise<void> };

beforeAll(async () => {
  [sfm1, sfm2, brain1, brain2, gw1, gw2] = await Promise.all([
    sfmDouble({ generation: 'gen1', token: SFM_TOKEN }),
    sfmDouble({ generation: 'gen2', token: SFM_TOKEN }),
    somabrainDouble({ generation: 'gen1' }),
    somabrainDouble({ generation: 'gen2' }),
    gatewayDouble({ generation: 'gen1' }),
    gatewayDouble({ generation: 'gen2' }),
  ]);
  const stack = (gen: 'gen1' | 'gen2', generation: string, sfmToken = SFM_TOKEN) => {
    const [sfm, brain, gw] = gen === 'gen1' ? [sfm1, brain1, gw1] : [sfm2, brain2, gw2];
    return {
      services: {
        somabrain: { url: brain.url, generation },
        sfm: { url: sfm.url, token: sfmToken, generation },
        gateway: { url: gw.url, generation },
      },
    };
  };
  const config = {
    environments: {
      gen1: stack('gen1', 'gen1'),
      gen2: stack('gen2', 'gen2'),
      'auto-gen1': stack('gen1', 'auto'),
      'auto-gen2': stack('gen2', 'auto'),
      'wrong-token': { services: { sfm: { url: sfm2.url, token: WRONG_TOKEN, generation: 'gen2', metrics: false } } },
      // A stack configured as gen1 whose SFM is really gen2: its /healthz passes, its metrics cannot.
      'sfm-misconfigured': { services: { sfm: { url: sfm2.url, generation: 'gen1' } } },
      'sfm2-healthz': { checks: [{ id: 'sfm.healthz', kind: 'health', url: `${sfm2.url}/healthz` }] },
    },
  };
  project = await tempProject({ 'soma-verify.config.json': JSON.stringify(config, null, 2) });
});

afterAll(async () => {
  await Promise.all([sfm1, sfm2, brain1, brain2, gw1, gw2].map((d) => d?.close()));
  await project?.remove();
});

beforeEach(() => {
  for (const d of [sfm1, sfm2, brain1, brain2, gw1, gw2]) d.reset();
});

const verify = (...args: string[]) => runCli(args, { cwd: project.dir, timeoutMs: 30_000 });

describe.each(['gen1', 'gen2'] as const)('a healthy %s stack (SomaStack service doubles)', (gen) => {
  it(`passes with generation: ${gen} set explicitly`, async () => {
    const result = await verify(gen, '--format', 'json');
    const report = reportOf(result);
    expect(result.code, result.stderr).toBe(0);
    expect(report.status).toBe('pass');
    expect(report.checks.map((c) => [c.id, c.status])).toEqual([
      ['somabrain.health', 'pass'],
      ['somabrain.metrics', 'pass'],
      ['sfm.health', 'pass'],
      ['sfm.metrics', 'pass'],
      ['gateway.health', 'pass'],
    ]);
    for (const id of ['somabrain.health', 'sfm.health', 'gateway.health']) {
      const check = checkOf(report, id);
      expect(check.details.generation).toBe(gen);
      expect(check.message).toMatch(new RegExp(`\\(${gen}\\)$`));
    }
    // The metrics sets of the named generation were the ones asserted.
    expect(checkOf(report, 'somabrain.metrics').message).toMatch(gen === 'gen1' ? /somabrain_http_requests_total present/ : /somabrain_up present/);
  });

  it(`passes with generation: auto and reports the detected ${gen}`, async () => {
    const result = await verify(`auto-${gen}`, '--format', 'json');
    const report = reportOf(result);
    expect(result.code, result.stderr).toBe(0);
    expect(report.summary).toEqual({ pass: 5, warn: 0, fail: 0, skip: 0 });
    for (const id of ['somabrain.health', 'sfm.health', 'gateway.health']) {
      const check = checkOf(report, id);
      expect(check.details.generation, id).toBe(gen);
      expect(check.message).toMatch(new RegExp(`\\(detected ${gen}\\)$`));
    }
    expect(checkOf(report, 'somabrain.metrics').details.matched).toBe(gen);
    expect(checkOf(report, 'sfm.metrics').details.matched).toBe(gen);
    // Checks observe: nothing but GETs reached the services.
    const [sfm, brain, gw] = gen === 'gen1' ? [sfm1, brain1, gw1] : [sfm2, brain2, gw2];
    for (const d of [sfm, brain, gw]) expect(d.writes()).toEqual([]);
    // Detection costs one request per probe, shared with the verdict when it is the same route.
    expect(brain.count('/health')).toBe(1);
    expect(brain.count()).toBe(2); // /health, /metrics
    expect(gw.count()).toBe(2); // /api/v2/core/health and /healthz, one of which is judged
  });
});

describe('degraded and down (SomaStack service doubles)', () => {
  it('a degraded gateway (SomaBrain alone down) warns, exits 0, and exits 1 with --strict', async () => {
    gw1.set({ components: { somabrain_http: 'down' } });
    const result = await verify('gen1', '--only', 'gateway.*', '--format', 'json');
    const check = checkOf(reportOf(result), 'gateway.health');
    expect(check.status).toBe('warn');
    expect(check.message).toBe('status degraded; somabrain_http down (somabrain_http unreachable) (gen1)');
    expect(result.code).toBe(0);
    expect(reportOf(result).status).toBe('warn');

    const strict = await verify('gen1', '--only', 'gateway.*', '--format', 'json', '--strict');
    expect(strict.code).toBe(1);
    expect(reportOf(strict).status).toBe('fail');
  });

  it('a degraded SomaBrain gen2 warns, naming the component', async () => {
    brain2.set({ componentStatus: { cognitive: 'degraded' } });
    const result = await verify('auto-gen2', '--only', 'somabrain.*', '--format', 'json');
    const check = checkOf(reportOf(result), 'somabrain.health');
    expect(check.status).toBe('warn');
    expect(check.message).toBe('status degraded; cognitive degraded (detected gen2)');
    expect(result.code).toBe(0);
  });

  it('a critical SomaBrain gen2 fails, naming the component, and blocks its metrics', async () => {
    brain2.set({ componentStatus: { postgresql: 'unhealthy' } });
    const result = await verify('gen2', '--only', 'somabrain.*', '--format', 'json');
    const report = reportOf(result);
    expect(checkOf(report, 'somabrain.health')).toMatchObject({ status: 'fail', message: 'status critical; postgresql unhealthy (gen2)' });
    expect(checkOf(report, 'somabrain.metrics')).toMatchObject({ status: 'skip', message: 'blocked by somabrain.health' });
    expect(result.code).toBe(1);
  });

  it('a gateway with Postgres down fails, naming the component and its detail', async () => {
    gw2.set({ components: { postgres: 'down' } });
    const result = await verify('auto-gen2', '--only', 'gateway.*', '--format', 'json');
    const check = checkOf(reportOf(result), 'gateway.health');
    expect(check.status).toBe('fail');
    expect(check.message).toBe('status down; postgres down (postgres unreachable) (detected gen2)');
    expect(result.code).toBe(1);
  });

  it('SFM gen1 with a false boolean under 200 fails with what it means; its metrics are blocked', async () => {
    sfm1.set({ stores: { kv_store: true, vector_store: false, graph_store: true } });
    const result = await verify('auto-gen1', '--only', 'sfm.*', '--format', 'json');
    const report = reportOf(result);
    expect(checkOf(report, 'sfm.health')).toMatchObject({
      status: 'fail',
      message: 'vector_store is false: Qdrant unreachable from SFM (detected gen1)',
    });
    expect(checkOf(report, 'sfm.health').details.components).toEqual({ kv_store: true, vector_store: false, graph_store: true });
    expect(checkOf(report, 'sfm.metrics')).toMatchObject({ status: 'skip', message: 'blocked by sfm.health' });
    expect(sfm1.count('/metrics')).toBe(0);
    expect(result.code).toBe(1);
  });

  it('SFM gen2 /healthz answers 503 with its detail: fail', async () => {
    sfm2.set({ stores: { kv_store: false, vector_store: true, graph_store: true } });
    const result = await verify('sfm2-healthz', '--format', 'json');
    expect(checkOf(reportOf(result), 'sfm.healthz')).toMatchObject({
      status: 'fail',
      message: 'HTTP 503 from /healthz: System backend is unhealthy',
    });
    expect(result.code).toBe(1);
  });

  it('SFM gen2 /health with its vector store down: it says degraded, the gate fails naming milvus', async () => {
    sfm2.set({ stores: { kv_store: true, vector_store: false, graph_store: true } });
    const result = await verify('gen2', '--only', 'sfm.*', '--format', 'json');
    const check = checkOf(reportOf(result), 'sfm.health');
    expect(check.status).toBe('fail');
    expect(check.message).toBe('status degraded; healthy is false; milvus healthy=false (gen2)');
  });

  it('SomaBrain gen1 with memory_ok false fails naming SomaFractalMemory (ok/ready ignored)', async () => {
    brain1.set({ memoryOk: false });
    const result = await verify('auto-gen1', '--only', 'somabrain.health', '--format', 'json');
    const check = checkOf(reportOf(result), 'somabrain.health');
    expect(check.status).toBe('fail');
    expect(check.message).toContain('memory_ok is false: memory backend (SomaFractalMemory) unreachable from SomaBrain');
    expect(check.message).not.toMatch(/\bok is false|ready is false/);
  });

  it('SomaBrain gen1 answering 403 everywhere means OPA is down (auto still detects gen1)', async () => {
    brain1.set({ opaDown: true });
    const result = await verify('auto-gen1', '--only', 'somabrain.*', '--format', 'json');
    const report = reportOf(result);
    const check = checkOf(report, 'somabrain.health');
    expect(check.status).toBe('fail');
    expect(check.message).toBe(
      'HTTP 403 from /health (OPA unreachable: the gen1 OPA middleware denies every route, /health too) (detected gen1)',
    );
    expect(checkOf(report, 'somabrain.metrics')).toMatchObject({ status: 'skip', message: 'blocked by somabrain.health' });
  });

  it('SomaBrain gen2 rejects an unknown Host header with 400, and the message says so', async () => {
    brain2.set({ allowedHosts: ['somabrain.internal'] });
    const result = await verify('gen2', '--only', 'somabrain.health', '--format', 'json');
    expect(checkOf(reportOf(result), 'somabrain.health')).toMatchObject({
      status: 'fail',
      message: 'HTTP 400 from /health (Host header not in SomaBrain ALLOWED_HOSTS) (gen2)',
    });
    // auto cannot tell a generation from a 400, and says what it saw.
    const auto = await verify('auto-gen2', '--only', 'somabrain.health', '--format', 'json');
    expect(checkOf(reportOf(auto), 'somabrain.health').message).toBe(
      'cannot tell the generation: /health 400; set generation: gen1 or gen2',
    );
  });
});

describe('metrics per generation (SomaStack service doubles)', () => {
  it('gen1 SFM metrics assert api_requests_total; a gen2 SFM configured as gen1 fails on them', async () => {
    const ok = await verify('gen1', '--only', 'sfm.*', '--format', 'json');
    expect(checkOf(reportOf(ok), 'sfm.metrics')).toMatchObject({ status: 'pass' });
    expect(checkOf(reportOf(ok), 'sfm.metrics').message).toMatch(/api_requests_total present/);

    const wrong = await verify('sfm-misconfigured', '--format', 'json');
    const report = reportOf(wrong);
    expect(checkOf(report, 'sfm.health').status).toBe('pass'); // gen2 /healthz has the booleans too
    const metrics = checkOf(report, 'sfm.metrics');
    expect(metrics.status).toBe('fail');
    expect(metrics.message).toMatch(/api_requests_total missing/);
    expect(wrong.code).toBe(1);
  });
});

describe('a rejected token (SomaStack service doubles)', () => {
  it.each(['json', 'junit', 'table'] as const)('SFM gen2 401 fails, and no token is printed (%s)', async (format) => {
    const result = await verify('wrong-token', '--format', format);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('HTTP 401 from /health (token rejected: check SOMA_API_TOKEN)');
    const printed = result.stdout + result.stderr;
    expect(printed).not.toContain(WRONG_TOKEN);
    expect(printed).not.toContain(SFM_TOKEN);
    // The double did receive the configured (wrong) token: the check sent it, the report hid it.
    expect(sfm2.bearerTokens()).toContain(WRONG_TOKEN);
    if (format === 'junit') expect(result.stdout).toMatch(/<failure message="HTTP 401 from \/health/);
  });
});
