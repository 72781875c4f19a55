// `soma-ports assign / check / show / release` end to end: the compiled CLI against real sockets,
// real files and a private state dir. Build first: npm run build
import { createServer, type Server } from 'node:net';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BIN, makeWorkspace, parseAssign, runCli, type Workspace } from './helpers.js';

const servers: Server[] = [];
const workspaces: Workspace[] = [];

async function listen(port: number, host: string, ipv6Only = false): Promise<Server> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, ipv6Only }, () => resolve());
  });
  servers.push(server);
  return server;
}

async function workspace(options?: { sharedRange?: boolean }): Promise<Workspace> {
  const ws = await makeWorkspace(options);
  workspaces.push(ws);
  return ws;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  await Promise.all(workspaces.splice(0).map((w) => w.cleanup()));
});

beforeAll(() => {
  if (!existsSync(join(BIN, '..', '..', 'dist', 'bundle', 'cli', 'launch.cjs'))) {
    throw new Error('dist/ is missing: run npm run build first');
  }
});

const inRange = (port: number, [first, last]: [number, number]) => port >= first && port <= last;

describe('soma-ports assign', () => {
  it('creates a missing .env with the preferred ports, and a second run changes nothing', async () => {
    const ws = await workspace();
    const first = parseAssign(await runCli(['assign', '--project', 'somabrain', '--json'], ws));
    const [start] = ws.ranges.somabrain;
    expect(first.ports).toMatchObject({ REDIS_HOST_PORT: start + 100, SOMABRAIN_HOST_PORT: start + 101, SCHEMA_REGISTRY_HOST_PORT: start + 108 });
    expect(first.assignments.every((a) => a.reason === 'preferred')).toBe(true);
    const written = await readFile(join(ws.cwd, '.env'), 'utf8');
    expect(written).toBe(Object.entries(first.ports).map(([k, p]) => `${k}=${p}\n`).join(''));

    const second = parseAssign(await runCli(['assign', '--json'], ws)); // detected from the keys
    expect(second.project).toBe('somabrain');
    expect(second.changed).toBe(false);
    expect(second.ports).toEqual(first.ports);
    expect(second.assignments.every((a) => a.reason === 'kept')).toBe(true);
    expect(await readFile(join(ws.cwd, '.env'), 'utf8')).toBe(written);
  });

  it('skips ports held by listeners on 127.0.0.1, 0.0.0.0, ::1 and :: (IPv6 only), naming the holder pid', async () => {
    const ws = await workspace();
    const [start] = ws.ranges.somaagent01;
    const held = { KAFKA_PORT: start, REDIS_PORT: start + 1, POSTGRES_PORT: start + 2, QDRANT_HTTP_PORT: start + 3 };
    await listen(held.KAFKA_PORT, '127.0.0.1');
    await listen(held.REDIS_PORT, '::1');
    await listen(held.POSTGRES_PORT, '::', true);
    await listen(held.QDRANT_HTTP_PORT, '0.0.0.0');

    const result = parseAssign(await runCli(['assign', '--project', 'somaagent01', '--json'], ws));
    const ports = Object.values(result.ports);
    expect(new Set(ports).size).toBe(ports.length);
    for (const port of ports) {
      expect(inRange(port, ws.ranges.somaagent01)).toBe(true);
      expect(Object.values(held)).not.toContain(port);
    }
    for (const key of Object.keys(held)) {
      const a = result.assignments.find((x) => x.key === key);
      expect(a?.reason).toBe('moved');
      expect(a?.why).toContain(`in use by pid ${process.pid}`);
    }
  });

  it('moves a port of .env that another process holds, keeps the rest and every other byte', async () => {
    const ws = await workspace();
    const [start] = ws.ranges.somafractalmemory;
    const original = [
      '# SFM local settings\r\n',
      `export API_PORT="${start + 20}"  # the API\r\n`,
      `POSTGRES_HOST_PORT=${start + 21}\r\n`,
      'POSTGRES_PASSWORD=s3cr3t-value\r\n',
      '\r\n',
      `REDIS_HOST_PORT='${start + 22}'\r\n`,
      'UNRELATED=keep me',
    ].join('');
    await writeFile(join(ws.cwd, '.env'), original);
    await listen(start + 21, '127.0.0.1');

    const result = parseAssign(await runCli(['assign', '--json'], ws));
    expect(result.project).toBe('somafractalmemory');
    const moved = result.ports.POSTGRES_HOST_PORT as number;
    expect(moved).not.toBe(start + 21);
    expect(inRange(moved, ws.ranges.somafractalmemory)).toBe(true);
    const expected =
      original.replace(`POSTGRES_HOST_PORT=${start + 21}\r\n`, `POSTGRES_HOST_PORT=${moved}\r\n`) + `\r\nQDRANT_HOST_PORT=${result.ports.QDRANT_HOST_PORT}\r\n`;
    expect(await readFile(join(ws.cwd, '.env'), 'utf8')).toBe(expected);
    // Secrets never reach the output or the registry.
    const registry = await readFile(join(ws.stateDir, 'registry.json'), 'utf8');
    expect(registry).not.toContain('s3cr3t');
    expect(JSON.stringify(result)).not.toContain('s3cr3t');
  });

  it('keeps a port in use when it is registered to this same .env (its own running stack)', async () => {
    const ws = await workspace();
    const first = parseAssign(await runCli(['assign', '--project', 'somabrain', '--json'], ws));
    const redis = first.ports.REDIS_HOST_PORT as number;
    await listen(redis, '127.0.0.1');
    const second = parseAssign(await runCli(['assign', '--json'], ws));
    expect(second.ports.REDIS_HOST_PORT).toBe(redis);
    expect(second.assignments.find((a) => a.key === 'REDIS_HOST_PORT')?.why).toBe('kept: in use, registered to this project');
    expect(second.changed).toBe(false);
  });

  it('never gives a port registered to another project, even when nothing listens on it', async () => {
    // somabrain and SFM share key names; here they also share one range, so only the registry
    // keeps them apart.
    const ws = await workspace({ sharedRange: true });
    await mkdir(join(ws.cwd, 'brain'));
    await mkdir(join(ws.cwd, 'sfm'));
    await writeFile(join(ws.cwd, 'brain', 'ports.json'), await readFile(join(ws.cwd, 'ports.json')));
    // SFM's plan prefers exactly somabrain's Postgres and Redis ports.
    const sfmPlan = {
      projects: {
        somafractalmemory: {
          range: ws.ranges.somafractalmemory,
          services: { postgres: { preferred: ws.base + 106 }, redis: { preferred: ws.base + 100 } },
        },
      },
    };
    await writeFile(join(ws.cwd, 'sfm', 'ports.json'), JSON.stringify(sfmPlan));
    const brain = parseAssign(await runCli(['assign', '--project', 'somabrain', '--json'], { ...ws, cwd: join(ws.cwd, 'brain') }));
    const sfm = parseAssign(await runCli(['assign', '--project', 'somafractalmemory', '--json'], { ...ws, cwd: join(ws.cwd, 'sfm') }));
    const brainPorts = new Set(Object.values(brain.ports));
    for (const port of Object.values(sfm.ports)) expect(brainPorts.has(port)).toBe(false);
    for (const key of ['POSTGRES_HOST_PORT', 'REDIS_HOST_PORT']) {
      expect(sfm.assignments.find((a) => a.key === key)?.why).toMatch(/^moved: \d+ registered to somabrain \(.*brain\/\.env\)$/);
    }
  });

  it('stays out of the ephemeral range', async () => {
    const ws = await workspace();
    const [low] = (await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/).map(Number) as [number];
    // A range whose upper part is ephemeral; preferred ports placed inside it must move down.
    const plan = { projects: { somafractalmemory: { range: [low - 10, low + 189] } } };
    await writeFile(join(ws.cwd, 'ports.json'), JSON.stringify(plan));
    const result = parseAssign(await runCli(['assign', '--project', 'somafractalmemory', '--json'], ws));
    for (const port of Object.values(result.ports)) expect(port).toBeLessThan(low);
  });

  it('assigns inside a range that lies wholly in the ephemeral range, warning once with the sysctl line; check --expect free warns too', async () => {
    const ws = await workspace();
    const [low, high] = (await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/).map(Number) as [number, number];
    const reserved = (await readFile('/proc/sys/net/ipv4/ip_local_reserved_ports', 'utf8')).trim();
    // SFM's documented 40000-40199 on a default Linux; here a random window of the same shape.
    const first = low + 100 + 200 * Math.floor(Math.random() * 20);
    const range: [number, number] = [first, first + 199];
    await writeFile(join(ws.cwd, 'ports.json'), JSON.stringify({ projects: { somafractalmemory: { range } } }));
    const result = await runCli(['assign', '--project', 'somafractalmemory', '--json'], ws);
    const assigned = parseAssign(result);
    for (const port of Object.values(assigned.ports)) expect(inRange(port, range)).toBe(true);
    expect(existsSync(join(ws.cwd, '.env'))).toBe(true);
    const reserve = [reserved, `${range[0]}-${range[1]}`].filter(Boolean).join(',');
    const warning =
      `soma-ports: warning: somafractalmemory's range ${range[0]}-${range[1]} lies inside the kernel's ephemeral range ${low}-${high}: ` +
      'an outgoing connection may take one of its ports before docker compose binds it. ' +
      `Reserve the range (as root; add it to /etc/sysctl.d/ to keep it): sysctl -w net.ipv4.ip_local_reserved_ports=${reserve}; ` +
      'until then, run soma-ports check --expect free right before docker compose up\n';
    expect(result.stderr).toBe(warning); // once, not once per port

    const again = parseAssign(await runCli(['assign', '--json'], ws));
    expect(again.changed).toBe(false);

    const check = await runCli(['check', '--expect', 'free'], ws);
    expect(check.code).toBe(0);
    expect(check.stderr).toBe(warning);
  });

  it('moves somaagent01 with PORT_POOL_START from the environment', async () => {
    const ws = await workspace();
    const start = ws.base + 600;
    const result = parseAssign(await runCli(['assign', '--project', 'somaagent01', '--json'], ws, { env: { PORT_POOL_START: String(start) } }));
    expect(result.ports.KAFKA_PORT).toBe(start);
    expect(result.ports.GATEWAY_PORT).toBe(start + 16);
  });

  it('--env-file names a .env elsewhere, and creates it when missing (Node must not take the flag for its own)', async () => {
    const ws = await workspace();
    const target = join(ws.cwd, 'deploy', 'brain.env');
    await mkdir(join(ws.cwd, 'deploy'));
    const first = parseAssign(await runCli(['assign', '--project', 'somabrain', '--env-file', target, '--json'], ws));
    expect(first.envFile).toBe(target);
    expect(await readFile(target, 'utf8')).toContain(`SOMABRAIN_HOST_PORT=${first.ports.SOMABRAIN_HOST_PORT}`);
  });

  it('--dry-run prints the diff of .env and writes nothing', async () => {
    const ws = await workspace();
    const [start] = ws.ranges.somabrain;
    const original = `SOMABRAIN_HOST_PORT=${start + 101}\nREDIS_HOST_PORT=1\n`;
    await writeFile(join(ws.cwd, '.env'), original);
    const result = await runCli(['assign', '--dry-run'], ws);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('-REDIS_HOST_PORT=1');
    expect(result.stdout).toContain(`+REDIS_HOST_PORT=${start + 100}`);
    expect(result.stdout).toContain(`+OPA_HOST_PORT=${start + 104}`);
    expect(await readFile(join(ws.cwd, '.env'), 'utf8')).toBe(original);
    expect(existsSync(join(ws.stateDir, 'registry.json'))).toBe(false);
  });

  it('leaves an unparseable .env untouched, names the line, exits 2', async () => {
    const ws = await workspace();
    const original = 'SOMABRAIN_HOST_PORT=1\nPASSWORD="unterminated secret\nREDIS_HOST_PORT=2\n';
    await writeFile(join(ws.cwd, '.env'), original);
    const before = await stat(join(ws.cwd, '.env'));
    const result = await runCli(['assign', '--project', 'somabrain'], ws);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^soma-ports: cannot parse .*line 2: unterminated double quote.*\n$/);
    expect(result.stderr).not.toContain('secret');
    expect(await readFile(join(ws.cwd, '.env'), 'utf8')).toBe(original);
    expect((await stat(join(ws.cwd, '.env'))).mtimeMs).toBe(before.mtimeMs);
    expect(existsSync(join(ws.stateDir, 'registry.json'))).toBe(false);
  });

  it('exits 2 with one line for usage errors: unknown project, ambiguous detection, bad option', async () => {
    const ws = await workspace();
    const unknown = await runCli(['assign', '--project', 'nope'], ws);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe('soma-ports: unknown project "nope"; known: somaagent01, somabrain, somafractalmemory\n');

    await writeFile(join(ws.cwd, '.env'), 'POSTGRES_HOST_PORT=1\nREDIS_HOST_PORT=2\n'); // somabrain or SFM?
    const ambiguous = await runCli(['assign'], ws);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toMatch(/cannot tell whether .* belongs to (somabrain or somafractalmemory|somafractalmemory or somabrain): pass --project\n$/);

    const badOption = await runCli(['assign', '--frobnicate'], ws);
    expect(badOption.code).toBe(2);
    expect(badOption.stderr).toBe('soma-ports: Unknown argument: frobnicate\n');

    await writeFile(join(ws.cwd, 'ports.json'), '{"projects": {"somabrain": {"range": [5, 2]}}}');
    const badPlan = await runCli(['assign', '--project', 'somabrain'], ws);
    expect(badPlan.code).toBe(2);
    expect(badPlan.stderr).toContain('projects.somabrain.range must be [first, last]');
    expect(await readFile(join(ws.cwd, '.env'), 'utf8')).toBe('POSTGRES_HOST_PORT=1\nREDIS_HOST_PORT=2\n');
  });

  it('8 concurrent assign processes on one plan hand out distinct ports', async () => {
    const ws = await workspace();
    const dirs = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const dir = join(ws.cwd, `clone-${i}`);
        await mkdir(dir);
        await writeFile(join(dir, 'ports.json'), await readFile(join(ws.cwd, 'ports.json')));
        return dir;
      }),
    );
    const results = await Promise.all(dirs.map((cwd) => runCli(['assign', '--project', 'somabrain', '--json'], { cwd, stateDir: ws.stateDir }, { timeoutMs: 30_000 })));
    const all = results.flatMap((r) => Object.values(parseAssign(r).ports));
    expect(all).toHaveLength(8 * 9);
    expect(new Set(all).size).toBe(all.length);
    for (const port of all) expect(inRange(port, ws.ranges.somabrain)).toBe(true);
    const registry = JSON.parse(await readFile(join(ws.stateDir, 'registry.json'), 'utf8')) as { entries: unknown[] };
    expect(registry.entries).toHaveLength(8);
  });
});

describe('soma-ports check, show, release', () => {
  it('check --expect free fails on a listening port naming its holder; --expect listening fails on free ones', async () => {
    const ws = await workspace();
    const assigned = parseAssign(await runCli(['assign', '--project', 'somafractalmemory', '--json'], ws));
    expect((await runCli(['check', '--expect', 'free'], ws)).code).toBe(0);

    const api = assigned.ports.API_PORT as number;
    await listen(api, '::1');
    const free = await runCli(['check', '--expect', 'free'], ws);
    expect(free.code).toBe(1);
    expect(free.stdout).toContain(`in use by pid ${process.pid}`);

    const listening = await runCli(['check', '--expect', 'listening', '--json'], ws);
    expect(listening.code).toBe(1);
    const report = JSON.parse(listening.stdout) as { rows: Array<{ key: string; ok: boolean; state: string }> };
    expect(report.rows.find((r) => r.key === 'API_PORT')).toMatchObject({ ok: true, state: 'listening' });
    expect(report.rows.filter((r) => !r.ok).map((r) => r.key).sort()).toEqual(['POSTGRES_HOST_PORT', 'QDRANT_HOST_PORT', 'REDIS_HOST_PORT']);
  });

  it('check lists a conflict with another project and exits 1', async () => {
    const ws = await workspace({ sharedRange: true });
    await mkdir(join(ws.cwd, 'sfm'));
    await writeFile(join(ws.cwd, 'sfm', 'ports.json'), await readFile(join(ws.cwd, 'ports.json')));
    const brain = parseAssign(await runCli(['assign', '--project', 'somabrain', '--json'], ws));
    // Someone hand-edits SFM's .env onto somabrain's Postgres port.
    await writeFile(join(ws.cwd, 'sfm', '.env'), `API_PORT=${ws.base + 20}\nPOSTGRES_HOST_PORT=${brain.ports.POSTGRES_HOST_PORT}\n`);
    const result = await runCli(['check'], { ...ws, cwd: join(ws.cwd, 'sfm') });
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`conflict: ${brain.ports.POSTGRES_HOST_PORT} (POSTGRES_HOST_PORT) is also registered to somabrain`);
  });

  it('show prints the plan and the assignments; release frees a project', async () => {
    const ws = await workspace();
    parseAssign(await runCli(['assign', '--project', 'somabrain', '--json'], ws));
    const shown = await runCli(['show', '--json'], ws);
    expect(shown.code).toBe(0);
    const data = JSON.parse(shown.stdout) as { plan: { projects: Record<string, { range: number[] }> }; registry: { entries: Array<{ project: string }> } };
    expect(data.plan.projects.somabrain?.range).toEqual(ws.ranges.somabrain);
    expect(data.registry.entries.map((e) => e.project)).toEqual(['somabrain']);
    const table = await runCli(['show'], ws);
    expect(table.stdout).toContain('SOMABRAIN_HOST_PORT');
    expect(table.stdout).toContain('9595'); // the note on SFM's API port

    const released = await runCli(['release', '--project', 'somabrain'], ws);
    expect(released.code).toBe(0);
    expect(released.stdout).toContain('released somabrain');
    const after = JSON.parse(await readFile(join(ws.stateDir, 'registry.json'), 'utf8')) as { entries: unknown[] };
    expect(after.entries).toEqual([]);
  });
});
