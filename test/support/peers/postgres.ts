// PostgreSQL peers for the `postgres` check's tests.
//
// startPostgresPeer(): the server the suite may create throwaway databases on. A postgres
// container through testcontainers when a Docker engine answers; else the local server on
// 127.0.0.1:5432 (trust auth, superuser `postgres`).
//
// startPostgresAuthPeer(): a server that demands a SCRAM password. A second container when Docker
// answers; else a cluster of our own: initdb (as the `postgres` OS user when we run as root, since
// PostgreSQL refuses to run as root) with scram-sha-256 in pg_hba.conf, started by pg_ctl on a
// free loopback port, stopped and deleted by close().
//
// Either function THROWS when no peer can be had, so the test fails with the reason.
import { execFile } from 'node:child_process';
import { chmod, chown, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import getPort from 'get-port';
import pg from 'pg';
import { announcePeer, dockerAvailable } from '../docker.js';

const run = promisify(execFile);

export const POSTGRES_IMAGE = 'postgres:16.4-alpine';

export interface PostgresPeer {
  provider: 'local' | 'testcontainers';
  host: string;
  port: number;
  /** A superuser. */
  user: string;
  password: string | undefined;
  /** The database that always exists. */
  database: string;
  /** A postgres:// DSN to `database` (or another), with the peer's credentials unless overridden. */
  dsn(database?: string, override?: { user?: string; password?: string | null; query?: string }): string;
  /** A client connected as the superuser, for test setup (create/drop databases and tables). */
  admin(database?: string): Promise<pg.Client>;
  close(): Promise<void>;
}

function peerOf(
  provider: PostgresPeer['provider'],
  at: { host: string; port: number; user: string; password: string | undefined; database: string },
  close: () => Promise<void>,
): PostgresPeer {
  const dsn: PostgresPeer['dsn'] = (database = at.database, override = {}) => {
    const user = encodeURIComponent(override.user ?? at.user);
    const password = override.password === null ? undefined : (override.password ?? at.password);
    const auth = password === undefined ? user : `${user}:${encodeURIComponent(password)}`;
    return `postgres://${auth}@${at.host}:${at.port}/${database}${override.query ? `?${override.query}` : ''}`;
  };
  return {
    provider,
    ...at,
    dsn,
    async admin(database = at.database) {
      const client = new pg.Client({
        host: at.host,
        port: at.port,
        user: at.user,
        password: at.password,
        database,
        connectionTimeoutMillis: 5000,
      });
      client.on('error', () => {});
      await client.connect();
      return client;
    },
    close,
  };
}

/** SELECT 1 within 5 s, or the reason it failed. */
async function reachable(peer: PostgresPeer): Promise<string | undefined> {
  try {
    const client = await peer.admin();
    try {
      await client.query('SELECT 1');
    } finally {
      await client.end();
    }
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

async function startContainer(password: string): Promise<PostgresPeer> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const container = await new GenericContainer(POSTGRES_IMAGE)
    .withEnvironment({ POSTGRES_PASSWORD: password, POSTGRES_HOST_AUTH_METHOD: 'scram-sha-256', POSTGRES_INITDB_ARGS: '--auth=scram-sha-256' })
    .withExposedPorts(5432)
    // The entrypoint starts a temporary server for its init scripts first: wait for the second.
    .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
    .withStartupTimeout(120_000)
    .start();
  const peer = peerOf(
    'testcontainers',
    { host: container.getHost(), port: container.getMappedPort(5432), user: 'postgres', password, database: 'postgres' },
    async () => void (await container.stop()),
  );
  announcePeer('postgres', 'testcontainers', `${POSTGRES_IMAGE} ${peer.host}:${peer.port}`);
  return peer;
}

export async function startPostgresPeer(): Promise<PostgresPeer> {
  if (await dockerAvailable()) return startContainer(randomBytes(9).toString('base64url'));
  const peer = peerOf(
    'local',
    { host: '127.0.0.1', port: 5432, user: 'postgres', password: undefined, database: 'postgres' },
    async () => {},
  );
  const problem = await reachable(peer);
  if (problem) {
    throw new Error(`no PostgreSQL peer: Docker is unavailable and 127.0.0.1:5432 fails (${problem})`);
  }
  announcePeer('postgres', 'local', '127.0.0.1:5432');
  return peer;
}

/** A password-protected server; `password` is the superuser's. */
export async function startPostgresAuthPeer(): Promise<PostgresPeer & { password: string }> {
  // A password that needs URL encoding, to prove it is neither mangled nor printed.
  const password = `Pw-${randomBytes(9).toString('base64url')}/+@`;
  if (await dockerAvailable()) return { ...(await startContainer(password)), password };
  return { ...(await startOwnCluster(password)), password };
}

async function binDir(): Promise<string> {
  try {
    const { stdout } = await run('which', ['initdb'], { timeout: 5000 });
    return dirname(await realpath(stdout.trim()));
  } catch (err) {
    throw new Error('no PostgreSQL peer: Docker is unavailable and initdb is not on PATH', { cause: err });
  }
}

async function startOwnCluster(password: string): Promise<PostgresPeer> {
  const bin = await binDir();
  const asRoot = process.getuid?.() === 0;
  // PostgreSQL refuses to run as root: run its programs as the `postgres` OS user then.
  const as = (program: string, args: string[], timeoutMs: number) =>
    asRoot
      ? run('runuser', ['-u', 'postgres', '--', join(bin, program), ...args], { timeout: timeoutMs })
      : run(join(bin, program), args, { timeout: timeoutMs });

  const dir = await mkdtemp(join(tmpdir(), 'soma-verify-pg-'));
  const data = join(dir, 'data');
  const pwfile = join(dir, 'pwfile');
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres'], { timeout: 5000 });
    const { stdout: gid } = await run('id', ['-g', 'postgres'], { timeout: 5000 });
    const [uid, g] = [Number(stdout.trim()), Number(gid.trim())];
    await chown(dir, uid, g);
    await chown(pwfile, uid, g);
  }
  await chmod(dir, 0o700);
  const port = await getPort({ host: '127.0.0.1' });
  const stop = async () => {
    await as('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '20', 'stop'], 30_000).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await as(
      'initdb',
      ['-D', data, '-U', 'postgres', `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--no-sync', '--no-instructions', '-E', 'UTF8'],
      60_000,
    );
    await writeFile(
      join(data, 'pg_hba.conf'),
      ['local all all scram-sha-256', 'host all all 127.0.0.1/32 scram-sha-256', ''].join('\n'),
    );
    await as(
      'pg_ctl',
      [
        '-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '30',
        '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=20 -c shared_buffers=16MB`,
        'start',
      ],
      40_000,
    );
  } catch (err) {
    await stop();
    throw new Error(`no PostgreSQL auth peer: could not start an own cluster (${(err as Error).message})`, { cause: err });
  }
  const peer = peerOf('local', { host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' }, stop);
  const problem = await reachable(peer);
  if (problem) {
    await stop();
    throw new Error(`no PostgreSQL auth peer: own cluster on 127.0.0.1:${port} fails (${problem})`);
  }
  announcePeer('postgres-auth', 'local', `own scram-sha-256 cluster on 127.0.0.1:${port}`);
  return peer;
}
