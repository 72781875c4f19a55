// `soma-verify local`: the zero-config topology, moved by a hand-written `.env` and by the process
// environment. The HTTP services are SomaStack doubles; Postgres (127.0.0.1:5432) and Redis
// (127.0.0.1:6379) are the real local servers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusedPort } from '../support/faults.js';
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

let brain: Double<SomabrainState>, sfm: Double<SfmState>, gw: Double<GatewayState>;
let dead: number;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  [brain, sfm, gw] = await Promise.all([
    somabrainDouble({ generation: 'gen1' }),
    sfmDouble({ generation: 'gen1' }),
    gatewayDouble({ generation: 'gen1' }),
  ]);
  dead = await refusedPort();
});
afterAll(async () => {
  await Promise.all([brain, sfm, gw].map((d) => d?.close()));
  for (const clean of cleanups) await clean();
});

async function folder(files: Record<string, string>): Promise<string> {
  const p = await tempProject(files);
  cleanups.push(p.remove);
  return p.dir;
}
const local = (dir: string, args: string[] = [], env: Record<string, string> = {}) =>
  runCli(['local', ...args], { cwd: dir, env, timeoutMs: 20_000 });

/** A `.env` as a person would write it for a stack running beside this machine's Postgres and Redis. */
const dotenv = () =>
  [
    '# written by hand',
    `SOMABRAIN_HOST_PORT=${brain.port}`,
    `API_PORT=${sfm.port}`,
    `export GATEWAY_PORT=${gw.port}`,
    '',
    '# compose names: reached from the host at the published ports',
    "SOMABRAIN_POSTGRES_DSN='postgresql://postgres@somabrain_postgres:5432/postgres'",
    'POSTGRES_HOST_PORT=5432',
    'REDIS_HOST_PORT=6379',
    `KAFKA_BROKER_HOST_PORT=${dead}`,
    `OPA_HOST_PORT=${dead}`,
    `QDRANT_HOST_PORT=${dead}`,
    '',
  ].join('\n');

describe('soma-verify local', () => {
  it('in an empty folder checks the documented ports and names each refused one', async () => {
    const dir = await folder({});
    const r = await local(dir);
    expect(r.code).toBe(1);
    for (const port of [30101, 9595, 20016, 30106, 30100, 30102]) {
      expect(r.stdout).toContain(`connection refused on 127.0.0.1:${port}`);
    }
    expect(r.stdout).toMatch(/FAIL local: 10 checks, 0 passed, 0 warned, 8 failed, 2 skipped/);
  });

  it('follows a hand-written .env: doubles for the services, the real Postgres and Redis', async () => {
    const dir = await folder({ '.env': dotenv() });
    const r = await local(dir, ['--format', 'json']);
    const report = reportOf(r);
    for (const id of ['somabrain.health', 'somabrain.metrics', 'sfm.health', 'sfm.metrics', 'gateway.health']) {
      expect(checkOf(report, id).status, `${id}: ${checkOf(report, id).message}`).toBe('pass');
    }
    expect(checkOf(report, 'somabrain.health').target).toBe(`http://127.0.0.1:${brain.port}`);
    expect(checkOf(report, 'sfm.health').target).toBe(`http://127.0.0.1:${sfm.port}`);
    expect(checkOf(report, 'gateway.health').target).toBe(`http://127.0.0.1:${gw.port}`);
    // The container host somabrain_postgres:5432 becomes 127.0.0.1 on POSTGRES_HOST_PORT.
    expect(checkOf(report, 'postgres')).toMatchObject({ status: 'pass', target: 'postgresql://postgres@127.0.0.1:5432/postgres' });
    expect(checkOf(report, 'redis')).toMatchObject({ status: 'pass', target: 'redis://127.0.0.1:6379/0' });
    expect(checkOf(report, 'kafka').message).toBe(`connection refused on 127.0.0.1:${dead}`);
    expect(r.code).toBe(1);

    const withoutAbsent = await local(dir, ['--format', 'json', '--skip', 'kafka,qdrant,opa']);
    expect(reportOf(withoutAbsent).summary).toEqual({ pass: 7, warn: 0, fail: 0, skip: 0 });
    expect(withoutAbsent.code).toBe(0);
  });

  it('--verbose says where each address came from', async () => {
    const dir = await folder({ '.env': dotenv() });
    const r = await local(dir, ['--verbose', '--only', 'postgres']);
    expect(r.stderr).toContain('postgres: SOMABRAIN_POSTGRES_DSN (container host somabrain_postgres reached at 127.0.0.1:5432)');
    expect(r.stderr).toContain(`somabrain: SOMABRAIN_HOST_PORT (${brain.port})`);
    expect(r.code).toBe(0);
  });

  it('the process environment overrides .env', async () => {
    const dir = await folder({ '.env': `SOMABRAIN_HOST_PORT=${dead}\n` });
    const fromFile = await local(dir, ['--format', 'json', '--only', 'somabrain.health']);
    expect(checkOf(reportOf(fromFile), 'somabrain.health').message).toBe(`connection refused on 127.0.0.1:${dead}`);
    const overridden = await local(dir, ['--format', 'json', '--only', 'somabrain.health'], { SOMABRAIN_HOST_PORT: String(brain.port) });
    expect(checkOf(reportOf(overridden), 'somabrain.health')).toMatchObject({
      status: 'pass',
      target: `http://127.0.0.1:${brain.port}`,
    });
    expect(overridden.code).toBe(0);
    const said = await local(dir, ['--verbose', '--only', 'somabrain.health'], { SOMABRAIN_HOST_PORT: String(brain.port) });
    expect(said.stderr).toContain(`somabrain: SOMABRAIN_HOST_PORT from the environment (${brain.port})`);
  });

  it('resolves ${VAR} references in .env as docker compose does', async () => {
    const dir = await folder({ '.env': `BRAIN=${brain.port}\nSOMABRAIN_HOST_PORT=\${BRAIN}\nPG_USER=postgres\nSOMABRAIN_POSTGRES_DSN="postgresql://\${PG_USER}@somabrain_postgres:5432/\${PG_DB:-postgres}"\nPOSTGRES_HOST_PORT=5432\n` });
    const r = await local(dir, ['--format', 'json', '--only', 'somabrain.health,postgres']);
    const report = reportOf(r);
    expect(checkOf(report, 'somabrain.health')).toMatchObject({ status: 'pass', target: `http://127.0.0.1:${brain.port}` });
    expect(checkOf(report, 'postgres')).toMatchObject({ status: 'pass', target: 'postgresql://postgres@127.0.0.1:5432/postgres' });
  });

  it('a malformed .env exits 2 naming the line', async () => {
    const dir = await folder({ '.env': `SOMABRAIN_HOST_PORT=${brain.port}\n# fine\nthis line is not an assignment\n` });
    const r = await local(dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/\.env: line 3: /);
    expect(r.stdout).toBe('');
  });

  it('a port in .env that is not a port exits 2 naming the key', async () => {
    const dir = await folder({ '.env': 'SOMABRAIN_HOST_PORT=thirty\n' });
    const r = await local(dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/SOMABRAIN_HOST_PORT=thirty: not a port \(from .*\.env\)/);
  });
});
