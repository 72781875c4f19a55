// soma-verify against hostile files and arguments: --output onto special files and other users'
// files, FIFOs and devices where a config, .env or _FILE secret is expected, configs that are
// huge, deep, aliased or named like Object.prototype's members, and numbers Node cannot hold.
// Each ends with one message and its exit code, never a hang, a stack trace or a replaced file.
// Runs the compiled CLI (npm run build first), as root (one test chowns to another user).
import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { chmod, chown, lstat, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, tempProject } from '../support/cli.js';

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const clean of cleanups) await clean();
});
async function folder(files: Record<string, string> = {}): Promise<string> {
  const p = await tempProject(files);
  cleanups.push(p.remove);
  return p.dir;
}

const ONE_CHECK = 'environments:\n  staging:\n    checks:\n      - { id: port, kind: tcp, host: 127.0.0.1, port: 1 }\n';

/** One line on stderr, no stack frame. */
function oneMessage(stderr: string): string {
  expect(stderr).not.toMatch(/\n\s+at /);
  expect(stderr.trim().split('\n')).toHaveLength(1);
  return stderr.trim();
}

describe('--output onto what is already there', () => {
  it('writes into a FIFO (its reader gets the report) and leaves it a FIFO', async () => {
    const dir = await folder({ 'soma-verify.config.yaml': ONE_CHECK });
    const fifo = join(dir, 'report.pipe');
    execFileSync('mkfifo', [fifo]);
    const read = new Promise<string>((resolve, reject) => {
      let text = '';
      createReadStream(fifo, 'utf8').on('data', (d) => (text += d)).on('end', () => resolve(text)).on('error', reject);
    });
    const r = await runCli(['staging', '--list', '-o', fifo], { cwd: dir });
    expect(r.code).toBe(0);
    expect(await read).toContain('1 check\n');
    expect((await stat(fifo)).isFIFO()).toBe(true);
    expect(await readdir(dir)).toEqual(['report.pipe', 'soma-verify.config.yaml']);
  });

  it('a folder of --output that does not exist is a usage error at once (exit 2), not after a whole --wait', async () => {
    const dir = await folder({ 'soma-verify.config.yaml': ONE_CHECK });
    const r = await runCli(['staging', '--wait', '60s', '--format', 'junit', '-o', 'reports/junit.xml'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('soma-verify: --output reports/junit.xml: cannot write (ENOENT)\n');
    expect(r.wallMs).toBeLessThan(10_000);
  });

  it('-o /dev/stdout writes into the pipe the caller gave', async () => {
    const dir = await folder({ 'soma-verify.config.yaml': ONE_CHECK });
    const r = await runCli(['staging', '--list', '-o', '/dev/stdout'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\n1 check\n$/);
  });

  it('writes into a device node instead of replacing it (a private /dev/null)', async () => {
    const dir = await folder({ 'soma-verify.config.yaml': ONE_CHECK });
    const device = join(dir, 'null');
    execFileSync('mknod', [device, 'c', '1', '3']);
    const r = await runCli(['staging', '--list', '--output', device], { cwd: dir });
    expect(r.code).toBe(0);
    expect((await stat(device)).isCharacterDevice()).toBe(true);
  });

  it("keeps the owner and mode of a user's report file when root rewrites it", async () => {
    const dir = await folder({ 'soma-verify.config.yaml': ONE_CHECK, 'report.json': '{}' });
    const out = join(dir, 'report.json');
    await chown(out, 1234, 2345);
    await chmod(out, 0o604);
    const r = await runCli(['staging', '--list', '--format', 'json', '-o', out], { cwd: dir });
    expect(r.code).toBe(0);
    const after = await stat(out);
    expect([after.uid, after.gid, after.mode & 0o7777]).toEqual([1234, 2345, 0o604]);
    expect(JSON.parse(await readFile(out, 'utf8'))).toMatchObject({ env: 'staging' });
  });

  it('refuses a dangling symlink (exit 2) and leaves the link', async () => {
    const dir = await folder({ 'soma-verify.config.yaml': ONE_CHECK });
    const link = join(dir, 'report.txt');
    await symlink(join(dir, 'gone', 'report.txt'), link);
    const r = await runCli(['staging', '--list', '-o', link], { cwd: dir });
    expect(r.code).toBe(2);
    expect(oneMessage(r.stderr)).toBe(
      `soma-verify: --output ${link}: cannot write (${link} is a symlink to ${join(dir, 'gone', 'report.txt')}, which does not exist; fix or remove the link)`,
    );
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
  });
});

describe('what is read must be a regular file of a sane size', () => {
  it('a FIFO as the config, as .env of local, or as a _FILE secret: one message, exit 2, no wait', async () => {
    const dir = await folder({
      'soma-verify.config.yaml': 'environments:\n  staging:\n    services:\n      sfm: { url: "http://127.0.0.1:1", token: "${SFM_TOKEN}" }\n',
    });
    const fifo = join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);

    const config = await runCli(['staging', '--list', '--config', fifo], { cwd: dir, timeoutMs: 10_000 });
    expect(config.code).toBe(2);
    expect(oneMessage(config.stderr)).toBe(`soma-verify: ${fifo} is a FIFO (named pipe), not a regular file`);

    const secret = await runCli(['staging', '--list'], { cwd: dir, env: { SFM_TOKEN_FILE: fifo }, timeoutMs: 10_000 });
    expect(secret.code).toBe(2);
    expect(oneMessage(secret.stderr)).toBe(`soma-verify: environments.staging.services.sfm.token: SFM_TOKEN_FILE: ${fifo} is a FIFO (named pipe), not a regular file`);

    const zero = await runCli(['staging', '--list'], { cwd: dir, env: { SFM_TOKEN_FILE: '/dev/zero' }, timeoutMs: 10_000 });
    expect(zero.code).toBe(2);
    expect(oneMessage(zero.stderr)).toBe('soma-verify: environments.staging.services.sfm.token: SFM_TOKEN_FILE: /dev/zero is a character device, not a regular file');

    const local = await folder();
    execFileSync('mkfifo', [join(local, '.env')]);
    const dotenv = await runCli(['local', '--list'], { cwd: local, timeoutMs: 10_000 });
    expect(dotenv.code).toBe(2);
    expect(oneMessage(dotenv.stderr)).toBe(`soma-verify: ${join(local, '.env')} is a FIFO (named pipe), not a regular file`);
  });

  it('a config over 2 MiB is refused with its size, at once', async () => {
    const dir = await folder();
    const path = join(dir, 'soma-verify.config.yaml');
    await writeFile(path, ONE_CHECK + `# ${'x'.repeat(10 * 1024 * 1024)}\n`);
    const r = await runCli(['staging', '--list'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(oneMessage(r.stderr)).toBe(`soma-verify: ${path} is larger than 2 MiB, the limit for this file`);
  });
});

describe('configs that would make the tool work too hard', () => {
  it('a YAML map of 60k keys parses in linear time (duplicate keys were found quadratically)', async () => {
    let text = 'environments:\n';
    for (let i = 0; i < 60_000; i++) text += `  e${i}: { services: {} }\n`;
    const dir = await folder({ 'soma-verify.config.yaml': text });
    const r = await runCli(['e7', '--list'], { cwd: dir, timeoutMs: 30_000 });
    expect(r.code).toBe(2);
    expect(oneMessage(r.stderr)).toBe('soma-verify: environment "e7" has no checks to run');
  });

  it('a duplicate YAML key is still one message naming its line', async () => {
    const dir = await folder({ 'soma-verify.config.yaml': 'environments:\n  a: {}\n  b: {}\n  a: {}\n' });
    const r = await runCli(['a', '--list'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(oneMessage(r.stderr)).toBe(`soma-verify: ${join(dir, 'soma-verify.config.yaml')}: line 4: map keys must be unique ("a" repeats)`);
  });

  it('a YAML alias with no anchor, and an alias bomb: one message each', async () => {
    const dir = await folder({
      'orphan.yaml': 'environments:\n  staging: *nowhere\n',
      'bomb.yaml':
        'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n' +
        'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n' +
        'g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nenvironments: { staging: { checks: *g } }\n',
    });
    const orphan = await runCli(['staging', '--list', '-c', 'orphan.yaml'], { cwd: dir });
    expect(orphan.code).toBe(2);
    expect(oneMessage(orphan.stderr)).toMatch(/^soma-verify: .*orphan\.yaml: .*nowhere/);
    const bomb = await runCli(['staging', '--list', '-c', 'bomb.yaml'], { cwd: dir });
    expect(bomb.code).toBe(2);
    expect(oneMessage(bomb.stderr)).toMatch(/^soma-verify: .*bomb\.yaml: .*alias/i);
  });

  it('JSON nested 100k deep is one message, not a stack overflow', async () => {
    const deep = `{"environments": {"staging": {"checks": ${'['.repeat(100_000)}${']'.repeat(100_000)}}}}`;
    const dir = await folder({ 'soma-verify.config.json': deep });
    const r = await runCli(['staging', '--list'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(oneMessage(r.stderr)).toBe(`soma-verify: ${join(dir, 'soma-verify.config.json')}: values nest more than 64 levels deep`);
  });

  it('a JSON config with a byte order mark is read as JSON', async () => {
    const dir = await folder({
      'soma-verify.config.json': '\uFEFF{"environments": {"staging": {"checks": [{"id": "port", "kind": "tcp", "host": "127.0.0.1", "port": 1}]}}}',
    });
    const r = await runCli(['staging', '--list', '--format', 'json'], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({ env: 'staging', checks: [{ id: 'port', kind: 'tcp' }] });
  });

  it('environments named toString, constructor or __proto__ are unknown environments, not prototype members', async () => {
    const dir = await folder({ 'soma-verify.config.yaml': ONE_CHECK });
    for (const name of ['toString', 'constructor', '__proto__', 'hasOwnProperty']) {
      const r = await runCli([name, '--list'], { cwd: dir });
      expect(r.code).toBe(2);
      expect(oneMessage(r.stderr)).toBe(`soma-verify: unknown environment "${name}" in ${join(dir, 'soma-verify.config.yaml')} (known: staging, local)`);
    }
  });

  it('--list of 20k checks renders every row (linear; it took 21 s)', async () => {
    const checks = Array.from({ length: 20_000 }, (_, i) => ({ id: `port-${i}`, kind: 'tcp', host: '127.0.0.1', port: 1 + (i % 60_000) }));
    const dir = await folder({ 'soma-verify.config.json': JSON.stringify({ environments: { staging: { checks } } }) });
    const r = await runCli(['staging', '--list'], { cwd: dir, timeoutMs: 30_000 });
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.at(-1)).toBe('20000 checks');
    expect(lines).toHaveLength(20_000 + 5); // top rule, head, rule, rows, bottom rule, count
    expect(lines[3]).toMatch(/^│ port-0 +│ tcp +│ 127\.0\.0\.1:1 +│ 5 s +│ +│$/);
    expect(new Set(lines.slice(0, -1).map((l) => [...l].length)).size).toBe(1); // one grid
  });
});

describe('numbers on the command line', () => {
  it('a negative concurrency or timeout and a deadline past Node timers each give one message and exit 2', async () => {
    const dir = await folder({ 'soma-verify.config.yaml': ONE_CHECK });
    const cases: Array<[string[], string]> = [
      [['--concurrency', '-1'], '--concurrency: expected a whole number of at least 1'],
      [['--timeout', '-5s'], '--timeout: expected a positive duration like 500ms, 5s or 1m, got "-5s"'],
      [['--deadline', '3000000000'], '--deadline: at most 2147483647 ms (24.8 days, the longest timer Node keeps), got "3000000000"'],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(['staging', ...args], { cwd: dir });
      expect(r.code).toBe(2);
      expect(oneMessage(r.stderr)).toBe(`soma-verify: ${message}`);
    }
    const config = await folder({ 'soma-verify.config.yaml': `defaults: { deadline: 3000000000 }\n${ONE_CHECK}` });
    const r = await runCli(['staging'], { cwd: config });
    expect(r.code).toBe(2);
    expect(oneMessage(r.stderr)).toBe('soma-verify: defaults.deadline: at most 2147483647 ms (24.8 days, the longest timer Node keeps), got "3000000000"');
  });
});
