// The smoke scenarios end to end: the compiled CLI runs `--smoke` against the SomaStack doubles
// (test/support/somastack.ts), which follow the memory routes of both generations, and every
// test asserts from the doubles' own state that nothing the scenarios wrote is left behind.
// Build first: npm run build.
import { constants } from 'node:os';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sfmDouble, somabrainDouble, type SfmDouble, type SomabrainDouble } from '../support/somastack.js';
import { checkOf, reportOf, runCli, startCli, tempProject, type CliResult, type JsonReport } from '../support/cli.js';

const SFM_TOKEN = 'sfm-smoke-token-7d1e0c55';
const BRAIN_TOKEN = 'brain-smoke-token-93aa61f0';
const WRONG_TOKEN = 'wrong-smoke-token-40c2b7e9';
/** The runbook of sfm.smoke, in order, cleanup last. */
const SFM_SMOKE_STEPS = [
  'tell the sfm generation',
  'store a marked memory at the sentinel coord',
  'read it back',
  'search for the marker',
  '/stats counts it',
  'a write without a token is refused',
  'a write with a wrong token is refused',
  'delete it and see it gone',
  'cleanup: delete the sentinel coord',
];
// Child start-up plus slack: not a speed test.
const MARGIN_MS = 4000;

let sfm1: SfmDouble, sfm2: SfmDouble, brain1: SomabrainDouble, brain2: SomabrainDouble;
/** Closed in the middle of a scenario by one test. */
let dying: SfmDouble;
let project: { dir: string; remove(): Promise<void> };

beforeAll(async () => {
  [sfm1, sfm2, dying] = await Promise.all([
    sfmDouble({ generation: 'gen1', token: SFM_TOKEN }),
    sfmDouble({ generation: 'gen2', token: SFM_TOKEN }),
    sfmDouble({ generation: 'gen1', token: SFM_TOKEN, fault: { mode: 'delay', ms: 3000, paths: ['/memories/search'] } }),
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
      dying: sfmOnly(dying, SFM_TOKEN),
      'brain1-only': { services: { somabrain: { url: brain1.url, token: BRAIN_TOKEN, metrics: false } }, smoke: true },
    },
  };
  project = await tempProject({ 'soma-verify.config.json': JSON.stringify(config, null, 2) });
});

afterAll(async () => {
  await Promise.all([brain1, brain2].map((d) => d?.close()));
  await Promise.all([sfm1, sfm2, dying].map((d) => d?.close()));
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
    const r = await verify(gen, '--format', 'json', '--verbose');
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
    expect(steps(report, 'sfm.smoke').map((s) => s.name)).toEqual(SFM_SMOKE_STEPS);
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
      expect(r.stderr).not.toContain(brainCoord);
      expect(r.stderr).toContain("step 'remember a marked item through SomaBrain' pass");
    }
  });
});

describe('without smoke nothing is ever written', () => {
  it('an environment without smoke runs no scenario and sends no write to any double', async () => {
    const r = await verify('no-smoke', '--format', 'json');
    expect(r.code, r.stdout).toBe(0);
    expect(reportOf(r).checks.map((c) => c.id)).toEqual(['somabrain.health', 'sfm.health']);
    for (const d of [sfm2, brain2]) expect(d.writes()).toEqual([]);
  });

  it('--no-smoke turns smoke: true off; --smoke turns it on', async () => {
    const off = await verify('gen2', '--no-smoke', '--format', 'json');
    expect(reportOf(off).checks.map((c) => c.id)).toEqual(['somabrain.health', 'sfm.health']);
    for (const d of [sfm2, brain2]) expect(d.writes()).toEqual([]);
    const on = await verify('no-smoke', '--smoke', '--format', 'json');
    expect(reportOf(on).checks.map((c) => [c.id, c.status])).toEqual([
      ['somabrain.health', 'pass'],
      ['sfm.health', 'pass'],
      ['sfm.smoke', 'pass'],
      ['somabrain.smoke', 'pass'],
      ['stack.smoke', 'pass'],
    ]);
    expectNothingLeft();
  });
});

describe('configuration', () => {
  it('a smoke setting that is not true, false or { timeout } is one clear error, exit 2', async () => {
    const bad = await tempProject({ 'soma-verify.config.json': JSON.stringify({ environments: { x: { smoke: 'yes' } } }) });
    try {
      const r = await runCli(['x'], { cwd: bad.dir, timeoutMs: 20_000 });
      expect(r.code).toBe(2);
      expect(r.stderr).toBe('soma-verify: environments.x.smoke: expected true, false or { timeout: 45s }\n');
    } finally {
      await bad.remove();
    }
  });
});

describe('soma-verify local --smoke (no config)', () => {
  it('runs the three scenarios against the local stack doubles and leaves nothing behind', async () => {
    const bare = await tempProject();
    try {
      const env = { SOMABRAIN_HOST_PORT: String(brain2.port), API_PORT: String(sfm2.port), SOMA_API_TOKEN: SFM_TOKEN, SOMABRAIN_API_TOKEN: BRAIN_TOKEN };
      const r = await runCli(['local', '--smoke', '--only', '*.smoke', '--format', 'json'], { cwd: bare.dir, env, timeoutMs: 40_000 });
      expect(reportOf(r).checks.map((c) => [c.id, c.status, c.message])).toEqual([
        ['sfm.smoke', 'pass', expect.stringMatching(/\(sfm gen2\)$/)],
        ['somabrain.smoke', 'pass', expect.stringMatching(/\(somabrain gen2\)$/)],
        ['stack.smoke', 'pass', expect.stringMatching(/\(somabrain gen2, sfm gen2\)$/)],
      ]);
      expect(r.code).toBe(0);
      expectNothingLeft();
      expectNoSecrets(r);
      // Without --smoke the local run writes nothing.
      const writes = sfm2.writes().length + brain2.writes().length;
      await runCli(['local', '--only', 'sfm.*,somabrain.*', '--format', 'json'], { cwd: bare.dir, env, timeoutMs: 40_000 });
      expect(sfm2.writes().length + brain2.writes().length).toBe(writes);
    } finally {
      await bare.remove();
    }
  });
});

describe('the report', () => {
  it("--only 'sfm.*' selects sfm.smoke with its health check; --list shows each scenario's dependsOn", async () => {
    const r = await verify('gen1', '--only', 'sfm.*', '--format', 'json');
    expect(reportOf(r).checks.map((c) => [c.id, c.status])).toEqual([
      ['sfm.health', 'pass'],
      ['sfm.smoke', 'pass'],
    ]);
    expect(brain1.writes()).toEqual([]);
    const written = sfm1.writes().length;
    const list = await verify('gen1', '--list', '--format', 'json');
    const planned = (list.json as { checks: Array<{ id: string; dependsOn: string[]; timeoutMs: number }> }).checks;
    expect(planned.filter((c) => c.id.endsWith('.smoke'))).toEqual([
      expect.objectContaining({ id: 'sfm.smoke', dependsOn: ['sfm.health'], timeoutMs: 30_000 }),
      expect.objectContaining({ id: 'somabrain.smoke', dependsOn: ['somabrain.health', 'sfm.health'] }),
      expect.objectContaining({ id: 'stack.smoke', dependsOn: ['somabrain.health', 'sfm.health'] }),
    ]);
    expect(sfm1.writes()).toHaveLength(written);
    expectNothingLeft();
  });

  it('JUnit has one testcase per step, classname the scenario id; the table one row per scenario', async () => {
    const junit = await verify('gen2', '--format', 'junit');
    expect(junit.code).toBe(0);
    const cases = [...junit.stdout.matchAll(/<testcase name="([^"]*)" classname="sfm\.smoke"/g)].map((m) => m[1]);
    expect(cases).toEqual(SFM_SMOKE_STEPS);
    expect(junit.stdout).toMatch(/<testcase name="remember a marked item through SomaBrain" classname="stack\.smoke"/);
    const table = await verify('gen2');
    expect(table.code).toBe(0);
    for (const id of ['sfm.smoke', 'somabrain.smoke', 'stack.smoke']) {
      expect(table.stdout.split('\n').filter((line) => line.includes(` ${id} `))).toHaveLength(1);
    }
    expectNothingLeft();
  });

  it('a failed step is a JUnit failure of that step', async () => {
    sfm1.set({ authOff: true });
    const r = await verify('sfm1-slow', '--format', 'junit');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/<testcase name="a write without a token is refused" classname="sfm\.smoke" time="[\d.]+"><failure message="POST \/memories without a token answered 200: the API accepts unauthenticated writes"/);
    expect(r.stdout).toMatch(/<testsuites name="soma-verify" tests="\d+" failures="1"/);
    expectNothingLeft();
  });
});

describe('the awkward parts of the contracts', () => {
  it('SFM gen1 double, wrong token: 403 is "token refused", nothing written, nothing to clean', async () => {
    const r = await verify('sfm1-wrong-token', '--format', 'json');
    const check = checkOf(reportOf(r), 'sfm.smoke');
    expect(check.status).toBe('fail');
    expect(check.message).toBe(
      "store a marked memory at the sentinel coord: POST /memories answered 403 (token refused: check SOMA_API_TOKEN); cleanup: nothing was written (sfm gen1)",
    );
    expect(steps(reportOf(r), 'sfm.smoke').slice(2).every((s) => s.status === 'skip')).toBe(true);
    expect(sfm1.requests.filter((q) => q.method === 'DELETE')).toEqual([]);
    expectNothingLeft();
    expectNoSecrets(r);
  });

  it('SFM gen2 double, wrong token: sfm.smoke is blocked by sfm.health; alone it says 401, token refused', async () => {
    const blocked = await verify('sfm2-wrong-token', '--format', 'json');
    expect(checkOf(reportOf(blocked), 'sfm.smoke')).toMatchObject({ status: 'skip', message: 'blocked by sfm.health' });
    const alone = await verify('sfm2-wrong-token', '--only', 'sfm.smoke', '--format', 'json');
    const check = checkOf(reportOf(alone), 'sfm.smoke');
    expect(check.message).toMatch(/^store a marked memory at the sentinel coord: POST \/memories answered 401 \(token refused: check SOMA_API_TOKEN\); .*\(sfm gen2\)$/);
    expect(steps(reportOf(alone), 'sfm.smoke')[0]!.message).toBe('gen2 (detected)');
    expectNothingLeft();
  });

  it('SFM gen1 double, no token configured: 401 says to set the token', async () => {
    const r = await verify('sfm1-no-token', '--format', 'json');
    expect(checkOf(reportOf(r), 'sfm.smoke').message).toMatch(
      /^store a marked memory at the sentinel coord: POST \/memories answered 401 \(no token configured: set the sfm token \(SOMA_API_TOKEN\)\)/,
    );
  });

  it('SFM double with auth turned off: the accepted unauthenticated write is a failure that says so, and is removed', async () => {
    sfm1.set({ authOff: true });
    const r = await verify('sfm1-slow', '--format', 'json');
    const check = checkOf(reportOf(r), 'sfm.smoke');
    expect(r.code).toBe(1);
    expect(check.status).toBe('fail');
    expect(check.message).toMatch(/^a write without a token is refused: POST \/memories without a token answered 200: the API accepts unauthenticated writes; cleanup: GET answers 404: removed/);
    expect(check.details.cleanup).toEqual({ ok: true, message: 'GET answers 404: removed' });
    expectNothingLeft();
  });

  it('SFM gen1 double answering 500 after deleting: accepted because the next GET is 404', async () => {
    sfm1.set({ deleteAnswers500: true });
    const r = await verify('sfm1-slow', '--format', 'json');
    expect(checkOf(reportOf(r), 'sfm.smoke').status).toBe('pass');
    expect(steps(reportOf(r), 'sfm.smoke').find((s) => s.name === 'delete it and see it gone')!.message).toBe(
      'DELETE answered 500 (the gen1 vector-delete fault) and GET answers 404: removed',
    );
    expectNothingLeft();
  });

  it('SFM gen2 double, soft delete: the rows stay marked deleted, none is live, the run passes', async () => {
    const r = await verify('gen2', '--only', 'sfm.*', '--format', 'json');
    expect(checkOf(reportOf(r), 'sfm.smoke').status).toBe('pass');
    const rows = [...sfm2.memories.values()];
    expect(rows).toHaveLength(1);
    expect(rows[0]!.deleted).toBe(true);
    expectNothingLeft();
  });

  it('SFM gen2 double whose search finds nothing (no vector store): a warning, not a failure', async () => {
    sfm2.set({ searchEmpty: true });
    const r = await verify('gen2', '--only', 'sfm.*', '--format', 'json');
    const check = checkOf(reportOf(r), 'sfm.smoke');
    expect(check.status).toBe('warn');
    expect(check.message).toBe('search for the marker: the search did not find the marked memory (normal on gen2 without a vector store) (sfm gen2)');
    expect(r.code).toBe(0);
    expectNothingLeft();
  });

  it('degraded 200 from SFM gen1 double (ok: false): the store step fails', async () => {
    sfm1.set({ writeNotOk: true });
    const r = await verify('sfm1-slow', '--format', 'json');
    expect(checkOf(reportOf(r), 'sfm.smoke').message).toMatch(/^store a marked memory at the sentinel coord: POST \/memories answered 200 with ok: false/);
    expectNothingLeft();
  });

  it('degraded 200 from SomaBrain gen1 double (breaker open, queued): not a pass', async () => {
    brain1.set({ queueWrites: true });
    const r = await verify('gen1', '--format', 'json');
    for (const id of ['somabrain.smoke', 'stack.smoke']) {
      const check = checkOf(reportOf(r), id);
      expect(check.status, id).toBe('fail');
      expect(check.message).toMatch(/^remember a marked item through SomaBrain: POST \/remember answered 200 but queued the item for replay \(breaker_open: true, queued: true\)/);
    }
    // The queued item never reached SFM within the cleanup budget: gen1 keeps what lands (no
    // ttl), so the cleanup failed, and the row says how to find it.
    expect(checkOf(reportOf(r), 'stack.smoke').details.cleanup).toEqual({
      ok: false,
      message: expect.stringMatching(/^remove the memory from SFM: the write had not reached SFM when cleanup ended: if it lands later, it is the memory marked soma-verify-stack-smoke-\w+-\w+ at the sentinel coord$/),
    });
    expectNothingLeft();
  });

  it('degraded 200 from SomaBrain gen2 double (coordinate: null): not a pass', async () => {
    brain2.set({ queueWrites: true });
    const r = await verify('gen2', '--format', 'json');
    const check = checkOf(reportOf(r), 'somabrain.smoke');
    expect(check.status).toBe('fail');
    expect(check.message).toMatch(/coordinate: null: the long-term write was not confirmed/);
    expectNothingLeft();
  });

  it('SomaBrain gen2 double answering recall degraded: true: fails with that reason within the budget', async () => {
    brain2.set({ recallDegraded: true });
    const r = await verify('gen2-short', '--format', 'json');
    const check = checkOf(reportOf(r), 'somabrain.smoke');
    expect(check.status).toBe('fail');
    expect(check.message).toMatch(/^recall it from the long-term store: recall answered degraded: true without the item \(still so after \d+ attempts in \d+ ms\); cleanup: /);
    expectNothingLeft();
  });

  it.each(['gen1', 'gen2'] as const)('SomaBrain %s double whose long-term write lands after 1.5 s: recall retries and passes', async (gen) => {
    const brain = gen === 'gen1' ? brain1 : brain2;
    brain.set({ longTermDelayMs: 1500 });
    const r = await verify(gen, '--format', 'json');
    expect(checkOf(reportOf(r), 'somabrain.smoke').status).toBe('pass');
    expect(checkOf(reportOf(r), 'stack.smoke').status).toBe('pass');
    expect(brain.count(gen === 'gen1' ? '/recall' : '/memory/recall')).toBeGreaterThan(2);
    expectNothingLeft();
  });

  it('SomaBrain gen2 double whose working memory returns everything: a working-memory hit is not a pass', async () => {
    // The long-term write lands only after the scenario's 2.5 s budget: cleanup waits for it.
    brain2.set({ longTermDelayMs: 3500 });
    const r = await verify('gen2-short', '--format', 'json');
    const check = checkOf(reportOf(r), 'somabrain.smoke');
    expect(check.status).toBe('fail');
    expect(check.message).toMatch(/^recall it from the long-term store: recalled only from working memory: the long-term store has not answered it/);
    expect(brain2.workingMemory.length).toBeGreaterThan(0);
    expectNothingLeft();
  });

  it('SomaBrain gen1 double with OPA down (every route 403): blocked by its health check; alone it names OPA, not the token', async () => {
    brain1.set({ opaDown: true });
    const blocked = await verify('brain1-only', '--format', 'json');
    expect(checkOf(reportOf(blocked), 'somabrain.smoke')).toMatchObject({ status: 'skip', message: 'blocked by somabrain.health' });
    const alone = await verify('brain1-only', '--only', 'somabrain.smoke', '--format', 'json');
    const check = checkOf(reportOf(alone), 'somabrain.smoke');
    expect(check.message).toMatch(/^remember a marked item through SomaBrain: POST \/remember answered 403 and so does \/health: OPA is unreachable .*not a token problem/);
    expect(check.message).not.toMatch(/token refused/);
    expectNothingLeft();
  });

  it('an SFM double that dies in the middle: the step fails naming it, and the failed cleanup says what remains', async () => {
    const run = startCli(['dying', '--format', 'json', '--verbose'], { cwd: project.dir, timeoutMs: 40_000 });
    await run.stderrMatches(/step 'store a marked memory at the sentinel coord' pass/);
    await dying.close();
    const r = await run.done;
    const check = checkOf(reportOf(r), 'sfm.smoke');
    expect(r.code).toBe(1);
    expect(check.status).toBe('fail');
    expect(check.message).toMatch(new RegExp(`^read it back: .*127\\.0\\.0\\.1:${dying.port}.*|^search for the marker: .*127\\.0\\.0\\.1:${dying.port}`));
    expect(check.message).toMatch(/CLEANUP FAILED: delete the sentinel coord: connection refused/);
    expect(check.details.cleanup).toMatchObject({ ok: false });
    // The double's own state: the one marked memory the report names is what remains.
    expect(dying.live().map((m) => m.payload.marker)).toEqual([check.details.marker]);
  });
});

describe('cleanup always runs', () => {
  const slowSearch = () => sfm1.set({ fault: { mode: 'delay', ms: 5000, paths: ['/memories/search'] } });

  it('after the scenario budget runs out: names the step, cleans up', async () => {
    slowSearch();
    const r = await verify('sfm1-short', '--format', 'json');
    const check = checkOf(reportOf(r), 'sfm.smoke');
    expect(check.status).toBe('fail');
    expect(check.message).toBe(
      "ran out of time (2000 ms) at step 'search for the marker'; cleanup: GET answers 404: removed (sfm gen1)",
    );
    expect(steps(reportOf(r), 'sfm.smoke').find((s) => s.name === 'search for the marker')!.message).toBe(
      "ran out of time: the scenario's budget of 2000 ms passed",
    );
    expect(r.wallMs).toBeLessThan(2000 + MARGIN_MS);
    expectNothingLeft();
  });

  it('after the global deadline: cleans up before the report', async () => {
    slowSearch();
    const r = await verify('sfm1-slow', '--format', 'json', '--deadline', '2s');
    const check = checkOf(reportOf(r), 'sfm.smoke');
    expect(r.code).toBe(1);
    expect(check.status).toBe('fail');
    expect(check.message).toMatch(/^ran out of time \(\d+ ms\) at step 'search for the marker'; cleanup: GET answers 404: removed/);
    expectNothingLeft();
  });

  it.each(['SIGINT', 'SIGTERM'] as const)('after %s through the real CLI: exit 128+n, the scenario cleaned up', async (signal) => {
    slowSearch();
    const run = startCli(['sfm1-slow', '--format', 'json', '--verbose'], { cwd: project.dir, timeoutMs: 30_000 });
    await run.stderrMatches(/step '\/stats counts it'|step 'read it back' pass/);
    run.child.kill(signal);
    const r = await run.done;
    expect(r.code).toBe(128 + constants.signals[signal]);
    const check = checkOf(reportOf(r), 'sfm.smoke');
    expect(check.status).toBe('skip');
    expect(check.message).toBe("interrupted at step 'search for the marker'; cleanup: GET answers 404: removed (sfm gen1)");
    expect(sfm1.count('/memories/search')).toBe(1);
    expectNothingLeft();
  });

  // A write cut before its answer may still be carried out by a slow server: deleting at once
  // would leave it behind once it lands. Cleanup waits for it, then removes it.
  it('SIGTERM while the store request is in flight to a slow SFM: cleanup waits for the write to land, then removes it', async () => {
    sfm1.set({ fault: { mode: 'delay', ms: 2000, paths: ['/memories'], landsAnyway: true } });
    const run = startCli(['sfm1-slow', '--only', 'sfm.smoke', '--format', 'json', '--verbose'], { cwd: project.dir, timeoutMs: 30_000 });
    await run.stderrMatches(/step 'tell the sfm generation' pass/);
    await new Promise((resolve) => setTimeout(resolve, 300));
    run.child.kill('SIGTERM');
    const r = await run.done;
    expect(r.code).toBe(143);
    const check = checkOf(reportOf(r), 'sfm.smoke');
    expect(check.message).toBe("interrupted at step 'store a marked memory at the sentinel coord'; cleanup: GET answers 404: removed (sfm gen1)");
    // The write was stored after the client hung up, and deleted after that.
    const order = sfm1.requests.filter((q) => q.method !== 'GET').map((q) => `${q.method} ${q.path.split('/').slice(0, 2).join('/')}`);
    expect(order).toEqual(['POST /memories', 'DELETE /memories']);
    await new Promise((resolve) => setTimeout(resolve, 2000 - 300));
    expectNothingLeft();
  });

  it('a cut write that has not landed when cleanup ends: CLEANUP FAILED, naming the marker and coord it would land at', async () => {
    // Cut by the 2 s scenario budget, carried out at 9 s: after cleanup gave up waiting.
    sfm1.set({ fault: { mode: 'delay', ms: 9000, paths: ['/memories'], landsAnyway: true } });
    try {
      const r = await verify('sfm1-short', '--only', 'sfm.smoke', '--format', 'json');
      expect(r.code).toBe(1);
      const check = checkOf(reportOf(r), 'sfm.smoke');
      expect(check.status).toBe('fail');
      const { marker, coord } = check.details as { marker: string; coord: string };
      expect(check.message).toBe(
        `ran out of time (2000 ms) at step 'store a marked memory at the sentinel coord'; CLEANUP FAILED: delete the sentinel coord: the write had not reached SFM when cleanup ended: if it lands later, it is the memory marked ${marker} at ${coord} (sfm gen1)`,
      );
      // It was deleted anyway (it might have been there unseen): too early, as the report says.
      expect(sfm1.writes().filter((q) => q.method === 'DELETE')).toHaveLength(1);
      // It lands: what the report named is what is there.
      const numbers = (c: string) => c.split(',').map(Number);
      await expect.poll(() => sfm1.live().map((m) => [m.payload.marker, numbers(m.coord)]), { timeout: 10_000, interval: 200 }).toEqual([[marker, numbers(coord)]]);
    } finally {
      // (whatever failed above, the late write must not land in the next test)
      await expect.poll(() => sfm1.count('/memories') > 0 && sfm1.live().length > 0, { timeout: 10_000, interval: 200 }).toBe(true).catch(() => {});
      sfm1.memories.clear();
    }
  }, 30_000);

  it('SIGINT while SomaBrain gen1 is slow to remember: cleanup waits until recall finds the item, then forgets it', async () => {
    brain1.set({ fault: { mode: 'delay', ms: 2000, paths: ['/remember'], landsAnyway: true } });
    const run = startCli(['brain1-only', '--only', 'somabrain.smoke', '--format', 'json', '--verbose'], { cwd: project.dir, timeoutMs: 30_000 });
    await run.stderrMatches(/step 'tell the somabrain generation' pass/);
    await new Promise((resolve) => setTimeout(resolve, 300));
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code).toBe(130);
    const check = checkOf(reportOf(r), 'somabrain.smoke');
    expect(check.message).toBe("interrupted at step 'remember a marked item through SomaBrain'; cleanup: POST /delete answered ok (somabrain gen1)");
    const order = brain1.requests.filter((q) => q.method !== 'GET').map((q) => q.path);
    expect(order[0]).toBe('/remember');
    expect(order.at(-1)).toBe('/delete');
    expect(order).toContain('/recall');
    expectNothingLeft();
  });

  it('a second Ctrl-C still leaves cleanup its few seconds', async () => {
    // Every answer takes 1 s, cleanup's DELETE and GET too: quitting at once would leave the memory.
    sfm1.set({ fault: { mode: 'delay', ms: 1000 } });
    const run = startCli(['sfm1-slow', '--format', 'json', '--verbose'], { cwd: project.dir, timeoutMs: 30_000 });
    await run.stderrMatches(/step 'store a marked memory at the sentinel coord' pass/);
    run.child.kill('SIGINT');
    await run.stderrMatches(/interrupted/);
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('smoke scenarios clean up first; Ctrl-C again quits within 3 s');
    expect(r.stderr).toContain("soma-verify: quitting within 3 s, once the smoke scenarios' cleanup is done");
    expect(checkOf(reportOf(r), 'sfm.smoke').details.cleanup).toEqual({ ok: true, message: 'GET answers 404: removed' });
    expectNothingLeft();
  });

  it('two concurrent runs against one stack double both pass and do not meet', async () => {
    const [a, b] = await Promise.all([verify('gen2', '--format', 'json'), verify('gen2', '--format', 'json')]);
    for (const r of [a, b]) {
      expect(r.code, r.stdout).toBe(0);
      for (const id of ['sfm.smoke', 'somabrain.smoke', 'stack.smoke']) expect(checkOf(reportOf(r), id).status).toBe('pass');
    }
    const markers = [a, b].flatMap((r) => reportOf(r).checks.filter((c) => c.id.endsWith('.smoke')).map((c) => c.details.marker));
    expect(new Set(markers).size).toBe(6);
    expectNothingLeft();
  });
});
