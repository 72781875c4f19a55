// The bundled CLI keeps a V8 code cache of itself and its libraries in $XDG_CACHE_HOME/soma-verify
// (src/code-cache.ts). A cache may only save compilation: these runs of the compiled CLI, with
// no cache, a cold one, a warm one, a corrupt one, an unwritable folder and the cache turned off,
// must give the same results, and a check's timeout must fire within its bound plus a margin in
// each.
import { execFileSync, spawn } from 'node:child_process';
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentServer, type TcpPeer } from '../support/faults.js';
import { startPostgresPeer, type PostgresPeer } from '../support/peers/postgres.js';
import { startRedisPeer, type RedisPeer } from '../support/peers/redis.js';
import { sfmDouble, type Double, type SfmState } from '../support/somastack.js';
import { reportOf, ROOT, runCli, tempProject, type JsonReport } from '../support/cli.js';

// Child start-up on a busy 2-core machine plus slack: not a speed test.
const MARGIN_MS = 3000;

const PLUGIN = `export default {
  kind: 'plugged',
  options: { '~standard': { version: 1, vendor: 'test', validate: (v) => ({ value: v }) } },
  target: () => 'nothing',
  run: async () => ({ status: 'pass', message: 'the plugin ran' }),
};
`;

let postgres: PostgresPeer, redis: RedisPeer, sfm: Double<SfmState>, silent: TcpPeer;
let project: { dir: string; remove(): Promise<void> };

beforeAll(async () => {
  [postgres, redis, sfm, silent] = await Promise.all([startPostgresPeer(), startRedisPeer(), sfmDouble({ generation: 'gen1' }), silentServer()]);
  const config = {
    environments: {
      cached: {
        services: {
          sfm: { url: sfm.url, generation: 'gen1' },
          postgres: { dsn: postgres.dsn() },
          redis: { url: redis.url() },
        },
        checks: [
          { id: 'silent', kind: 'http', url: `${silent.url()}/`, timeout: '500ms' },
          { id: 'missing', kind: 'http', url: `${sfm.url}/no-such-route`, expectStatus: [200] },
          // A plugin: the CLI imports it, and code run from a V8 cache cannot import() on Node 20.
          { id: 'plugin', kind: 'plugged' },
        ],
      },
    },
    plugins: ['./plugged.mjs'],
  };
  // YAML (JSON is YAML), so that a vendored library, yaml, is loaded and cached too.
  project = await tempProject({ 'soma-verify.config.yaml': JSON.stringify(config), 'plugged.mjs': PLUGIN });
}, 60_000);

afterAll(async () => {
  await Promise.all([postgres?.close(), redis?.close(), sfm?.close(), silent?.close()]);
  await project?.remove();
});

/** What must not depend on the cache: each check's id, status and message (figures aside), and the run's status. */
function outcome(report: JsonReport) {
  return {
    status: report.status,
    checks: report.checks.map((c) => ({ id: c.id, status: c.status, message: c.message.replace(/\d+(\.\d+)?/g, '#'), details: Object.keys(c.details).sort() })),
  };
}

async function verifyWith(env: Record<string, string>) {
  const r = await runCli(['cached', '--format', 'json'], { cwd: project.dir, env, timeoutMs: 20_000 });
  const report = reportOf(r);
  const silentCheck = report.checks.find((c) => c.id === 'silent')!;
  expect(silentCheck.status).toBe('fail');
  expect(silentCheck.message).toMatch(/within 500 ms/);
  expect(silentCheck.durationMs).toBeLessThan(500 + MARGIN_MS);
  expect(r.code).toBe(1);
  return outcome(report);
}

describe('the code cache changes nothing but compilation', () => {
  it('no cache, a cold cache, a warm one, a corrupt one, an unwritable folder and SOMA_VERIFY_CACHE=off give the same results, and timeouts fire in each', async () => {
    const home = join(project.dir, 'xdg');
    const folder = join(home, 'soma-verify');
    const off = await verifyWith({ SOMA_VERIFY_CACHE: 'off', XDG_CACHE_HOME: home });
    await expect(stat(folder)).rejects.toThrow(); // off means nothing written

    // What an older install left: a library no longer shipped, an older build, another Node.
    const stale = [`ioredis-0123456789ab-${process.version}-${process.arch}.v8cache`, `pg-0123456789ab-${process.version}-${process.arch}.v8cache`, `pg-0123456789ab-v18.0.0-${process.arch}.v8cache`];
    await mkdir(folder, { recursive: true });
    for (const name of stale) await writeFile(join(folder, name), 'old');
    const cold = await verifyWith({ XDG_CACHE_HOME: home });
    const files = (await readdir(folder)).filter((f) => f.endsWith('.v8cache'));
    // The CLI itself and the library this run used: yaml (HTTP, Redis and PostgreSQL are the CLI's own clients).
    for (const lib of ['soma-verify', 'yaml']) expect(files.some((f) => f.startsWith(`${lib}-`)), lib).toBe(true);
    // Writing them dropped what belongs to no file of this install.
    for (const name of stale) expect(files, name).not.toContain(name);
    const written = await Promise.all(files.map(async (f) => (await stat(join(folder, f))).mtimeMs));

    const warm = await verifyWith({ XDG_CACHE_HOME: home });
    // A cache V8 accepted is used as it is, not written again.
    const after = await Promise.all(files.map(async (f) => (await stat(join(folder, f))).mtimeMs));
    expect(after).toEqual(written);

    for (const f of files) await writeFile(join(folder, f), Buffer.alloc(4096, 7));
    const corrupt = await verifyWith({ XDG_CACHE_HOME: home });
    // V8 rejected the garbage; the run compiled from source and wrote a good cache back.
    for (const f of files) expect((await readFile(join(folder, f))).equals(Buffer.alloc(4096, 7))).toBe(false);

    // A cache "folder" that is a file: nothing can be written, nothing breaks.
    const blocked = join(project.dir, 'blocked');
    await writeFile(blocked, 'not a folder');
    const unwritable = await verifyWith({ XDG_CACHE_HOME: blocked });
    // And one without write permission (root ignores modes, so this only bites for other users).
    const readOnly = join(project.dir, 'ro');
    await mkdir(readOnly);
    await chmod(readOnly, 0o500);
    const readOnlyRun = await verifyWith({ XDG_CACHE_HOME: readOnly });

    for (const run of [cold, warm, corrupt, unwritable, readOnlyRun]) expect(run).toEqual(off);
    // The plan really ran: the peers passed, the silent server and the missing route failed.
    for (const c of off.checks) expect(c.status, c.id).toBe(['silent', 'missing'].includes(c.id) ? 'fail' : 'pass');
  });

  it("a cache folder another user owns (mode 0700) costs only the compilation: the run passes, nothing on stderr", async () => {
    // Root ignores modes, so the run is another user's (uid 65534), from a copy of the built CLI
    // that user may read (a checkout in a mktemp -d folder is closed to it).
    const copy = await mkdtemp(join(tmpdir(), 'soma-verify-other-user-'));
    try {
      for (const part of ['bin', 'dist/bundle', 'dist/help', 'package.json']) await cp(join(ROOT, part), join(copy, part), { recursive: true });
      const server = createServer((req, res) => res.end('{"status":"ok"}'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`;
      await writeFile(join(copy, 'soma-verify.config.json'), JSON.stringify({ environments: { other: { checks: [{ id: 'up', kind: 'health', url }] } } }));
      execFileSync('chmod', ['-R', 'a+rX', copy]);
      const closed = await mkdtemp(join(tmpdir(), 'soma-verify-closed-cache-')); // root's, 0700
      try {
        // Not spawnSync: the server answering the check lives in this process.
        const child = spawn(process.execPath, [join(copy, 'bin/soma-verify.js'), 'other', '--format', 'json'], {
          cwd: copy,
          uid: 65534,
          gid: 65534,
          env: { PATH: process.env.PATH, XDG_CACHE_HOME: closed },
          timeout: 20_000,
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        const status = await new Promise((resolve) => child.on('close', resolve));
        const r = { status, stdout, stderr };
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
        expect(JSON.parse(r.stdout)).toMatchObject({ status: 'pass' });
      } finally {
        server.close();
        await rm(closed, { recursive: true, force: true });
      }
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });
});
