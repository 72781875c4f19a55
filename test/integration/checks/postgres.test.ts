// The `postgres` check against real PostgreSQL servers (the local one or a container, and a
// password-protected cluster of our own) and against misbehaving peers. Each run goes through
// the compiled check in a child process, which must exit by itself (no open handle).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCheck, type ChildOutcome, expectFailure as expectFailureWithin, expectNoSecret } from '../../support/run-check.js';
import { refusedPort, silentServer, type TcpPeer } from '../../support/faults.js';
import { countingProxy } from '../../support/counting-proxy.js';
import {
  startPostgresAuthPeer,
  startPostgresPeer,
  type PostgresAuthPeer,
  type PostgresPeer,
} from '../../support/peers/postgres.js';

const TIMEOUT_MS = 3000;
/** Start-up of the child process and the driver import, on a busy 2-core machine. */

let peer: PostgresPeer;
let authPeer: PostgresAuthPeer;
const suffix = randomBytes(4).toString('hex');
const db = { alembic: `sv_pg_${suffix}_alembic`, django: `sv_pg_${suffix}_django`, empty: `sv_pg_${suffix}_empty` };

const check = (options: Record<string, unknown>, timeoutMs = TIMEOUT_MS) => runCheck('postgres', options, { timeoutMs });

const expectFailure = (result: ChildOutcome, cause: RegExp, timeoutMs = TIMEOUT_MS) => expectFailureWithin(result, cause, timeoutMs);

/** Nothing on the child's stderr: no driver warning, no unhandled error. */
const expectQuietStderr = (result: ChildOutcome) => expect(result.stderr.trim()).toBe('');

beforeAll(async () => {
  [peer, authPeer] = await Promise.all([startPostgresPeer(), startPostgresAuthPeer()]);
  // Throwaway databases, created here and dropped in afterAll: the check itself never writes.
  const admin = await peer.admin();
  try {
    for (const name of Object.values(db)) await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const alembic = await peer.admin(db.alembic);
  try {
    await alembic.query(`CREATE SCHEMA sessions;
      CREATE TABLE sessions.events (id bigserial PRIMARY KEY, payload jsonb);
      CREATE VIEW sessions.recent AS SELECT * FROM sessions.events;
      CREATE TABLE alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY);
      INSERT INTO alembic_version VALUES ('7f3c2a1b9d4e');`);
  } finally {
    await alembic.end();
  }
  const django = await peer.admin(db.django);
  try {
    await django.query(`CREATE TABLE django_migrations (id serial PRIMARY KEY, app varchar(255), name varchar(255), applied timestamptz);
      INSERT INTO django_migrations (app, name, applied) VALUES
        ('contenttypes', '0001_initial', now()), ('auth', '0001_initial', now()), ('memory', '0001_initial', now());`);
  } finally {
    await django.end();
  }
});

afterAll(async () => {
  if (peer) {
    const admin = await peer.admin();
    try {
      for (const name of Object.values(db)) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } finally {
      await admin.end();
    }
    await peer.close();
  }
  await authPeer?.close();
});

describe('postgres check against a real server', () => {
  it('passes and reports server version, latency and recovery state', async () => {
    const result = await check({ dsn: peer.dsn() });
    expect(result.status, result.message).toBe('pass');
    expect(result.details?.serverVersion).toMatch(/^\d+\.\d+/);
    expect(result.details?.serverVersionNum).toBeGreaterThan(90000);
    expect(typeof result.details?.latencyMs).toBe('number');
    expect(result.details?.inRecovery).toBe(false);
    expect(result.message).toMatch(/^PostgreSQL \d+\.\d+ on /);
  });

  it('falls back to plain text under the default sslmode=prefer when the server has no SSL', async () => {
    const ssl = await peer.admin().then(async (c) => {
      const { rows } = await c.query<{ ssl: string }>('SHOW ssl');
      await c.end();
      return rows[0]!.ssl;
    });
    const result = await check({ dsn: peer.dsn() });
    expect(result.status, result.message).toBe('pass');
    expect(result.details?.sslMode).toBe('prefer');
    expect(result.details?.tls).toBe(ssl === 'on');
  });

  it('passes when a schema-qualified table exists (sessions.events)', async () => {
    const result = await check({ dsn: peer.dsn(db.alembic), tables: ['sessions.events', 'sessions.recent'] });
    expect(result.status, result.message).toBe('pass');
    expect(result.details?.tablesFound).toBe(2);
  });

  // libpq's options and target_session_attrs change what the services' own sessions see: the
  // check's session must see the same.
  it("applies the DSN's options (search_path) as libpq does: a table found through it exists", async () => {
    const bare = await check({ dsn: peer.dsn(db.alembic), tables: ['events'] });
    expect(bare.status).toBe('fail');
    const result = await check({ dsn: `${peer.dsn(db.alembic)}?options=${encodeURIComponent('-c search_path=sessions')}`, tables: ['events'] });
    expect(result.status, result.message).toBe('pass');
  });

  it("fails target_session_attrs=read-only (or standby) on a read-write primary; read-write and primary pass", async () => {
    for (const attrs of ['read-only', 'standby']) {
      const result = await check({ dsn: `${peer.dsn()}?target_session_attrs=${attrs}` });
      expect(result.status, attrs).toBe('fail');
      expect(result.message).toMatch(new RegExp(`\\(target_session_attrs=${attrs}\\)`));
    }
    for (const attrs of ['read-write', 'primary', 'any']) expect((await check({ dsn: `${peer.dsn()}?target_session_attrs=${attrs}` })).status, attrs).toBe('pass');
  });

  it('fails naming the missing table', async () => {
    const result = await check({ dsn: peer.dsn(db.empty), tables: ['sessions.events'] });
    expectFailure(result, /^table sessions\.events missing$/);
    expect(result.details?.tablesMissing).toEqual(['sessions.events']);
  });

  it('fails naming every missing table when several are missing', async () => {
    const result = await check({ dsn: peer.dsn(db.alembic), tables: ['sessions.events', 'public.nope', 'other.gone'] });
    expectFailure(result, /tables public\.nope, other\.gone missing/);
  });

  it('fails when a named relation is an index, not a table', async () => {
    const result = await check({ dsn: peer.dsn(db.alembic), tables: ['sessions.events_pkey'] });
    expectFailure(result, /sessions\.events_pkey is an index, not a table/);
  });

  it('passes migrations: true on an alembic database and reports its head', async () => {
    const result = await check({ dsn: peer.dsn(db.alembic), migrations: true });
    expect(result.status, result.message).toBe('pass');
    expect(result.details?.migrations).toBe('alembic');
    expect(result.details?.alembicHeads).toEqual(['7f3c2a1b9d4e']);
  });

  it('passes migrations: django and reports the count of applied migrations', async () => {
    const result = await check({ dsn: peer.dsn(db.django), migrations: 'django' });
    expect(result.status, result.message).toBe('pass');
    expect(result.details?.migrations).toBe('django');
    expect(result.details?.djangoMigrations).toBe(3);
  });

  it('fails migrations: true when neither alembic_version nor django_migrations exists', async () => {
    const result = await check({ dsn: peer.dsn(db.empty), migrations: true });
    expectFailure(result, /migrations not applied: tables alembic_version and django_migrations missing/);
  });

  it('fails migrations: django on a database migrated by alembic', async () => {
    const result = await check({ dsn: peer.dsn(db.alembic), migrations: 'django' });
    expectFailure(result, /table django_migrations missing/);
  });

  it('passes primary: true on a primary', async () => {
    const result = await check({ dsn: peer.dsn(), primary: true });
    expect(result.status, result.message).toBe('pass');
    expect(result.details?.inRecovery).toBe(false);
  });

  it('fails primary: false (a standby is expected) on a primary, naming the actual role', async () => {
    const result = await check({ dsn: peer.dsn(), primary: false });
    expectFailure(result, /is a primary, expected a standby/);
  });

  it('passes a minVersion the server meets', async () => {
    const result = await check({ dsn: peer.dsn(), minVersion: '9.6' });
    expect(result.status, result.message).toBe('pass');
  });

  it('fails a minVersion above the server version, naming both', async () => {
    const result = await check({ dsn: peer.dsn(), minVersion: '99.1' });
    expectFailure(result, /server version \d+\.\d+ is below the required 99\.1/);
  });

  it('fails naming a database that does not exist', async () => {
    const result = await check({ dsn: peer.dsn(`sv_pg_${suffix}_absent`) });
    expectFailure(result, new RegExp(`database sv_pg_${suffix}_absent does not exist`));
  });

  it('fails with authentication failed for a role that does not exist', async () => {
    const result = await check({ dsn: peer.dsn(undefined, { user: 'sv_nobody' }) });
    expectFailure(result, /authentication failed for user sv_nobody/);
  });

  // libpq goes on in plain text on the connection where the server answered "N" to SSLRequest;
  // a second connection would cost a round trip more over a network.
  it('makes one connection under sslmode=prefer when the server has no SSL', async () => {
    const proxy = await countingProxy(peer.host, peer.port);
    try {
      const result = await check({ dsn: peer.dsn(undefined, { port: proxy.port }) });
      expect(result.status, result.message).toBe('pass');
      expect(result.details?.tls).toBe(false);
      expect(proxy.accepted()).toBe(1);
    } finally {
      await proxy.close();
    }
  });

  // Neither the local server nor the postgres image enables SSL.
  it('fails sslmode=require against a server without SSL with a TLS mismatch message', async () => {
    const result = await check({ dsn: peer.dsn(undefined, { query: 'sslmode=require' }) });
    expectFailure(result, /TLS mismatch: sslmode=require requires TLS but .+ does not support SSL/);
  });
});

describe('postgres check against a password-protected, TLS-only server (scram-sha-256, hostssl)', () => {
  it('passes with the right password, which never appears in the output', async () => {
    const result = await check({ dsn: authPeer.dsn() });
    expect(result.status, result.message).toBe('pass');
    expect(result.details?.tls).toBe(true);
    expectNoSecret(result.output, authPeer.password);
    expect(result.target).toContain(':***@');
  });

  it.each([
    { mode: 'prefer', connections: 1, how: 'on one connection' },
    { mode: 'allow', connections: 2, how: 'on a second connection, as libpq does' },
  ])('passes under sslmode=$mode over TLS $how', async ({ mode, connections }) => {
    const proxy = await countingProxy(authPeer.host, authPeer.port);
    try {
      const result = await check({ dsn: authPeer.dsn(undefined, { port: proxy.port, query: `sslmode=${mode}` }) });
      expect(result.status, result.message).toBe('pass');
      expect(result.details?.tls).toBe(true);
      expect(proxy.accepted()).toBe(connections);
    } finally {
      await proxy.close();
    }
  });

  it('fails with "authentication failed for user" for a wrong password and never prints it', async () => {
    const wrong = `Wrong-${randomBytes(6).toString('hex')}`;
    const result = await check({ dsn: authPeer.dsn(undefined, { password: wrong }) });
    expectFailure(result, /^authentication failed for user postgres$/);
    expectQuietStderr(result);
    expectNoSecret(result.output, wrong);
    expectNoSecret(result.output, authPeer.password);
  });

  it('fails clearly when the dsn has no password and the server asks for one', async () => {
    const result = await check({ dsn: authPeer.dsn(undefined, { password: null }) });
    expectFailure(result, /authentication failed for user postgres/);
  });

  it('fails sslmode=disable against a server that accepts only TLS with a TLS mismatch message', async () => {
    const result = await check({ dsn: authPeer.dsn(undefined, { query: 'sslmode=disable' }) });
    expectFailure(result, /^TLS mismatch: .+ accepts user postgres only over SSL, but sslmode=disable/);
    expectNoSecret(result.output, authPeer.password);
  });

  it('passes sslmode=verify-full with the server CA as sslrootcert', async () => {
    const query = `sslmode=verify-full&sslrootcert=${encodeURIComponent(authPeer.caFile)}`;
    const result = await check({ dsn: authPeer.dsn(undefined, { query }) });
    expect(result.status, result.message).toBe('pass');
    expect(result.details?.tls).toBe(true);
  });

  it('fails sslmode=verify-full without the CA, naming the certificate problem', async () => {
    const result = await check({ dsn: authPeer.dsn(undefined, { query: 'sslmode=verify-full' }) });
    expectFailure(result, /^TLS handshake with .+ failed \(sslmode=verify-full\): .*certificate/i);
    expectQuietStderr(result);
  });

  it('passes sslmode=require without the CA (encryption without verification, as libpq does)', async () => {
    const result = await check({ dsn: authPeer.dsn(undefined, { query: 'sslmode=require' }) });
    expect(result.status, result.message).toBe('pass');
    expect(result.details?.tls).toBe(true);
  });
});

describe('postgres check against faulty peers', () => {
  let silent: TcpPeer;
  let http: Server;
  let httpPort: number;

  beforeAll(async () => {
    silent = await silentServer();
    http = createServer((_req, res) => res.end('hello'));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    httpPort = (http.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await silent?.close();
    http?.closeAllConnections();
    await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()));
  });

  it('fails with "connection refused" on a port nobody listens on', async () => {
    const port = await refusedPort();
    const result = await check({ dsn: `postgres://soma:secret-pw@127.0.0.1:${port}/soma` });
    expectFailure(result, new RegExp(`^connection refused on 127\\.0\\.0\\.1:${port}$`));
    expectQuietStderr(result);
    expectNoSecret(result.output, 'secret-pw');
  });

  it('fails with "no answer" within its timeout on a port that accepts and never answers', async () => {
    const result = await check({ dsn: `postgres://soma:secret-pw@127.0.0.1:${silent.port}/soma` }, 1500);
    expectFailure(result, new RegExp(`no answer from 127\\.0\\.0\\.1:${silent.port} within 1500 ms`), 1500);
    expectQuietStderr(result);
    expectNoSecret(result.output, 'secret-pw');
  });

  it('fails with "not a PostgreSQL server" against an HTTP server (SSLRequest first, sslmode=prefer)', async () => {
    const result = await check({ dsn: `postgres://soma@127.0.0.1:${httpPort}/soma` });
    expectFailure(result, new RegExp(`not a PostgreSQL server on 127\\.0\\.0\\.1:${httpPort} \\(it answered "HTTP/1\\.1 400`));
  });

  it('fails with "not a PostgreSQL server" against an HTTP server (startup packet first, sslmode=disable)', async () => {
    const result = await check({ dsn: `postgres://soma@127.0.0.1:${httpPort}/soma?sslmode=disable` });
    expectFailure(result, new RegExp(`not a PostgreSQL server on 127\\.0\\.0\\.1:${httpPort}`));
  });

  it('rejects a dsn that is not postgres:// without echoing it', async () => {
    const result = await check({ dsn: 'mysql://soma:secret-pw@db:3306/soma' });
    expect(result.invalid).toEqual(['dsn must start with postgres:// or postgresql://']);
    expectNoSecret(result.output, 'secret-pw');
  });

  it('rejects an unknown sslmode', async () => {
    const result = await check({ dsn: 'postgresql://soma@db/soma?sslmode=maybe' });
    expect(result.invalid?.[0]).toMatch(/sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full/);
  });
});
