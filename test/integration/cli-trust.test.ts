// The gate's trust (issue 7): whatever a plugin does (breaks the result contract, never settles,
// calls process.exit, blocks the event loop, takes a built-in's name) and whatever stops the run
// (SIGINT, SIGTERM, SIGHUP), soma-verify ends with a report and a failing exit status, never a
// green gate; and a secret that is one of the report's own words never changes the report.
// Runs the compiled CLI (npm run build first).
import { afterAll, describe, expect, it } from 'vitest';
import { checkOf, reportOf, runCli, startCli, tempProject } from '../support/cli.js';
import { MARGIN_MS } from '../support/run-check.js';

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const clean of cleanups) await clean();
});

/** A plugin module: `run` is the body of an async function of (o, ctx); extra members are spliced in. */
function plugin(kind: string, run: string, extra = '', validate = '(value) => ({ value })'): string {
  return [
    'export default {',
    `  kind: ${JSON.stringify(kind)},`,
    `  options: { '~standard': { version: 1, vendor: 'test', validate: ${validate} } },`,
    "  target: () => 'nowhere',",
    extra,
    `  async run(o, ctx) { ${run} },`,
    '};',
  ].join('\n');
}

/** A project whose staging environment runs `checks` with the given plugin files. */
async function project(plugins: Record<string, string>, checks: unknown[]): Promise<string> {
  const p = await tempProject({
    ...plugins,
    'soma-verify.config.yaml': JSON.stringify({
      plugins: Object.keys(plugins).map((f) => `./${f}`),
      environments: { staging: { checks } },
    }),
  });
  cleanups.push(p.remove);
  return p.dir;
}
const cli = (dir: string, args: string[], env: Record<string, string> = {}) => runCli(args, { cwd: dir, env, timeoutMs: 20_000 });

describe('a secret that is one of the report\'s words', () => {
  it('a token "ail" leaves the status "fail" whole and exits 1 in every format; a shorter one is named (not shown) at start-up', async () => {
    const dir = await project({ 'tok.mjs': plugin('tok', "return { status: 'fail', message: 'the service said: fail' };") }, [
      { id: 'tok', kind: 'tok', token: 'ail' },
      { id: 'tok2', kind: 'tok', password: '${SHORT_PASSWORD}' },
    ]);
    const env = { SHORT_PASSWORD: 'pw' };
    const json = await cli(dir, ['staging', '--format', 'json'], env);
    expect(json.code).toBe(1);
    const report = reportOf(json);
    expect(report.status).toBe('fail');
    expect(report.summary).toEqual({ pass: 0, warn: 0, fail: 2, skip: 0 });
    // Free text is masked ("fail" holds the token), the report's own words are not.
    expect(checkOf(report, 'tok')).toMatchObject({ status: 'fail', kind: 'tok', message: 'the service said: f***' });
    expect(json.stderr).toContain('the secret in ${SHORT_PASSWORD} is shorter than 3 characters, too short to mask');
    expect(json.stderr).toContain('the secret in environments.staging.checks[1].password is shorter than 3 characters');
    expect(json.stderr).not.toMatch(/\bpw\b/);
    for (const format of ['table', 'junit']) {
      const r = await cli(dir, ['staging', '--format', format], env);
      expect(r.code, `${format}: ${r.stderr}`).toBe(1);
      expect(r.stderr).not.toMatch(/internal error|TypeError/);
      expect(r.stdout).toContain('tok2');
    }
  });
});

describe('a plugin that breaks the result contract', () => {
  it('an unknown status, no message, no outcome, circular or BigInt details: failed checks naming the breach, the report renders', async () => {
    const dir = await project(
      {
        'rogue.mjs': plugin(
          'rogue',
          [
            "if (o.behave === 'failed') return { status: 'failed', message: 'x' };",
            "if (o.behave === 'no-message') return { status: 'pass' };",
            "if (o.behave === 'undefined') return undefined;",
            "if (o.behave === 'circular') { const d = { a: 1 }; d.self = d; return { status: 'pass', message: 'ok', details: d }; }",
            "if (o.behave === 'bigint') return { status: 'pass', message: 'ok', details: { n: 12345678901234567890n } };",
          ].join(' '),
        ),
      },
      ['failed', 'no-message', 'undefined', 'circular', 'bigint'].map((behave) => ({ id: behave, kind: 'rogue', behave })),
    );
    const r = await cli(dir, ['staging', '--format', 'json']);
    expect(r.code).toBe(1);
    const report = reportOf(r);
    expect(checkOf(report, 'failed')).toMatchObject({ status: 'fail', message: 'the rogue check broke the check contract: status "failed" is not one of pass, warn, fail, skip' });
    expect(checkOf(report, 'no-message')).toMatchObject({ status: 'fail', message: expect.stringContaining('message is undefined') });
    expect(checkOf(report, 'undefined')).toMatchObject({ status: 'fail', message: expect.stringContaining('run() resolved to undefined') });
    expect(checkOf(report, 'circular')).toMatchObject({ status: 'pass', details: { a: 1, self: '[circular]' } });
    expect(checkOf(report, 'bigint')).toMatchObject({ status: 'pass', details: { n: '12345678901234567890' } });
    for (const format of ['table', 'junit']) {
      const out = await cli(dir, ['staging', '--format', format]);
      expect(out.code, out.stderr).toBe(1);
      expect(out.stdout).toContain('broke the check contract');
    }
  });
});

describe('a plugin that never settles, exits or blocks', () => {
  it('a run, a prepare and a schema that never settle fail within --timeout, with a report', async () => {
    const dir = await project(
      {
        'hang-run.mjs': plugin('hang-run', 'await new Promise(() => {});'),
        'hang-prepare.mjs': plugin('hang-prepare', "return { status: 'pass', message: 'ok' };", '  prepare: () => new Promise(() => {}),'),
        'hang-schema.mjs': plugin('hang-schema', "return { status: 'pass', message: 'ok' };", '', '() => new Promise(() => {})'),
      },
      [
        { id: 'run', kind: 'hang-run' },
        { id: 'prepare', kind: 'hang-prepare' },
        { id: 'schema', kind: 'hang-schema' },
      ],
    );
    const r = await cli(dir, ['staging', '--format', 'json', '--timeout', '1s']);
    expect(r.code, r.stderr).toBe(1);
    const report = reportOf(r);
    expect(checkOf(report, 'run')).toMatchObject({ status: 'fail', message: 'timed out after 1000 ms' });
    expect(checkOf(report, 'prepare')).toMatchObject({ status: 'fail', message: 'cannot load the hang-prepare check: prepare() did not settle within 1000 ms' });
    expect(checkOf(report, 'schema')).toMatchObject({ status: 'fail', message: 'the hang-schema check cannot run: its options schema did not answer within 1000 ms' });
    expect(r.wallMs).toBeLessThan(2 * 1000 + MARGIN_MS);
  });

  it('process.exit(0) in a check, or in a timer it left, never turns the gate green', async () => {
    const dir = await project(
      {
        'quit.mjs': plugin('quit', "if (o.later) { setTimeout(() => process.exit(0), 10); await new Promise((r) => setTimeout(r, 100)); return { status: 'pass', message: 'fine' }; } process.exit(0);"),
      },
      [{ id: 'now', kind: 'quit' }],
    );
    const r = await cli(dir, ['staging', '--format', 'json']);
    expect(r.code).toBe(1);
    expect(checkOf(reportOf(r), 'now')).toMatchObject({ status: 'fail', message: expect.stringContaining('process.exit(0) called while checks run') });
    const later = await project({ 'quit.mjs': plugin('quit', "setTimeout(() => process.exit(0), 10); await new Promise((r) => setTimeout(r, 100)); return { status: 'pass', message: 'fine' };") }, [
      { id: 'later', kind: 'quit' },
    ]);
    const l = await cli(later, ['staging', '--format', 'json']);
    expect(reportOf(l).checks).toHaveLength(1);
    expect(l.code).toBe(1);
    expect(l.stderr).toContain('a check called process.exit(0) while the checks ran: the run fails');
  });

  it('a check that blocks the event loop past --timeout is a failure, not a pass', async () => {
    const dir = await project({ 'block.mjs': plugin('block', "const until = Date.now() + 2500; while (Date.now() < until); return { status: 'pass', message: 'fine' };") }, [
      { id: 'block', kind: 'block' },
    ]);
    const r = await cli(dir, ['staging', '--format', 'json', '--timeout', '1s']);
    expect(r.code).toBe(1);
    expect(checkOf(reportOf(r), 'block')).toMatchObject({ status: 'fail', message: expect.stringMatching(/^timed out after 1000 ms \(its pass came after \d+ ms\)$/) });
  });

  it('a plugin module that never finishes loading is refused within --timeout (exit 2), not a silent exit', async () => {
    const dir = await project({ 'stuck.mjs': `await new Promise(() => {});\n${plugin('stuck', "return { status: 'pass', message: 'ok' };")}` }, [{ id: 's', kind: 'stuck' }]);
    const r = await cli(dir, ['staging', '--format', 'json', '--timeout', '1s']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('plugins[0]: ./stuck.mjs did not finish loading within 1000 ms');
    expect(r.wallMs).toBeLessThan(1000 + MARGIN_MS);
  });

  it('a plugin named like a built-in kind is refused, naming the clash', async () => {
    const dir = await project({ 'pg.mjs': plugin('postgres', "return { status: 'pass', message: 'trust me' };") }, [{ id: 'db', kind: 'postgres', dsn: 'postgresql://x@127.0.0.1/db' }]);
    const r = await cli(dir, ['staging', '--format', 'json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('plugins[0]: ./pg.mjs defines kind "postgres", which is a built-in kind');
    expect(r.stdout).toBe('');
  });
});

describe('a signal', () => {
  const hanging = () =>
    project({ 'wait.mjs': plugin('wait', "if (o.ms === 0) return { status: 'pass', message: 'quick' }; await new Promise((r) => { const t = setTimeout(r, o.ms); if (!o.deaf) ctx.signal.addEventListener('abort', () => { clearTimeout(t); r(); }); }); return { status: 'pass', message: 'waited' };") }, [
      { id: 'quick', kind: 'wait', ms: 0 },
      { id: 'polite', kind: 'wait', ms: 10_000 },
      { id: 'deaf', kind: 'wait', ms: 10_000, deaf: true },
      { id: 'after', kind: 'wait', ms: 10, dependsOn: ['quick'] },
    ]);
  for (const [signal, code] of [['SIGTERM', 143], ['SIGHUP', 129], ['SIGINT', 130]] as const) {
    it(`${signal} ends the run with a report: exit ${code}, interrupted checks failed with the reason, never a pass`, async () => {
      const dir = await hanging();
      const run = startCli(['staging', '--format', 'json', '--verbose', '--timeout', '15s', '--concurrency', '2'], { cwd: dir, timeoutMs: 15_000 });
      await run.stderrMatches(/pass +quick/);
      await new Promise((r) => setTimeout(r, 200));
      run.child.kill(signal);
      const r = await run.done;
      expect(r.code, r.stderr).toBe(code);
      const report = reportOf(r);
      expect(report.status).toBe('fail');
      expect(checkOf(report, 'quick').status).toBe('pass');
      expect(checkOf(report, 'polite')).toMatchObject({ status: 'fail', message: expect.stringMatching(new RegExp(`^interrupted by ${signal} after \\d+ ms$`)) });
      expect(checkOf(report, 'deaf')).toMatchObject({ status: 'fail', message: expect.stringMatching(new RegExp(`^interrupted by ${signal}`)) });
      expect(checkOf(report, 'after').status).not.toBe('pass');
      expect(r.wallMs).toBeLessThan(5000 + MARGIN_MS);
    });
  }
});

// Found by an adversarial review: ways around the gate that the guards above did not cover.
describe('the gate holds against', () => {
  const down = { id: 'down', kind: 'tcp', host: '127.0.0.1', port: 1, timeout: '2s' };

  it.each([
    ['an exit listener that sets exitCode 0', "process.on('exit', () => { process.exitCode = 0; });", "return { status: 'pass', message: 'fine' };"],
    ['an exit listener that calls process.exit(0)', "process.on('exit', () => process.exit(0));", "return { status: 'pass', message: 'fine' };"],
    ['process.reallyExit(0) in a check', '', "process.reallyExit(0); return { status: 'pass', message: 'fine' };"],
  ])('%s: a failed run still exits 1', async (_what, top, run) => {
    const dir = await project({ 'sneak.mjs': `${top}\n${plugin('sneak', run)}` }, [down, { id: 'sneak', kind: 'sneak' }]);
    const r = await cli(dir, ['staging', '--format', 'json']);
    expect(r.code).toBe(1);
  });

  it('a kind whose getter throws on its second read: read once at load, the run reports and fails on its own terms', async () => {
    const kind = plugin('evil', "return { status: 'pass', message: 'fine' };", "get abortGraceMs() { if (++globalThis.__reads >= 2) throw new Error('boom'); return 0; },");
    const dir = await project({ 'evil.mjs': `globalThis.__reads = 0;\n${kind}` }, [down, { id: 'evil', kind: 'evil' }]);
    const r = await cli(dir, ['staging', '--format', 'json']);
    expect(r.code).toBe(1);
    const report = reportOf(r);
    expect(checkOf(report, 'evil').status).toBe('pass');
    expect(checkOf(report, 'down').status).toBe('fail');
  });

  it('an abortGraceMs beyond 60 s is refused at load (exit 2): no kind may outlast the deadline by more', async () => {
    const dir = await project({ 'slow.mjs': plugin('slow', 'await new Promise(() => {});', 'abortGraceMs: 2147483647,') }, [{ id: 'slow', kind: 'slow' }]);
    const r = await cli(dir, ['staging', '--format', 'json', '--deadline', '2s']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('plugins[0]: ./slow.mjs declares abortGraceMs 2147483647: expected a number of milliseconds from 0 to 60000');
  });

  it('a closed stderr (its reader gone) under --wait: the gate still ends, exit 3, within its bounds', async () => {
    const dir = await project({}, [down]);
    const run = startCli(['staging', '--format', 'json', '--wait', '2s', '--deadline', '2s', '--verbose'], { cwd: dir, timeoutMs: 20_000 });
    run.child.stderr!.destroy();
    const r = await run.done;
    expect(r.code).toBe(3);
    expect(reportOf(r).status).toBe('fail');
    expect(r.wallMs).toBeLessThan(2000 + 2000 + MARGIN_MS);
  });

  it.each(['json', 'junit', 'github', 'table'] as const)('an interrupted run whose finished checks all passed reads as a failure (--format %s)', async (format) => {
    const cleanup = plugin('cleanup', "await new Promise((r) => ctx.signal.addEventListener('abort', r)); return { status: 'pass', message: 'cleaned up' };", 'once: true, abortGraceMs: 2000,');
    const dir = await project({ 'cleanup.mjs': cleanup }, [
      { id: 'quick', kind: 'tcp', host: '127.0.0.1', port: 5432 },
      { id: 'writes', kind: 'cleanup' },
    ]);
    const run = startCli(['staging', '--format', format, '--verbose', '--timeout', '15s'], { cwd: dir, timeoutMs: 20_000 });
    await run.stderrMatches(/pass +quick/);
    run.child.kill('SIGTERM');
    const r = await run.done;
    expect(r.code).toBe(143);
    if (format === 'json') expect(reportOf(r)).toMatchObject({ status: 'fail', interrupted: 'SIGTERM', summary: { fail: 0 } });
    if (format === 'junit') expect(r.stdout).toMatch(/failures="1"[\s\S]*<testcase name="run did not finish"[^>]*><failure message="interrupted by SIGTERM"/);
    if (format === 'github') expect(r.stdout).toMatch(/^::error title=soma-verify did not finish::the run on staging: interrupted by SIGTERM; it is not a pass$/m);
    if (format === 'table') expect(r.stdout).toMatch(/^FAIL \(interrupted by SIGTERM\) staging: 2 checks/m);
  });

  it('what a check prints to stdout goes to stderr, line by line and prefixed: the report stays one document, no line of it a workflow command', async () => {
    const loud = `process.stdout.write('loaded\\n');\n${plugin('loud', "process.stdout.write('::error::fake\\n{\"x\":1}'); return { status: 'pass', message: 'fine' };")}`;
    const dir = await project({ 'loud.mjs': loud }, [down, { id: 'loud', kind: 'loud' }]);
    for (const format of ['json', 'github'] as const) {
      const r = await cli(dir, ['staging', '--format', format]);
      expect(r.code).toBe(1);
      expect(r.stdout).not.toContain('fake');
      expect(r.stdout).not.toContain('loaded');
      if (format === 'json') expect(reportOf(r).checks).toHaveLength(2);
      expect(r.stderr).toContain('soma-verify: printed by a check: ::error::fake\nsoma-verify: printed by a check: {"x":1}\n');
      expect(r.stderr).toContain('soma-verify: printed by a check: loaded\n');
    }
  });

  it('a message of megabytes is cut after 8192 characters, marked', async () => {
    const dir = await project({ 'long.mjs': plugin('long', "return { status: 'pass', message: 'x'.repeat(50_000_000) };") }, [{ id: 'long', kind: 'long' }]);
    const r = await cli(dir, ['staging', '--format', 'json']);
    expect(r.code).toBe(0);
    const message = checkOf(reportOf(r), 'long').message;
    expect(message).toBe(`${'x'.repeat(8192)}…`);
  });

  it('a stdout whose reader went away: the exit code is still the verdict', async () => {
    const dir = await project({}, [down]);
    const run = startCli(['staging', '--format', 'json'], { cwd: dir, timeoutMs: 20_000 });
    run.child.stdout!.destroy();
    const r = await run.done;
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain('internal error');
  });

  // The floor alone, in a process of its own: an event loop that runs dry before any verdict
  // (nothing left to wait on, process.exit guarded as while checks run) ends 1, not 0.
  it('a process whose event loop runs dry before the verdict exits 1 and says so, process.exit guarded or not', async () => {
    const { spawnSync } = await import('node:child_process');
    const exitModule = new URL('../../dist/src/cli/exit.js', import.meta.url).href;
    const script = `import(${JSON.stringify(exitModule)}).then(({ holdExitFloor }) => { holdExitFloor(); process.on('uncaughtException', () => {}); process.exit = () => { throw new Error('guarded'); }; process.exitCode = 0; new Promise(() => {}); });`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('soma-verify: the run ended before its report (internal error): the gate fails\n');
  });
});
