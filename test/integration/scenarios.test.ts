// The smoke scenarios end to end: the compiled CLI runs `--smoke` against the SomaStack doubles
// (test/support/somastack.ts), which follow the memory routes of both generations, and every
// test asserts from the doubles' own state that nothing the scenarios wrote is left behind.
// Build first: npm run build.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sfmDouble, somabrainDouble, type SfmDouble, type SomabrainDouble } from '../support/somastack.js';
import { checkOf, reportOf, runCli, startCli, tempProject, type CliResult, type JsonReport } from '../support/cli.js';

const SFM_TOKEN = 'sfm-smoke-token-7d1e0c55';
const BRAIN_TOKEN = 'brain-smoke-token-93aa61f0';
const WRONG_TOKEN = 'wrong-smoke-token-40c2b7e9';
// Child start-up plus slack: not a speed test.
const MARGIN_MS = 4000;

let sfm1: SfmDouble, sfm2: SfmDouble, brain1: SomabrainDouble, brain2: SomabrainDouble;
let project: { dir: string; remove(): Promise<void> };

beforeAll(async () => {
  [sfm1, sfm2] = await Promise.all([
    sfmDouble({ generation: 'gen1', token: SFM_TOKEN }),
    sfmDouble({ generation: 'gen2', token: SFM_TOKEN }),
  ]);
  [brain1, brain2] = await Promise.all([
    somabrainDouble({ generation: 'gen1', token: BRAIN_TOKEN }, { memory: sfm1 }),
    somabrainDouble({ generation: 'gen2', token: BRAIN_TOKEN }, { memory: sfm2 }),
  ]);
  const stack = (gen: 'gen1' | 'gen2', extra: object = {}) => {
    const [sfm, brain] = gen === 'gen1' ? [sfm1, brain1] : [sfm2, brain2];
    return {
      services: {
        somabrain: { url: brain.url, token: BRAIN_TOKEN, metrics: false },
        sfm: { url: sfm.url, token: SFM_TOKEN, metrics: false },
      },
      smoke: true,
      ...extra,
    };
  };
  const sfmOnly = (sfm: SfmDouble, token: string | undefined, extra: object = {}) => ({
    services: { sfm: { url: sfm.url, ...(token ? { token } : {}), metrics: false } },
    smoke: true,
    ...extra,
  });
  const config = {
    environments: {
      gen1: stack('gen1'),
      gen2: stack('gen2'),
      'gen1-short': stack('gen1', { smoke: { timeout: '2500ms' } }),
      'gen2-short': stack('gen2', { smoke: { timeout: '2500ms' } }),
      'no-smoke': { services: stack('gen2').services },
      'sfm1-wrong-token': sfmOnly(sfm1, WRONG_TOKEN),
      'sfm2-wrong-token': sfmOnly(sfm2, WRONG_TOKEN),
      'sfm1-no-token': sfmOnly(sfm1, undefined),
      'sfm1-short': sfmOnly(sfm1, SFM_TOKEN, { smoke: { timeout: '2s' } }),
      'sfm1-slow': sfmOnly(sfm1, SFM_TOKEN, { smoke: { timeout: '20s' } }),
      'brain1-only': { services: { somabrain: { url: brain1.url, token: BRAIN_TOKEN, metrics: false } }, smoke: true },
    },
  };
  project = await tempProject({ 'soma-verify.config.json': JSON.stringify(config, null, 2) });
});

afterAll(async () => {
  await Promise.all([brain1, brain2].map((d) => d?.close()));
  await Promise.all([sfm1, sfm2].map((d) => d?.close()));
  await project?.remove();
});

beforeEach(() => {
  for (const d of [sfm1, sfm2, brain1, brain2]) d.reset();
});

const verify = (...args: string[]) => runCli(args, { cwd: project.dir, timeoutMs: 40_000 });

/** Nothing a scenario wrote is left in the doubles: no live memory, no long-term write on its way. */
function expectNothingLeft(): void {
  for (const [name, sfm] of [['sfm gen1', sfm1], ['sfm gen2', sfm2]] as const) {
    expect(sfm.live().map((m) => m.payload), `${name} still holds`).toEqual([]);
  }
  for (const [name, brain] of [['somabrain gen1', brain1], ['somabrain gen2', brain2]] as const) {
    expect(brain.pendingWrites(), `${name} long-term writes on their way`).toBe(0);
  }
}

function steps(report: JsonReport, id: string): Array<{ name: string; status: string; durationMs: number; message: string }> {
  return checkOf(report, id).details.steps as Array<{ name: string; status: string; durationMs: number; message: string }>;
}

function expectNoSecrets(r: CliResult): void {
  for (const secret of [SFM_TOKEN, BRAIN_TOKEN, WRONG_TOKEN]) {
    expect(r.stdout).not.toContain(secret);
    expect(r.stderr).not.toContain(secret);
  }
}

describe.each(['gen1', 'gen2'] as const)('a healthy %s stack double with smoke: true', (gen) => {
  it('passes sfm.smoke, somabrain.smoke and stack.smoke, states the generation, and leaves nothing behind', async () => {
    const r = await verify(gen, '--format', 'json');
    const report = reportOf(r);
    expect(r.code, r.stdout).toBe(0);
    for (const id of ['sfm.smoke', 'somabrain.smoke', 'stack.smoke']) {
      const check = checkOf(report, id);
      expect(check.status, `${id}: ${check.message}`).toBe('pass');
      expect(check.details.cleanup).toMatchObject({ ok: true });
      for (const s of steps(report, id)) {
        expect(Object.keys(s).sort()).toEqual(['durationMs', 'message', 'name', 'status']);
        expect(['pass', 'skip'], `${id} ${s.name}: ${s.message}`).toContain(s.status);
      }
    }
    expect(checkOf(report, 'sfm.smoke').message).toBe(
      `stored, read back, searched, counted and deleted a marked memory; unauthenticated writes refused (sfm ${gen})`,
    );
    expect(checkOf(report, 'stack.smoke').details.generation).toEqual({ somabrain: gen, sfm: gen });
    expect(steps(report, 'sfm.smoke').map((s) => s.name)).toEqual([
      'tell the sfm generation',
      'store a marked memory at the sentinel coord',
      'read it back',
      'search for the marker',
      '/stats counts it',
      'a write without a token is refused',
      'a write with a wrong token is refused',
      'delete it and see it gone',
      'cleanup: delete the sentinel coord',
    ]);
    expect(steps(report, 'sfm.smoke')[0]!.message).toBe(`${gen} (detected by sfm.health)`);
    expectNothingLeft();
    expectNoSecrets(r);
    // Every remember and recall sent X-Tenant-ID, equal to the body's tenant on gen2.
    const brain = gen === 'gen1' ? brain1 : brain2;
    expect(brain.tenantHeaders().length).toBeGreaterThan(0);
    expect(new Set(brain.tenantHeaders())).toEqual(new Set(['public']));
    if (gen === 'gen2') {
      const remembers = brain2.requests.filter((q) => q.path === '/memory/remember');
      for (const q of remembers) expect(q.body).toMatchObject({ tenant: 'public', ttl_seconds: expect.any(Number) });
      // gen2 deletes softly: the rows are there, marked deleted; none is live.
      expect(sfm2.memories.size).toBeGreaterThan(0);
      expect([...sfm2.memories.values()].every((m) => m.deleted)).toBe(true);
      // SomaBrain's coordinate is a captured value: it never appears in the output.
      const coordGets = sfm2.requests.filter((q) => q.method === 'GET' && q.path.startsWith('/memories/') && !q.path.includes('search'));
      const brainCoord = [...sfm2.memories.values()].find((m) => m.payload.tenant === 'public')!.coord;
      expect(coordGets.some((q) => q.path.endsWith(brainCoord))).toBe(true);
      expect(r.stdout).not.toContain(brainCoord);
    }
  });
});
