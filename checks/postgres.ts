// The `postgres` check: speaks the PostgreSQL protocol through `pg` and says what is wrong.
//
// Steps, each bounded by ctx.timeoutMs and stopped by ctx.signal:
//   connect (sslmode honoured, libpq semantics) -> SELECT 1 (latency) -> server version and
//   pg_is_in_recovery() -> optional: tables exist, migrations table present, minVersion, primary.
// It only reads: catalog lookups and SELECTs on the migration tables, never a write.
//
// Failure messages name the cause: "connection refused on h:p", "authentication failed for
// user u", "database d does not exist", "not a PostgreSQL server on h:p", "no answer from h:p
// within N ms", "TLS mismatch: ...", "table sessions.events missing". The password never enters
// a message: messages are built from host, port, user and database; text quoted from the driver
// or the server is masked with every other output by the engine's redactor, which knows the DSN.
import { Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { Client, ClientConfig } from 'pg';
import { z } from 'zod';
import { defineCheck, type CheckContext, type CheckOutcome } from '../src/check.js';
import { abortable, CheckAborted } from '../src/abortable.js';
import { maskCredentials } from '../src/redact.js';
import { loadPg } from '../src/lazy-modules.js';
import { previewForeignBytes } from '../src/foreign-bytes.js';

const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
type SslMode = (typeof SSL_MODES)[number];

const options = z.object({
  dsn: z
    .string()
    // The message names what is wrong without echoing the DSN, which may hold a password.
    .superRefine((dsn, check) => {
      const problem = parseDsnOrError(dsn);
      if (problem) check.addIssue({ code: 'custom', message: problem });
    }),
  tables: z.array(z.string().min(1)).optional(),
  migrations: z.union([z.boolean(), z.enum(['alembic', 'django'])]).optional(),
  minVersion: z
    .string()
    .regex(/^\d+(\.\d+)?$/, 'minVersion must look like "15" or "15.4" (major.minor)')
    .optional(),
  /** true: must be a primary (not in recovery); false: must be a standby. */
  primary: z.boolean().optional(),
}).strict();
export type PostgresOptions = z.infer<typeof options>;

/** What the check needs from a DSN, read with libpq's rules for the parts it supports. */
interface PgEndpoint {
  host: string;
  port: number;
  user: string;
  password: string | undefined;
  database: string;
  sslMode: SslMode;
  sslRootCert: string | undefined;
  sslCert: string | undefined;
  sslKey: string | undefined;
}

function parseDsnOrError(dsn: string): string | undefined {
  try {
    parseDsn(dsn);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

// Parsed here rather than handed to pg as `connectionString`: pg's parser lets the string override
// any `ssl` we pass and maps sslmode differently from libpq (no `prefer` fallback), and the
// services' own clients (psycopg, libpq) follow libpq.
function parseDsn(dsn: string): PgEndpoint {
  if (!/^postgres(ql)?:\/\//i.test(dsn)) throw new Error('dsn must start with postgres:// or postgresql://');
  let url: URL;
  try {
    url = new URL(dsn);
  } catch {
    throw new Error('dsn is not a valid URL (percent-encode special characters in the password)');
  }
  const q = url.searchParams;
  const sslMode = (q.get('sslmode') ?? 'prefer') as SslMode;
  if (!SSL_MODES.includes(sslMode)) {
    throw new Error(`dsn sslmode must be one of ${SSL_MODES.join(', ')}`);
  }
  const user = q.get('user') ?? decodeURIComponent(url.username) ?? '';
  const portText = q.get('port') ?? url.port;
  const port = portText ? Number(portText) : 5432;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error('dsn port is not a valid port');
  const password = q.get('password') ?? (url.password ? decodeURIComponent(url.password) : undefined);
  const resolvedUser = user || process.env.PGUSER || process.env.USER || 'postgres';
  return {
    // `host` in the query names a unix socket directory (libpq), e.g. ?host=/var/run/postgresql
    host: q.get('host') ?? (url.hostname.replace(/^\[|\]$/g, '') || 'localhost'),
    port,
    user: resolvedUser,
    password,
    database: q.get('dbname') ?? (decodeURIComponent(url.pathname.slice(1)) || resolvedUser),
    sslMode,
    sslRootCert: q.get('sslrootcert') ?? undefined,
    sslCert: q.get('sslcert') ?? undefined,
    sslKey: q.get('sslkey') ?? undefined,
  };
}

/** One TLS setting per connection attempt, in libpq's order for the mode (false = plain). */
function sslAttempts(ep: PgEndpoint): Array<false | ConnectionOptions> {
  const files: ConnectionOptions = {
    ...(ep.sslRootCert ? { ca: readFileSync(ep.sslRootCert) } : {}),
    ...(ep.sslCert ? { cert: readFileSync(ep.sslCert) } : {}),
    ...(ep.sslKey ? { key: readFileSync(ep.sslKey) } : {}),
  };
  const encryptOnly: ConnectionOptions = { ...files, rejectUnauthorized: false };
  switch (ep.sslMode) {
    case 'disable':
      return [false];
    case 'allow':
      return [false, encryptOnly];
    case 'prefer':
      return [encryptOnly, false];
    case 'require':
      // libpq: with a root certificate, require verifies the chain like verify-ca.
      return [ep.sslRootCert ? { ...files, rejectUnauthorized: true, checkServerIdentity: () => undefined } : encryptOnly];
    case 'verify-ca':
      return [{ ...files, rejectUnauthorized: true, checkServerIdentity: () => undefined }];
    case 'verify-full':
      return [{ ...files, rejectUnauthorized: true }];
  }
}

const where = (ep: PgEndpoint): string => (ep.host.startsWith('/') ? `${ep.host}/.s.PGSQL.${ep.port}` : `${ep.host}:${ep.port}`);

/** Why a connection attempt failed, with what the socket saw, to tell the causes apart. */
interface AttemptFailure {
  error: Error & { code?: string };
  /** First bytes the peer sent, if any. */
  firstBytes: Buffer | undefined;
  /** The TCP connection was still being established. */
  tcpPending: boolean;
  ssl: boolean;
}

type Connected = { client: Client; socket: Socket; ssl: boolean };

// Bytes a PostgreSQL server may send first: the answer to SSLRequest ('S'/'N'), an
// authentication request ('R'), an error ('E') or NegotiateProtocolVersion ('v').
const PG_FIRST_BYTES = new Set(['S', 'N', 'R', 'E', 'v'].map((c) => c.charCodeAt(0)));

async function connectOnce(
  pg: typeof import('pg'),
  ep: PgEndpoint,
  ssl: false | ConnectionOptions,
  ctx: CheckContext,
): Promise<Connected | AttemptFailure> {
  const socket = new Socket();
  let firstBytes: Buffer | undefined;
  socket.once('data', (chunk: Buffer) => (firstBytes = chunk));
  const budget = Math.max(1, Math.floor(ctx.timeoutMs));
  const config: ClientConfig = {
    host: ep.host,
    port: ep.port,
    user: ep.user,
    password: ep.password,
    database: ep.database,
    ssl: ssl === false ? false : { ...ssl, ...(isIp(ep.host) ? {} : { servername: ep.host }) },
    // Our own socket, so we can see the peer's first bytes and destroy it on abort.
    stream: () => socket,
    connectionTimeoutMillis: budget,
    statement_timeout: budget,
    query_timeout: budget,
    application_name: 'soma-verify',
  };
  const client = new pg.Client(config);
  // After connect, a dying connection is reported as an 'error' event; the pending query
  // rejects with it too, so the event itself carries nothing we would miss.
  client.on('error', () => {});
  try {
    await abortable(client.connect(), ctx.signal, { onAbort: () => socket.destroy() });
    return { client, socket, ssl: ssl !== false };
  } catch (error) {
    socket.destroy();
    return {
      error: error as AttemptFailure['error'],
      firstBytes,
      tcpPending: socket.connecting,
      ssl: ssl !== false,
    };
  }
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

/** A one-line cause for a failed connection attempt. */
function connectFailureMessage(f: AttemptFailure, ep: PgEndpoint, ctx: CheckContext): string {
  const at = where(ep);
  const { error, firstBytes } = f;
  const code = error.code;
  if (code === 'ECONNREFUSED') return `connection refused on ${at}`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot resolve host ${ep.host}`;
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return `${at} is unreachable (${code})`;
  if (code === 'ENOENT' && ep.host.startsWith('/')) return `no PostgreSQL socket at ${at}`;
  if (firstBytes && firstBytes.length > 0 && !PG_FIRST_BYTES.has(firstBytes[0]!)) {
    return `not a PostgreSQL server on ${at} (it answered "${previewForeignBytes(firstBytes)}")`;
  }
  const timedOut =
    error instanceof CheckAborted || /timeout/i.test(error.message) || ctx.signal.aborted;
  if (timedOut) {
    if (f.tcpPending) return `TCP connect to ${at} timed out after ${ctx.timeoutMs} ms`;
    if (!firstBytes) return `no answer from ${at} within ${ctx.timeoutMs} ms`;
    return `${at} did not complete the PostgreSQL handshake within ${ctx.timeoutMs} ms`;
  }
  if (error.message === 'The server does not support SSL connections') {
    return `TLS mismatch: sslmode=${ep.sslMode} requires TLS but ${at} does not support SSL`;
  }
  if (code === '28000' && /no encryption|SSL off/i.test(error.message)) {
    return `TLS mismatch: ${at} accepts user ${ep.user} only over SSL, but sslmode=${ep.sslMode} (use sslmode=require or stronger)`;
  }
  if (code === '28P01') return `authentication failed for user ${ep.user}`;
  if (code === '28000') return `authentication failed for user ${ep.user}: ${error.message}`;
  if (code === '3D000') return `database ${ep.database} does not exist on ${at}`;
  if (code === '57P03') return `${at} is not accepting connections: ${error.message}`;
  if (code === '53300') return `${at} has no free connection slots: ${error.message}`;
  if (/password must be a string|SASL|SCRAM/i.test(error.message) && ep.password === undefined) {
    return `authentication failed for user ${ep.user}: the server asks for a password and the dsn has none`;
  }
  if (code && /CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO|VERIFY/i.test(code)) {
    return `TLS handshake with ${at} failed (sslmode=${ep.sslMode}): ${error.message} (${code})`;
  }
  if (code === 'ECONNRESET' || /terminated unexpectedly/i.test(error.message)) {
    return firstBytes
      ? `${at} closed the connection during the PostgreSQL handshake`
      : `${at} closed the connection without answering: not a PostgreSQL server?`;
  }
  const sqlstate = code && /^[0-9A-Z]{5}$/.test(code) ? ` (SQLSTATE ${code})` : code ? ` (${code})` : '';
  return `cannot connect to ${at}: ${error.message}${sqlstate}`;
}

function queryFailureMessage(
  error: Error & { code?: string },
  what: string,
  ep: PgEndpoint,
  ctx: CheckContext,
): string {
  const at = where(ep);
  if (error instanceof CheckAborted || ctx.signal.aborted || /Query read timeout/i.test(error.message)) {
    return `no answer from ${at} to ${what} within ${ctx.timeoutMs} ms`;
  }
  if (error.code === '57014') return `${what} on ${at} cancelled by statement_timeout (${ctx.timeoutMs} ms)`;
  if (error.code === '42501') return `permission denied for user ${ep.user} (${what}): ${error.message}`;
  if (/terminated/i.test(error.message)) return `connection to ${at} lost during ${what}`;
  const sqlstate = error.code ? ` (SQLSTATE ${error.code})` : '';
  return `${what} failed on ${at}: ${error.message}${sqlstate}`;
}

/** [major, minor] of the server, from server_version_num (e.g. 150020 -> [15, 20]). */
function versionParts(versionNum: number): number[] {
  if (versionNum >= 100000) return [Math.floor(versionNum / 10000), versionNum % 10000];
  // Before 10 the major version had two parts: 90624 is 9.6.24.
  return [Math.floor(versionNum / 10000), Math.floor(versionNum / 100) % 100, versionNum % 100];
}

function versionBelow(actual: number[], wanted: number[]): boolean {
  for (let i = 0; i < Math.max(actual.length, wanted.length); i++) {
    const a = actual[i] ?? 0;
    const w = wanted[i] ?? 0;
    if (a !== w) return a < w;
  }
  return false;
}

const RELKIND_NAMES: Record<string, string> = {
  i: 'an index',
  I: 'a partitioned index',
  S: 'a sequence',
  c: 'a composite type',
  t: 'a TOAST table',
};

export default defineCheck<PostgresOptions>({
  kind: 'postgres',
  prepare: loadPg,
  options,
  target: (o) => maskCredentials(o.dsn),
  async run(o, ctx): Promise<CheckOutcome> {
    const ep = parseDsn(o.dsn); // the schema already proved it parses
    const at = where(ep);

    let attempts: Array<false | ConnectionOptions>;
    try {
      attempts = sslAttempts(ep);
    } catch (err) {
      return { status: 'fail', message: `cannot read TLS file: ${(err as Error).message}` };
    }

    const pg = await loadPg();
    let connected: Connected | undefined;
    for (const [i, ssl] of attempts.entries()) {
      const result = await connectOnce(pg, ep, ssl, ctx);
      if ('client' in result) {
        connected = result;
        break;
      }
      const isLast = i === attempts.length - 1;
      // prefer: the server said it has no SSL; allow: pg_hba wants SSL. Both retry the other way.
      const retryOtherWay =
        !isLast &&
        !ctx.signal.aborted &&
        (result.error.message === 'The server does not support SSL connections' ||
          (result.error.code === '28000' && /no encryption|SSL off/i.test(result.error.message)));
      if (!retryOtherWay) {
        return {
          status: 'fail',
          message: connectFailureMessage(result, ep, ctx),
          details: { host: ep.host, port: ep.port, user: ep.user, database: ep.database, sslMode: ep.sslMode },
        };
      }
    }
    if (!connected) return { status: 'fail', message: `cannot connect to ${at}` }; // unreachable: the loop returns

    const { client, socket } = connected;
    const details: Record<string, unknown> = {
      host: ep.host,
      port: ep.port,
      user: ep.user,
      database: ep.database,
      sslMode: ep.sslMode,
      tls: connected.ssl,
    };
    const query = async <Row extends Record<string, unknown>>(what: string, sql: string, params: unknown[] = []) =>
      (await abortable(client.query<Row>(sql, params), ctx.signal, { onAbort: () => socket.destroy() })).rows;

    let step = 'SELECT 1';
    try {
      const started = performance.now();
      await query('SELECT 1', 'SELECT 1');
      details.latencyMs = Math.round((performance.now() - started) * 100) / 100;

      // current_setting('server_version') is what SHOW server_version prints; one round trip.
      step = 'the server version query';
      const [info] = await query<{ version: string; version_num: string; in_recovery: boolean }>(
        step,
        `SELECT current_setting('server_version') AS version,
                current_setting('server_version_num') AS version_num,
                pg_is_in_recovery() AS in_recovery`,
      );
      details.serverVersion = info!.version;
      details.serverVersionNum = Number(info!.version_num);
      details.inRecovery = info!.in_recovery;

      const problems: string[] = [];

      if (o.minVersion) {
        const wanted = o.minVersion.split('.').map(Number);
        const actual = versionParts(Number(info!.version_num));
        if (versionBelow(actual, wanted)) {
          problems.push(`server version ${info!.version.split(" ")[0]} is below the required ${o.minVersion}`);
        }
      }
      if (o.primary === true && info!.in_recovery) {
        problems.push(`${at} is a standby (in recovery), expected a primary`);
      }
      if (o.primary === false && !info!.in_recovery) {
        problems.push(`${at} is a primary, expected a standby (in recovery)`);
      }

      if (o.tables?.length) {
        step = 'the table lookup';
        // to_regclass reads the catalog only and follows SQL's rules for quoting and search_path.
        const rows = await query<{ name: string; relkind: string | null }>(
          step,
          `SELECT t.name, c.relkind::text AS relkind
             FROM unnest($1::text[]) WITH ORDINALITY AS t(name, n)
             LEFT JOIN pg_class c ON c.oid = to_regclass(t.name)
            ORDER BY t.n`,
          [o.tables],
        );
        const missing = rows.filter((r) => r.relkind === null).map((r) => r.name);
        const notTables = rows.filter((r) => r.relkind !== null && RELKIND_NAMES[r.relkind]);
        details.tablesFound = rows.length - missing.length - notTables.length;
        if (missing.length) details.tablesMissing = missing;
        if (missing.length === 1) problems.push(`table ${missing[0]} missing`);
        if (missing.length > 1) problems.push(`tables ${missing.join(', ')} missing`);
        for (const r of notTables) problems.push(`${r.name} is ${RELKIND_NAMES[r.relkind!]}, not a table`);
      }

      if (o.migrations) {
        step = 'the migrations lookup';
        const [present] = await query<{ alembic: boolean; django: boolean }>(
          step,
          `SELECT to_regclass('alembic_version') IS NOT NULL AS alembic,
                  to_regclass('django_migrations') IS NOT NULL AS django`,
        );
        const wantAlembic = o.migrations === true || o.migrations === 'alembic';
        const wantDjango = o.migrations === true || o.migrations === 'django';
        let found = false;
        if (wantAlembic && present!.alembic) {
          step = 'SELECT version_num FROM alembic_version';
          const heads = await query<{ version_num: string }>(step, 'SELECT version_num FROM alembic_version');
          details.migrations = 'alembic';
          details.alembicHeads = heads.map((h) => h.version_num);
          if (heads.length === 0) problems.push('alembic_version is empty: no migration applied');
          found = true;
        }
        if (wantDjango && present!.django) {
          step = 'SELECT count(*) FROM django_migrations';
          const [row] = await query<{ count: string; last_applied: Date | null }>(
            step,
            'SELECT count(*) AS count, max(applied) AS last_applied FROM django_migrations',
          );
          details.migrations = details.migrations ? 'alembic+django' : 'django';
          details.djangoMigrations = Number(row!.count);
          if (row!.last_applied) details.djangoLastApplied = new Date(row!.last_applied).toISOString();
          if (Number(row!.count) === 0) problems.push('django_migrations is empty: no migration applied');
          found = true;
        }
        if (!found) {
          const which =
            o.migrations === 'alembic'
              ? 'table alembic_version'
              : o.migrations === 'django'
                ? 'table django_migrations'
                : 'tables alembic_version and django_migrations';
          problems.push(`migrations not applied: ${which} missing in database ${ep.database}`);
        }
      }

      if (problems.length) return { status: 'fail', message: problems.join('; '), details };
      return {
        status: 'pass',
        message: `PostgreSQL ${info!.version.split(' ')[0]} on ${at} answers (${details.latencyMs} ms)${info!.in_recovery ? ', standby' : ''}`,
        details,
      };
    } catch (error) {
      return {
        status: 'fail',
        message: queryFailureMessage(error as Error & { code?: string }, step, ep, ctx),
        details,
      };
    } finally {
      await closeClient(client, socket);
    }
  },
});

/** End politely, but never wait on a peer that stopped answering: destroy after a short grace. */
async function closeClient(client: Client, socket: Socket): Promise<void> {
  if (socket.destroyed) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    client.end().catch(() => {}),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, 250))),
  ]);
  clearTimeout(timer);
  socket.destroy();
}
