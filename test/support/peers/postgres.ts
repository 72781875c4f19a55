// PostgreSQL peers for the `postgres` check's tests.
//
// startPostgresPeer(): the server the suite may create throwaway databases on. A postgres
// container through testcontainers when a Docker engine answers; else the local server on
// 127.0.0.1:5432 (trust auth, superuser `postgres`).
//
// startPostgresAuthPeer(): a server that demands a SCRAM password and TLS (pg_hba `hostssl`,
// a certificate from a throwaway CA). A second container when Docker answers; else a cluster of
// our own: initdb (as the `postgres` OS user when we run as root, since PostgreSQL refuses to run
// as root), started by pg_ctl on a free loopback port, stopped and deleted by close().
//
// Either function THROWS when no peer can be had, so the test fails with the reason.
import { execFile } from 'node:child_process';
import { chmod, chown, copyFile, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import getPort from 'get-port';
import pg from 'pg';
import { announcePeer, dockerAvailable } from '../docker.js';
import { makeTestCertificates, type TestCertificates } from '../certificates.js';

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
  /**
   * A postgres:// DSN to `database` (or another), with the peer's credentials and address unless
   * overridden (`port`: a proxy on 127.0.0.1 in front of the peer).
   */
  dsn(database?: string, override?: { user?: string; password?: string | null; query?: string; port?: number }): string;
  /** A client connected as the superuser, for test setup (create/drop databases and tables). */
  admin(database?: string): Promise<pg.Client>;
  close(): Promise<void>;
}

function peerOf(
  provider: PostgresPeer['provider'],
  at: { host: string; port: number; user: string; password: string | undefined; database: string },
  close: () => Promise<void>,
  adminExtra: { ssl?: ConnectionOptions } = {},
): PostgresPeer {
  const dsn: PostgresPeer['dsn'] = (database = at.database, override = {}) => {
    const user = encodeURIComponent(override.user ?? at.user);
    const password = override.password === null ? undefined : (override.password ?? at.password);
    const auth = password === undefined ? user : `${user}:${encodeURIComponent(password)}`;
    const where = override.port === undefined ? `${at.host}:${at.port}` : `127.0.0.1:${override.port}`;
    return `postgres://${auth}@${where}/${database}${override.query ? `?${override.query}` : ''}`;
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
        ...adminExtra,
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

// Run by the image's entrypoint as the postgres user after initdb: the key must belong to the
// server's user with mode 0600, which a copy into the container cannot arrange by itself.
const CONTAINER_TLS_INIT = `#!/bin/sh
set -e
cp /certs/server.crt /certs/server.key "$PGDATA/"
chmod 600 "$PGDATA/server.key"
echo "ssl = on" >> "$PGDATA/postgresql.conf"
printf 'local all all scram-sha-256\\nhostssl all all all scram-sha-256\\n' > "$PGDATA/pg_hba.conf"
`;

async function startContainer(password: string, certs?: TestCertificates): Promise<PostgresPeer> {
  const { GenericContainer, Wait } = await import('testcontainers');
  let image = new GenericContainer(POSTGRES_IMAGE);
  if (certs) {
    image = image.withCopyContentToContainer([
      { content: await readFile(certs.certFile), target: '/certs/server.crt', mode: 0o644 },
      { content: await readFile(certs.keyFile), target: '/certs/server.key', mode: 0o644 },
      { content: CONTAINER_TLS_INIT, target: '/docker-entrypoint-initdb.d/10-tls.sh', mode: 0o755 },
    ]);
  }
  const container = await image
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
    certs ? { ssl: { ca: await readFile(certs.caFile), rejectUnauthorized: false } } : {},
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


export type PostgresAuthPeer = PostgresPeer & {
  password: string;
  /** The CA of the server's certificate: the server speaks TLS and accepts TCP clients only over it. */
  caFile: string;
};

/**
 * A password-protected server (scram-sha-256) that speaks TLS and accepts TCP clients only over
 * TLS (pg_hba `hostssl`); `password` is the superuser's.
 */
export async function startPostgresAuthPeer(): Promise<PostgresAuthPeer> {
  // A password that needs URL encoding, to prove it is neither mangled nor printed.
  const password = `Pw-${randomBytes(9).toString('base64url')}/+@`;
  const certDir = await mkdtemp(join(tmpdir(), 'soma-verify-pg-certs-'));
  try {
    const certs = await makeTestCertificates(certDir);
    const peer = (await dockerAvailable()) ? await startContainer(password, certs) : await startOwnCluster(password, certs);
    const close = async () => {
      await peer.close();
      await rm(certDir, { recursive: true, force: true });
    };
    return { ...peer, password, caFile: certs.caFile, close };
  } catch (err) {
    await rm(certDir, { recursive: true, force: true });
    throw err;
  }
}

async function binDir(): Promise<string> {
  try {
    const { stdout } = await run('which', ['initdb'], { timeout: 5000 });
    return dirname(await realpath(stdout.trim()));
  } catch (err) {
    throw new Error('no PostgreSQL peer: Docker is unavailable and initdb is not on PATH', { cause: err });
  }
}

async function startOwnCluster(password: string, certs: TestCertificates): Promise<PostgresPeer> {
  const bin = await binDir();
  const asRoot = process.getuid?.() === 0;
  // PostgreSQL refuses to run as root: run its programs as the `postgres` OS user then.
  const as = (program: string, args: string[], timeoutMs: number) =>
    asRoot
      ? run('runuser', ['-u', 'postgres', '--', join(bin, program), ...args], { timeout: timeoutMs })
      : run(join(bin, program), args, { timeout: timeoutMs });

  const dir = await mkdtemp(join(tmpdir(), 'soma-verify-pg-'));
  let owner: { uid: number; gid: number } | undefined;
  const data = join(dir, 'data');
  const pwfile = join(dir, 'pwfile');
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres'], { timeout: 5000 });
    const { stdout: gid } = await run('id', ['-g', 'postgres'], { timeout: 5000 });
    const [uid, g] = [Number(stdout.trim()), Number(gid.trim())];
    owner = { uid, gid: g };
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
    // TCP clients only over TLS, so a plain-text client meets "no encryption" (the TLS mismatch).
    await writeFile(
      join(data, 'pg_hba.conf'),
      ['local all all scram-sha-256', 'hostssl all all 127.0.0.1/32 scram-sha-256', ''].join('\n'),
    );
    // The server reads its key only when its own user owns it with mode 0600.
    for (const [from, to] of [[certs.certFile, 'server.crt'], [certs.keyFile, 'server.key']] as const) {
      await copyFile(from, join(data, to));
      await chmod(join(data, to), 0o600);
      if (owner) await chown(join(data, to), owner.uid, owner.gid);
    }
    await as(
      'pg_ctl',
      [
        '-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '30',
        '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=20 -c shared_buffers=16MB -c ssl=on`,
        'start',
      ],
      40_000,
    );
  } catch (err) {
    await stop();
    throw new Error(`no PostgreSQL auth peer: could not start an own cluster (${(err as Error).message})`, { cause: err });
  }
  const peer = peerOf('local', { host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' }, stop, {
    ssl: { ca: await readFile(certs.caFile) },
  });
  const problem = await reachable(peer);
  if (problem) {
    await stop();
    throw new Error(`no PostgreSQL auth peer: own cluster on 127.0.0.1:${port} fails (${problem})`);
  }
  announcePeer('postgres-auth', 'local', `own scram-sha-256 hostssl cluster on 127.0.0.1:${port}`);
  return peer;
}
