// soma-ports with files a system tool must handle: CR-only line ends, a dangling symlink, a
// user's .env rewritten by root, a FIFO or a device as .env, a registry.json of the wrong shape,
// and the launcher started as `node bin/soma-ports.js` (Node 20 reads --env-file itself).
// Run as root (CI and the development machine are): one test chowns to another user.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeWorkspace, parseAssign, runCli, type Workspace } from './helpers.js';

const workspaces: Workspace[] = [];
afterEach(async () => {
  await Promise.all(workspaces.splice(0).map((w) => w.cleanup()));
});
async function workspace(): Promise<Workspace> {
  const ws = await makeWorkspace();
  workspaces.push(ws);
  return ws;
}

/** `node bin/soma-ports.js ...args`, the way the README's readers may start it. */
const runWithNode = (args: string[], ws: Workspace) => runCli(args, ws, { viaNode: true });

describe('soma-ports and the files it reads and writes', () => {
  it('refuses a .env with CR-only line ends, leaving it untouched (exit 2)', async () => {
    const ws = await workspace();
    const [start] = ws.ranges.somabrain;
    const original = `SOMABRAIN_HOST_PORT=${start + 101}\rSECRET=keep\rREDIS_HOST_PORT=1\r`;
    await writeFile(join(ws.cwd, '.env'), original);
    const result = await runCli(['assign', '--project', 'somabrain'], ws);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `soma-ports: cannot parse ${join(ws.cwd, '.env')}, line 1: a carriage return without a line feed (CR-only line ends?): ` +
        'convert the file to LF line ends; fix that line, the file was left untouched\n',
    );
    expect(await readFile(join(ws.cwd, '.env'), 'utf8')).toBe(original);
    expect(existsSync(join(ws.stateDir, 'registry.json'))).toBe(false);
  });

  it('refuses a dangling .env symlink instead of replacing it with a file (exit 2)', async () => {
    const ws = await workspace();
    const link = join(ws.cwd, '.env');
    const to = join(ws.cwd, 'shared', 'brain.env');
    await symlink(to, link);
    const result = await runCli(['assign', '--project', 'somabrain'], ws);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`soma-ports: cannot write ${link}: ${link} is a symlink to ${to}, which does not exist; fix or remove the link\n`);
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe(to);
    // The registry entry written before .env was taken back.
    const registry = JSON.parse(await readFile(join(ws.stateDir, 'registry.json'), 'utf8')) as { entries: unknown[] };
    expect(registry.entries).toEqual([]);
  });

  it("run as root on a user's .env, keeps its owner and mode", async () => {
    const ws = await workspace();
    const path = join(ws.cwd, '.env');
    await writeFile(path, 'SOMABRAIN_HOST_PORT=1\n');
    await chown(path, 1234, 2345);
    await chmod(path, 0o640);
    parseAssign(await runCli(['assign', '--project', 'somabrain', '--json'], ws));
    const after = await stat(path);
    expect([after.uid, after.gid, after.mode & 0o7777]).toEqual([1234, 2345, 0o640]);
    expect(await readFile(path, 'utf8')).toContain(`SOMABRAIN_HOST_PORT=${ws.ranges.somabrain[0] + 101}`);
  });

  it('refuses a FIFO or /dev/zero as .env at once, with one line (exit 2)', async () => {
    const ws = await workspace();
    const fifo = join(ws.cwd, 'pipe.env');
    execFileSync('mkfifo', [fifo]);
    const fromFifo = await runCli(['assign', '--project', 'somabrain', '--env-file', fifo], ws);
    expect(fromFifo.code).toBe(2);
    expect(fromFifo.stderr).toBe(`soma-ports: ${fifo} is a FIFO (named pipe), not a regular file; it was left untouched\n`);
    expect((await stat(fifo)).isFIFO()).toBe(true);

    const fromZero = await runCli(['check', '--project', 'somabrain', '--env-file', '/dev/zero'], ws);
    expect(fromZero.code).toBe(2);
    expect(fromZero.stderr).toBe('soma-ports: /dev/zero is a character device, not a regular file; it was left untouched\n');
  });

  it('refuses a FIFO as ports.json at once (exit 2)', async () => {
    const ws = await workspace();
    const plan = join(ws.cwd, 'ports.json');
    await rm(plan);
    execFileSync('mkfifo', [plan]);
    const result = await runCli(['assign', '--project', 'somabrain'], ws);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`soma-ports: ${plan} is a FIFO (named pipe), not a regular file\n`);
  });

  it('refuses a FIFO as registry.lock at once (exit 2)', async () => {
    const ws = await workspace();
    const lock = join(ws.stateDir, 'registry.lock');
    execFileSync('mkfifo', [lock]);
    const result = await runCli(['assign', '--project', 'somabrain'], ws);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`soma-ports: ${lock} is a FIFO (named pipe), not a regular file\n`);
  });

  it('a registry.json holding null, or any other shape, is one message and exit 2', async () => {
    const ws = await workspace();
    const path = join(ws.stateDir, 'registry.json');
    for (const text of ['null', '42', '[]', '{"entries": [null]}']) {
      await writeFile(path, text);
      const result = await runCli(['assign', '--project', 'somabrain'], ws);
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(`soma-ports: ${path} does not look like a soma-ports registry (fix or delete it)\n`);
      expect(await readFile(path, 'utf8')).toBe(text);
    }
  });
});

describe('the launcher, however it is started', () => {
  it('node bin/soma-ports.js assign --env-file FILE works on an existing file', async () => {
    const ws = await workspace();
    const target = join(ws.cwd, 'deploy', 'brain.env');
    await mkdir(join(ws.cwd, 'deploy'));
    await writeFile(target, 'SOMABRAIN_HOST_PORT=1\n');
    const result = parseAssign(await runWithNode(['assign', '--env-file', target, '--json'], ws));
    expect(result.envFile).toBe(target);
    expect(await readFile(target, 'utf8')).toBe(`SOMABRAIN_HOST_PORT=${result.ports.SOMABRAIN_HOST_PORT}\n` + Object.entries(result.ports).filter(([k]) => k !== 'SOMABRAIN_HOST_PORT').map(([k, p]) => `${k}=${p}\n`).join(''));
  });

  it('node bin/soma-ports.js -- assign --env-file FILE creates a missing file (the form the docs give)', async () => {
    const ws = await workspace();
    const target = join(ws.cwd, 'new.env');
    const result = parseAssign(await runWithNode(['--', 'assign', '--project', 'somabrain', '--env-file', target, '--json'], ws));
    expect(result.envFile).toBe(target);
    expect(await readFile(target, 'utf8')).toContain(`SOMABRAIN_HOST_PORT=${result.ports.SOMABRAIN_HOST_PORT}\n`);
  });
});
