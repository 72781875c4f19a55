// `soma-verify <env> --wait DURATION [--consecutive N]` as a CI job runs it: against HTTP doubles
// that come up late (answering 503 first, or refusing connections first), never come up, and
// flap; and the SomaFractalMemory double going from down to healthy. Asserts exit codes, one
// report on stdout, elapsed time against the budget (with a generous margin: the machine is
// shared), and how many attempts reached each double (the pace), never how fast it went.
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_PAUSE_MS } from '../../src/run/wait.js';
import { refusedPort, serveOnLoopback, type TcpPeer } from '../support/faults.js';
import { sfmDouble } from '../support/somastack.js';
import { checkOf, reportOf, runCli, startCli, tempProject } from '../support/cli.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const clean of cleanups.splice(0)) await clean();
});

/** An HTTP double on a fixed loopback port: answers `statusFor(n)` to its n-th request (1-based). */
interface HttpDouble {
  url: string;
  hits: number;
  close(): Promise<void>;
}
async function httpDouble(statusFor: (n: number) => number, port = 0): Promise<HttpDouble> {
  const double = { url: '', hits: 0, close: async () => {} };
  const server: Server = createServer((req, res) => {
    double.hits++;
    req.resume();
    const status = statusFor(double.hits);
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ status: status === 200 ? 'ok' : 'down' }));
  });
  let peer: TcpPeer;
  if (port === 0) peer = await serveOnLoopback(server);
  else {
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
    peer = { port, url: () => `http://127.0.0.1:${port}`, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) };
  }
  double.url = peer.url();
  double.close = peer.close;
  cleanups.push(() => peer.close());
  return double;
}

/** A folder with a config of these checks on `staging` (and the given plugin files, loaded). */
async function project(checks: unknown[], plugins: Record<string, string> = {}) {
  const config = { plugins: Object.keys(plugins).map((f) => `./${f}`), environments: { staging: { checks } } };
  const p = await tempProject({ 'soma-verify.config.yaml': JSON.stringify(config), ...plugins });
  cleanups.push(p.remove);
  return p.dir;
}
const attemptsIn = (stderr: string) => (stderr.match(/^soma-verify: attempt \d+:/gm) ?? []).length;
/** The attempt count of the closing line ("all passing after N attempts", "ran out after N attempts"). */
const attemptsMade = (stderr: string) => Number(/(?:all passing|ran out) after (\d+) attempts/.exec(stderr)?.[1]);
/** Resolves once `condition()` holds, checking every 20 ms. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((r) => setTimeout(r, 20));
}

describe('--wait', () => {
  it('a service that refuses connections, then listens: the watch of its port ends the pause at once', async () => {
    const port = await refusedPort();
    const steady = await httpDouble(() => 200);
    const dir = await project([
      { id: 'steady', kind: 'http', url: steady.url },
      { id: 'late', kind: 'http', url: `http://127.0.0.1:${port}/` },
      { id: 'after-late', kind: 'http', url: steady.url, dependsOn: ['late'] },
    ]);
    const run = startCli(['staging', '--wait', '30s', '--format', 'json'], { cwd: dir, timeoutMs: 40_000 });
    // Refused until the second progress line (5 s after the first): the backoff's pause is then
    // near its 5 s cap, so the port opens well inside a pause and only the watch can notice it.
    await run.stderrMatches(/attempt \d+:[^\n]*\n[\s\S]*attempt \d+: .*next attempt in ([2-9]|\d\d)\.\d s/);
    const upAt = performance.now();
    const late = await httpDouble(() => 200, port);
    const r = await run.done;
    const noticedAfterMs = performance.now() - upAt;
    expect(r.code, r.stderr).toBe(0);
    const report = reportOf(r); // one JSON document on stdout, not one per attempt
    expect(report.status).toBe('pass');
    expect(report.checks.map((c) => c.status)).toEqual(['pass', 'pass', 'pass']);
    expect(steady.hits).toBe(2); // `steady` once, `after-late` once, after `late` passed
    expect(late.hits).toBe(1);
    // The root cause, not the checks it blocked (they are re-run with it), and the port watched.
    expect(r.stderr).toMatch(
      new RegExp(`attempt 1: 1 not passing \\(late: fail connection refused[^;]*\\); next attempt in \\d+\\.\\d s, or once 127\\.0\\.0\\.1:${port} accepts connections`),
    );
    // The watch saw the port accept, and the attempt it started was the last one: the wait did
    // not sit out the rest of a backoff pause.
    const woke = new RegExp(`127\\.0\\.0\\.1:${port} accepts connections now; attempt (\\d+) starts`).exec(r.stderr);
    expect(woke, r.stderr).not.toBeNull();
    expect(attemptsMade(r.stderr)).toBe(Number(woke![1]));
    // Noticed within one capped pause plus start-up, not at the 30 s budget (no tighter: shared machine).
    expect(noticedAfterMs).toBeLessThan(MAX_PAUSE_MS + 3000);
    // What paces the wait stays out of the report.
    for (const c of report.checks) expect(c).not.toHaveProperty('unanswered');
  });

  it('a service that answers 503 until it is ready: asked again at a steady pace, not backing off', async () => {
    let ready = false;
    const coming = await httpDouble(() => (ready ? 200 : 503));
    const dir = await project([{ id: 'coming', kind: 'http', url: coming.url }]);
    const run = startCli(['staging', '--wait', '30s', '--format', 'json'], { cwd: dir, timeoutMs: 40_000 });
    await run.stderrMatches(/attempt 1:/);
    await new Promise((r) => setTimeout(r, 4500));
    const hitsWhileStarting = coming.hits;
    ready = true;
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect(coming.hits).toBe(hitsWhileStarting + 1); // done at its first 200
    // About 4.6 s of 503s: a pause of 300-400 ms asks 12 to 16 times; the backoff (250 ms
    // doubling to 5 s) would have asked at most 6 times, a 250 ms poll about 19 times.
    expect(hitsWhileStarting).toBeGreaterThanOrEqual(8);
    expect(hitsWhileStarting).toBeLessThanOrEqual(20);
    expect(r.stderr).toMatch(/attempt 1: 1 not passing \(coming: fail HTTP 503[^;]*\); next attempt in 0\.[2-4] s\n/);
  });

  it('a service that answers 503 and never comes up: exit 3 with the last report once the budget is spent', async () => {
    const down = await httpDouble(() => 503);
    const dir = await project([{ id: 'down', kind: 'http', url: down.url }]);
    const r = await runCli(['staging', '--wait', '3s', '--format', 'json'], { cwd: dir, timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(3);
    const report = reportOf(r);
    expect(report.status).toBe('fail');
    expect(checkOf(report, 'down').message).toMatch(/503/);
    // Spent, not abandoned early, and not overrun by more than one attempt and start-up.
    expect(r.wallMs).toBeGreaterThanOrEqual(3000);
    expect(r.wallMs).toBeLessThan(3000 + 4000);
    // The steady pace: about 9 attempts in 3 s (at most 6 with the backoff).
    expect(down.hits).toBeGreaterThanOrEqual(5);
    expect(down.hits).toBeLessThanOrEqual(16);
    expect(r.stderr).toContain(`--wait 3s ran out after ${down.hits} attempts`);
    // One progress line: what fails did not change, and a line repeats only every 5 s.
    expect(attemptsIn(r.stderr)).toBe(1);
    expect(r.stderr).toMatch(/attempt 1: 1 not passing \(down: fail HTTP 503/);
  });

  it('a port that never listens: attempts grow sparse (the backoff), and the wait exits 3 on time', async () => {
    const port = await refusedPort();
    const dir = await project([{ id: 'never', kind: 'http', url: `http://127.0.0.1:${port}/` }]);
    const r = await runCli(['staging', '--wait', '4s', '--format', 'json'], { cwd: dir, timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(3);
    expect(r.wallMs).toBeGreaterThanOrEqual(4000);
    expect(r.wallMs).toBeLessThan(4000 + 4000);
    // Pauses of 125-250, 250-500, 500-1000, 1000-2000, 2000-4000 ms fit 4 to 6 attempts in 4 s,
    // where the steady pace would make about 12.
    const attempts = attemptsMade(r.stderr);
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect(attempts).toBeLessThanOrEqual(8);
    expect(r.stderr).not.toMatch(/accepts connections now/);
    const never = checkOf(reportOf(r), 'never');
    expect(never.message).toMatch(/connection refused/);
    expect(never).not.toHaveProperty('unanswered');
  });

  it('a plugin whose `unanswered` breaks the contract fails naming the breach', async () => {
    const plugin = `export default {
  kind: 'says-unanswered',
  options: { '~standard': { version: 1, vendor: 'test', validate: (value) => ({ value }) } },
  target: (o) => String(o.port),
  async run(o) {
    return { status: 'fail', message: 'no answer', unanswered: { host: '127.0.0.1', port: o.port, refused: o.refused } };
  },
};
`;
    const dir = await project(
      [
        { id: 'garbage', kind: 'says-unanswered', port: 0, refused: true },
        { id: 'not-boolean', kind: 'says-unanswered', port: 5432, refused: 'maybe' },
      ],
      { 'says-unanswered.mjs': plugin },
    );
    const r = await runCli(['staging', '--wait', '1500ms', '--format', 'json'], { cwd: dir, timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(3);
    const report = reportOf(r);
    expect(checkOf(report, 'garbage')).toMatchObject({
      status: 'fail',
      message: 'the says-unanswered check broke the check contract: unanswered.port is 0, not a TCP port (status was fail)',
    });
    expect(checkOf(report, 'not-boolean').message).toBe(
      'the says-unanswered check broke the check contract: unanswered.refused is "maybe", not true or false (status was fail)',
    );
  });

  it('a flapping service: --consecutive 2 needs two passing attempts in a row, and re-runs every check for them', async () => {
    // pass, fail, pass, pass: done at the 4th attempt, not at the first pass.
    const flapping = await httpDouble((n) => (n === 2 ? 503 : 200));
    const steady = await httpDouble(() => 200);
    const dir = await project([
      { id: 'flapping', kind: 'http', url: flapping.url },
      { id: 'steady', kind: 'http', url: steady.url },
    ]);
    const r = await runCli(['staging', '--wait', '20s', '--consecutive', '2', '--format', 'json'], { cwd: dir, timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(flapping.hits).toBe(4);
    expect(steady.hits).toBe(4);
    expect(r.stderr).toMatch(/attempt 1: all passing \(1 of 2 in a row\)/);
    expect(r.stderr).toMatch(/attempt 2: 1 not passing \(flapping: fail HTTP 503/);
    expect(r.stderr).toMatch(/attempt 3: all passing \(1 of 2 in a row\)/);
    expect(reportOf(r).status).toBe('pass');
  });

  it('the same flapping service without --consecutive passes at the first attempt', async () => {
    const flapping = await httpDouble((n) => (n === 2 ? 503 : 200));
    const dir = await project([{ id: 'flapping', kind: 'http', url: flapping.url }]);
    const r = await runCli(['staging', '--wait', '20s', '--format', 'json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(flapping.hits).toBe(1);
  });

  it('SomaFractalMemory whose vector store comes back: the health check passes once the double says so', async () => {
    const sfm = await sfmDouble({ generation: 'gen1', stores: { kv_store: true, vector_store: false, graph_store: true } });
    cleanups.push(() => sfm.close());
    const p = await tempProject({
      'soma-verify.config.yaml': JSON.stringify({ environments: { staging: { services: { sfm: { url: sfm.url, generation: 'gen1' } } } } }),
    });
    cleanups.push(p.remove);
    const run = startCli(['staging', '--wait', '20s', '--format', 'json'], { cwd: p.dir, timeoutMs: 30_000 });
    await run.stderrMatches(/attempt 1: .*vector_store is false/);
    sfm.set({ stores: { kv_store: true, vector_store: true, graph_store: true } });
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect(reportOf(r).checks.every((c) => c.status === 'pass')).toBe(true);
    expect(sfm.writes()).toEqual([]);
  });

  it('SIGTERM ends the wait at once with the last report (the real failure, not "interrupted")', async () => {
    const down = await httpDouble(() => 503);
    const dir = await project([{ id: 'down', kind: 'http', url: down.url }]);
    const run = startCli(['staging', '--wait', '60s', '--format', 'json'], { cwd: dir, timeoutMs: 20_000 });
    await until(() => down.hits >= 2);
    const sent = performance.now();
    run.child.kill('SIGTERM');
    const r = await run.done;
    expect(performance.now() - sent).toBeLessThan(3000);
    expect(r.code).toBe(143); // 128 + SIGTERM
    const report = reportOf(r);
    expect(report.status).toBe('fail');
    expect(checkOf(report, 'down').message).toMatch(/HTTP 503/);
  });

  it('a configuration error exits 2 at once, whatever the wait', async () => {
    const dir = await project([{ id: 'x', kind: 'http', url: 'ftp://nope' }]);
    const r = await runCli(['staging', '--wait', '60s'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.wallMs).toBeLessThan(10_000);
    expect(r.stdout).toBe('');
    const ok = await project([{ id: 'x', kind: 'http', url: 'http://127.0.0.1:9/' }]);
    const bad = await runCli(['staging', '--wait', 'soon'], { cwd: ok });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--wait: expected a duration like 500ms, 5s or 1m, got "soon"');
    const alone = await runCli(['staging', '--consecutive', '2'], { cwd: ok });
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain('--consecutive: only means something with --wait');
    const zero = await runCli(['staging', '--wait', '5s', '--consecutive', '0'], { cwd: ok });
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain('--consecutive: expected a whole number of at least 1');
  });
});

describe('--help', () => {
  it('lists --wait, --consecutive, the github format and exit code 3', async () => {
    const dir = await project([]);
    const r = await runCli(['--help'], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/--wait +re-run what fails until all pass or DURATION is spent \(then exit 3\)/);
    expect(r.stdout).toMatch(/--consecutive +with --wait: attempts in a row/);
    expect(r.stdout).toMatch(/choices: "table", "json", "junit", "github"/);
    expect(r.stdout).toMatch(/3 --wait ran out before all passed/);
  });
});

describe('--wait and kinds that run once (smoke scenarios, which write)', () => {
  // A plugin marked `once: true` that appends a line per run to a file: what a scenario's write is.
  // Frozen, as a careful plugin author may export it.
  const plugin = `import { appendFileSync } from 'node:fs';
export default Object.freeze({
  kind: 'writes-once',
  once: true,
  options: { '~standard': { version: 1, vendor: 'test', validate: (value) => ({ value }) } },
  target: (o) => o.file,
  async run(o, ctx) {
    appendFileSync(o.file, JSON.stringify(Object.fromEntries([...ctx.dependencies].map(([id, r]) => [id, r.status]))) + '\\n');
    return { status: 'pass', message: 'wrote its marked data once' };
  },
});
`;

  it('runs once, after the checks it depends on pass, however many attempts they took', async () => {
    const port = await refusedPort();
    const logs = await tempProject();
    cleanups.push(logs.remove);
    const file = join(logs.dir, 'writes.log');
    const dir = await project(
      [
        { id: 'late', kind: 'http', url: `http://127.0.0.1:${port}/` },
        { id: 'sfm.smoke', kind: 'writes-once', file, dependsOn: ['late'] },
      ],
      { 'writes-once.mjs': plugin },
    );
    const run = startCli(['staging', '--wait', '20s', '--format', 'json'], { cwd: dir, timeoutMs: 30_000 });
    await run.stderrMatches(/attempt 1:/);
    await new Promise((r) => setTimeout(r, 1000));
    await httpDouble(() => 200, port);
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect(checkOf(reportOf(r), 'sfm.smoke').status).toBe('pass');
    // One write, and it saw its dependency pass.
    expect((await readFile(file, 'utf8')).trim().split('\n')).toEqual(['{"late":"pass"}']);
  });

  it('never runs when the wait runs out first; the report says why', async () => {
    const logs = await tempProject();
    cleanups.push(logs.remove);
    const file = join(logs.dir, 'writes.log');
    const dir = await project(
      [
        { id: 'never', kind: 'http', url: `http://127.0.0.1:${await refusedPort()}/` },
        { id: 'sfm.smoke', kind: 'writes-once', file, dependsOn: ['never'] },
      ],
      { 'writes-once.mjs': plugin },
    );
    const r = await runCli(['staging', '--wait', '1500ms', '--format', 'json'], { cwd: dir });
    expect(r.code).toBe(3);
    const smoke = checkOf(reportOf(r), 'sfm.smoke');
    expect(smoke.status).toBe('skip');
    expect(smoke.message).toMatch(/runs once, after every other check passed, and the --wait time ran out/);
    await expect(readFile(file, 'utf8')).rejects.toThrow(/ENOENT/);
  });
});

// Found by a review of the gate's pacing.
describe('--wait at its edges', () => {
  it('two checks flapping out of step under --consecutive 2: the gate still pauses between attempts, and the report is not a pass', async () => {
    const a = await httpDouble((n) => (n % 2 ? 200 : 503));
    const b = await httpDouble((n) => (n % 2 ? 503 : 200));
    const dir = await project([
      { id: 'a', kind: 'http', url: a.url },
      { id: 'b', kind: 'http', url: b.url },
    ]);
    const r = await runCli(['staging', '--wait', '3s', '--consecutive', '2', '--format', 'json'], { cwd: dir, timeoutMs: 30_000 });
    expect(r.code).toBe(3);
    // One coming up re-runs the rest at once, but at most once per steady pause (350 ms): some
    // 2 attempts per pause at most, where it made one every few milliseconds.
    expect(a.hits).toBeLessThan(30);
    const report = reportOf(r) as ReturnType<typeof reportOf> & { waitExpired?: string };
    expect(report.status).toBe('fail');
    expect(report.waitExpired).toMatch(/^--wait 3s ran out after \d+ attempts: (1 check not passing|2 passing attempts in a row were needed)$/);
  });

  it('a service that answers just before the budget ends is seen: the pause cut by the end is followed by one last attempt', async () => {
    const readyAt = Date.now() + 4300;
    const server = createServer((req, res) => {
      if (Date.now() < readyAt) return void req.socket.destroy(); // no answer: the checks back off
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    });
    const peer = await serveOnLoopback(server);
    cleanups.push(() => peer.close());
    const dir = await project([{ id: 'late', kind: 'http', url: peer.url() }]);
    const r = await runCli(['staging', '--wait', '5s', '--format', 'json'], { cwd: dir, timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(checkOf(reportOf(r), 'late').status).toBe('pass');
  });

  it('the checks that run once share the bound of --wait plus one --deadline, not a deadline of their own', async () => {
    const slow = createServer((req, res) => setTimeout(() => res.writeHead(200).end('{"status":"ok"}'), 1500));
    const peer = await serveOnLoopback(slow);
    cleanups.push(() => peer.close());
    const hangs = `export default {
  kind: 'hangs-once', once: true,
  options: { '~standard': { version: 1, vendor: 'test', validate: (value) => ({ value }) } },
  target: () => 'nowhere',
  async run(o, ctx) { await new Promise((r) => ctx.signal.addEventListener('abort', r)); return { status: 'fail', message: 'cut' }; },
};
`;
    const dir = await project(
      [
        { id: 'slow', kind: 'http', url: peer.url(), timeout: '3s' },
        { id: 'once', kind: 'hangs-once', dependsOn: ['slow'], timeout: '10s' },
      ],
      { 'hangs-once.mjs': hangs },
    );
    const r = await runCli(['staging', '--wait', '1s', '--deadline', '2s', '--format', 'json'], { cwd: dir, timeoutMs: 30_000 });
    expect(r.code).toBe(1);
    // The slow check took about 1.5 s of the 3 s bound: the once phase got the rest, not 2 s more.
    expect(checkOf(reportOf(r), 'once').message).toMatch(/^cut by the global deadline after (1[0-6]\d\d|\d{3}) ms$/);
    expect(r.wallMs).toBeLessThan(1000 + 2000 + 2500);
  });
});
