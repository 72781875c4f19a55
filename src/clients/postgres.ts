// The PostgreSQL client: reads a DSN with libpq's rules, negotiates SSL on its own socket as libpq
// does (sslmode=prefer takes one connection, TLS or not), speaks the protocol over that connection
// (postgres-wire.ts: startup, authentication, queries; hand-written, it says why), runs the
// read-only queries a check asks for, and returns what it found, or a one-line cause: "connection
// refused on h:p", "authentication failed for user u", "database d does not exist", "not a
// PostgreSQL server on h:p", "no answer from h:p within N ms", "TLS mismatch: ...". Every step
// is bounded by ctx.timeoutMs and stopped by ctx.signal; the bytes a peer may send are bounded too
// (a wrong-protocol peer is cut at its first answer).
// The password never enters a message: messages are built from host, port, user and database;
// text quoted from the server is masked by the engine's redactor, which knows the DSN.
import { Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { CERT_FILE_MAX_BYTES, readRegularFileSync } from '../read-file.js';
import type { CheckContext, Unanswered } from '../check.js';
import { abortable, CheckAborted } from '../abortable.js';
import { PasswordMissingError, PgConnection, type PgValue, textArray } from './postgres-wire.js';
import {
  describeNetworkError,
  ForeignProtocolError,
  guardForeignBytes,
  noAnswer,
  type ByteGuard,
  parseProblem,
  previewForeignBytes,
  socketHost,
  tlsServerName,
  unansweredFor,
} from './network.js';

export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** What the check needs from a DSN, read with libpq's rules for the parts it supports. */
export interface PgEndpoint {
  host: string;
  port: number;
  user: string;
  password: string | undefined;
  database: string;
  sslMode: SslMode;
  sslRootCert: string | undefined;
  sslCert: string | undefined;
  sslKey: string | undefined;
  /** libpq's `options` (e.g. `-c search_path=app`): sent to the server, which applies it to the session. */
  options: string | undefined;
  /** libpq's target_session_attrs: the kind of session the services' own clients insist on. */
  targetSessionAttrs: TargetSessionAttrs;
}

export const TARGET_SESSION_ATTRS = ['any', 'read-write', 'read-only', 'primary', 'standby', 'prefer-standby'] as const;
export type TargetSessionAttrs = (typeof TARGET_SESSION_ATTRS)[number];

/** Why a DSN cannot be used, without echoing it (it may hold a password); undefined when fine. */
export const dsnProblem = (dsn: string): string | undefined => parseProblem(parseDsn, dsn);

// libpq's rules, which the services' own clients (psycopg, libpq) follow.
export function parseDsn(dsn: string): PgEndpoint {
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
  const targetSessionAttrs = (q.get('target_session_attrs') ?? 'any') as TargetSessionAttrs;
  if (!TARGET_SESSION_ATTRS.includes(targetSessionAttrs)) throw new Error(`dsn target_session_attrs must be one of ${TARGET_SESSION_ATTRS.join(', ')}`);
  const user = q.get('user') ?? decodeURIComponent(url.username) ?? '';
  const portText = q.get('port') ?? url.port;
  const port = portText ? Number(portText) : 5432;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error('dsn port is not a valid port');
  // libpq's PGPASSWORD when the DSN has none (as pg read it); ~/.pgpass is not read.
  const password = q.get('password') ?? (url.password ? decodeURIComponent(url.password) : undefined) ?? process.env.PGPASSWORD;
  const resolvedUser = user || process.env.PGUSER || process.env.USER || 'postgres';
  return {
    // `host` in the query names a unix socket directory (libpq), e.g. ?host=/var/run/postgresql
    host: q.get('host') ?? (socketHost(url) || 'localhost'),
    port,
    user: resolvedUser,
    password,
    database: q.get('dbname') ?? (decodeURIComponent(url.pathname.slice(1)) || resolvedUser),
    sslMode,
    sslRootCert: q.get('sslrootcert') ?? undefined,
    sslCert: q.get('sslcert') ?? undefined,
    sslKey: q.get('sslkey') ?? undefined,
    options: q.get('options') ?? undefined,
    targetSessionAttrs,
  };
}

/** `host:port`, or the socket file of a unix socket directory. */
export const pgWhere = (ep: Pick<PgEndpoint, 'host' | 'port'>): string =>
  ep.host.startsWith('/') ? `${ep.host}/.s.PGSQL.${ep.port}` : `${ep.host}:${ep.port}`;

/** What to look up beyond the server's identity. */
export interface PostgresQueries {
  tables?: string[];
  migrations?: boolean | 'alembic' | 'django';
}

/** What the server said. A fact is missing when the client did not get that far. */
export interface PostgresFacts {
  host: string;
  port: number;
  user: string;
  database: string;
  sslMode: SslMode;
  targetSessionAttrs?: TargetSessionAttrs;
  /** The session's transaction_read_only (on for a standby, or default_transaction_read_only). */
  readOnly?: boolean;
  /** Whether the connection is encrypted (set once connected). */
  tls?: boolean;
  latencyMs?: number;
  serverVersion?: string;
  serverVersionNum?: number;
  inRecovery?: boolean;
  /** Each asked table with its pg_class relkind, null when it does not exist. */
  tables?: Array<{ name: string; relkind: string | null }>;
  migrationTables?: { alembic: boolean; django: boolean };
  alembicHeads?: string[];
  django?: { count: number; lastApplied: string | undefined };
  /**
   * The cause when a step failed; `stage` says which part of the exchange it was, `unanswered`
   * whether the server gave no answer at all (see CheckOutcome.unanswered).
   */
  failure?: { stage: 'setup' | 'connect' | 'query'; message: string; unanswered?: Unanswered };
}

/** Connect, ask the server's identity (timed: the latency), then what `queries` asks for. */
export async function queryPostgres(ep: PgEndpoint, queries: PostgresQueries, ctx: CheckContext): Promise<PostgresFacts> {
  const facts: PostgresFacts = { host: ep.host, port: ep.port, user: ep.user, database: ep.database, sslMode: ep.sslMode, targetSessionAttrs: ep.targetSessionAttrs };
  let attempts: Array<false | ConnectionOptions>;
  try {
    attempts = sslAttempts(ep);
  } catch (err) {
    return { ...facts, failure: { stage: 'setup', message: `cannot read TLS file: ${(err as Error).message}` } };
  }
  let connected: Connected | undefined;
  for (const [i, ssl] of attempts.entries()) {
    const result = await connectOnce(ep, ssl, ctx);
    if ('connection' in result) {
      connected = result;
      break;
    }
    const isLast = i === attempts.length - 1;
    // allow: pg_hba wants SSL, so try again over TLS (libpq does, on a second connection).
    const retryOverTls = !isLast && !ctx.signal.aborted && isSslRequired(result.error);
    if (!retryOverTls) return { ...facts, failure: { stage: 'connect', ...connectFailure(result, ep, ctx) } };
  }
  if (!connected) return { ...facts, failure: { stage: 'connect', message: `cannot connect to ${pgWhere(ep)}` } };

  const { connection, socket } = connected;
  facts.tls = connected.ssl;
  const query = <Row extends Record<string, PgValue>>(sql: string, params: string[] = []) =>
    abortable(connection.query<Row>(sql, params), ctx.signal, { onAbort: () => socket.destroy() });
  // The round trip that times the server also asks what it is (server_version is what
  // SHOW server_version prints): one query, one round trip, where there were two.
  let step = 'the server version query';
  try {
    const started = performance.now();
    const [info] = await query<{ version: string; version_num: string; in_recovery: boolean; read_only: string }>(
      `SELECT current_setting('server_version') AS version,
              current_setting('server_version_num') AS version_num,
              pg_is_in_recovery() AS in_recovery,
              current_setting('transaction_read_only') AS read_only`,
    );
    facts.latencyMs = performance.now() - started;
    facts.serverVersion = info!.version;
    facts.serverVersionNum = Number(info!.version_num);
    facts.inRecovery = info!.in_recovery;
    facts.readOnly = info!.read_only === 'on';

    if (queries.tables?.length) {
      step = 'the table lookup';
      // to_regclass reads the catalog only and follows SQL's rules for quoting and search_path.
      facts.tables = await query<{ name: string; relkind: string | null }>(
        `SELECT t.name, c.relkind::text AS relkind
           FROM unnest($1::text[]) WITH ORDINALITY AS t(name, n)
           LEFT JOIN pg_class c ON c.oid = to_regclass(t.name)
          ORDER BY t.n`,
        [textArray(queries.tables)],
      );
    }
    if (queries.migrations) {
      step = 'the migrations lookup';
      const [present] = await query<{ alembic: boolean; django: boolean }>(
        `SELECT to_regclass('alembic_version') IS NOT NULL AS alembic,
                to_regclass('django_migrations') IS NOT NULL AS django`,
      );
      facts.migrationTables = present!;
      if (queries.migrations !== 'django' && present!.alembic) {
        step = 'SELECT version_num FROM alembic_version';
        const heads = await query<{ version_num: string }>('SELECT version_num FROM alembic_version');
        facts.alembicHeads = heads.map((h) => h.version_num);
      }
      if (queries.migrations !== 'alembic' && present!.django) {
        step = 'SELECT count(*) FROM django_migrations';
        // Milliseconds since the epoch: an instant, where the timestamp's text would depend on the
        // session's TimeZone and DateStyle.
        const [row] = await query<{ count: string; last_applied_ms: string | null }>(
          `SELECT count(*) AS count, floor(extract(epoch FROM max(applied)) * 1000) AS last_applied_ms
             FROM django_migrations`,
        );
        facts.django = {
          count: Number(row!.count),
          lastApplied: row!.last_applied_ms === null ? undefined : new Date(Number(row!.last_applied_ms)).toISOString(),
        };
      }
    }
    return facts;
  } catch (error) {
    return { ...facts, failure: { stage: 'query', ...queryFailure(error as PgError, step, ep, ctx) } };
  } finally {
    await closeConnection(connection, socket);
  }
}

type PgError = Error & { code?: string };

// pg's wording of these answers to SSLRequest, kept since negotiateSsl reads them.
const NO_SSL = 'The server does not support SSL connections';
const NOT_SSL_ANSWER = 'There was an error establishing an SSL connection';
const isNoSsl = (error: PgError) => error.message === NO_SSL;
const isSslRequired = (error: PgError) => error.code === '28000' && /no encryption|SSL off/i.test(error.message);

/** One TLS setting per connection attempt, in libpq's order for the mode (false = plain). */
function sslAttempts(ep: PgEndpoint): Array<false | ConnectionOptions> {
  const files: ConnectionOptions = {
    ...(ep.sslRootCert ? { ca: readRegularFileSync(ep.sslRootCert, CERT_FILE_MAX_BYTES) } : {}),
    ...(ep.sslCert ? { cert: readRegularFileSync(ep.sslCert, CERT_FILE_MAX_BYTES) } : {}),
    ...(ep.sslKey ? { key: readRegularFileSync(ep.sslKey, CERT_FILE_MAX_BYTES) } : {}),
  };
  const encryptOnly: ConnectionOptions = { ...files, rejectUnauthorized: false };
  switch (ep.sslMode) {
    case 'disable':
      return [false];
    case 'allow':
      return [false, encryptOnly];
    case 'prefer':
      // Plain text on the same connection when the server has no SSL: see negotiateSsl.
      return [encryptOnly];
    case 'require':
      // libpq: with a root certificate, require verifies the chain like verify-ca.
      return [ep.sslRootCert ? { ...files, rejectUnauthorized: true, checkServerIdentity: () => undefined } : encryptOnly];
    case 'verify-ca':
      return [{ ...files, rejectUnauthorized: true, checkServerIdentity: () => undefined }];
    case 'verify-full':
      return [{ ...files, rejectUnauthorized: true }];
  }
}

/** Why a connection attempt failed, with what the socket saw, to tell the causes apart. */
interface AttemptFailure {
  error: PgError;
  /** First bytes the peer sent, if any. */
  firstBytes: Buffer | undefined;
  /** The TCP connection was still being established. */
  tcpPending: boolean;
}

/** A connection ready for queries; `socket` is what it talks over (the TLS socket when `ssl`). */
type Connected = { connection: PgConnection; socket: Socket; ssl: boolean };

// Bytes a PostgreSQL server may send first: the answer to SSLRequest ('S'/'N'), an
// authentication request ('R'), an error ('E') or NegotiateProtocolVersion ('v').
const PG_FIRST_BYTES = new Set(['S', 'N', 'R', 'E', 'v'].map((c) => c.charCodeAt(0)));
// The most a connection may carry: the answers to this client's queries are a few kilobytes.
const PG_MAX_BYTES = 8 * 1024 * 1024;
/** What a PostgreSQL server may send, watched on the TCP socket and again inside TLS. */
const PG_BYTES = {
  protocol: 'PostgreSQL',
  accepts: (chunk: Buffer, first: boolean) => !first || PG_FIRST_BYTES.has(chunk[0]!),
  maxBytes: PG_MAX_BYTES,
};

async function connectOnce(
  ep: PgEndpoint,
  ssl: false | ConnectionOptions,
  ctx: CheckContext,
): Promise<Connected | AttemptFailure> {
  const socket = new Socket();
  // Errors reach whoever waits on the socket (negotiateSsl, then the connection); none may crash
  // the process in between.
  socket.on('error', () => {});
  socket.setNoDelay(true);
  // A flooding or foreign peer is cut before the connection buffers its bytes.
  const seen = guardForeignBytes(socket, PG_BYTES);
  let tcpConnected = false;
  socket.once('connect', () => (tcpConnected = true));
  // What the connection talks over: the socket, or the TLS connection over it.
  let stream: Socket = socket;
  let seenInTls: ByteGuard | undefined;
  const budget = Math.max(1, Math.floor(ctx.timeoutMs));
  try {
    const connecting = nextOn(socket, 'connect');
    if (ep.host.startsWith('/')) socket.connect(pgWhere(ep));
    else socket.connect(ep.port, ep.host);
    await abortable(connecting, ctx.signal, { onAbort: () => socket.destroy() });
    if (ssl !== false) {
      const tls = await negotiateSsl(socket, ep, { ...ssl, ...tlsServerName(ep.host) }, ep.sslMode === 'prefer', ctx.signal);
      if (tls) {
        stream = tls;
        seenInTls = guardForeignBytes(stream, PG_BYTES);
      }
    }
    const connection = new PgConnection(stream, PG_MAX_BYTES);
    const startup = connection.startup({ user: ep.user, database: ep.database, password: ep.password, options: ep.options, statementTimeoutMs: budget });
    await abortable(startup, ctx.signal, { onAbort: () => stream.destroy() });
    return { connection, socket: stream, ssl: stream !== socket };
  } catch (error) {
    stream.destroy();
    socket.destroy();
    return {
      error: (seen.tripped ?? seenInTls?.tripped ?? error) as PgError,
      firstBytes: seen.firstBytes,
      tcpPending: !tcpConnected,
    };
  }
}

// SSLRequest: Int32 length 8, Int32 code 80877103 (1234 << 16 | 5679).
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/**
 * libpq's SSL negotiation on a connected socket: send SSLRequest, read the one-byte answer, then
 * on 'S' start TLS on this connection (resolves with the TLS socket), on 'N' go on in plain text
 * on it when `plainIfNoSsl` (sslmode=prefer: resolves with undefined) and fail otherwise.
 * One connection, as libpq: pg, the driver before the wire client, closed the connection after
 * 'N', so prefer against a server without SSL needed a second one (a round trip more across a
 * network). Bounded by `signal`; a foreign first answer trips the socket's guard.
 */
async function negotiateSsl(
  socket: Socket,
  ep: PgEndpoint,
  tls: ConnectionOptions,
  plainIfNoSsl: boolean,
  signal: AbortSignal,
): Promise<Socket | undefined> {
  const answering = nextOn<Buffer>(socket, 'data');
  socket.write(SSL_REQUEST);
  const answer = await abortable(answering, signal, { onAbort: () => socket.destroy() });
  if (answer[0] === 'N'.charCodeAt(0)) {
    if (!plainIfNoSsl) throw new Error(NO_SSL);
    // Never sent by a server, which waits for the startup message: read as the next message.
    if (answer.length > 1) socket.unshift(answer.subarray(1));
    return undefined;
  }
  if (answer[0] !== 'S'.charCodeAt(0)) throw new Error(NOT_SSL_ANSWER);
  // Bytes before the handshake are not protected by it (libpq refuses them too, CVE-2021-23222).
  if (answer.length > 1) throw new Error('received unencrypted data after SSL response');
  // `host` for the identity check when there is no servername (an IP address), as pg passed it.
  // node:tls loads only when a server answers 'S' (it costs milliseconds of every run's start otherwise).
  const secure = process.getBuiltinModule('node:tls').connect({ ...tls, socket, host: ep.host });
  secure.on('error', () => {}); // as on the socket: errors reach whoever waits on it
  await abortable(nextOn(secure, 'secureConnect'), signal, { onAbort: () => secure.destroy() });
  return secure;
}

/**
 * The first `event` on `socket`, with its first argument; rejects on 'error', or when the peer
 * closes before it. A 'data' chunk leaves the socket paused: no later byte flows past unread.
 */
function nextOn<T = void>(socket: Socket, event: 'connect' | 'secureConnect' | 'data'): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const stop = () => {
      socket.off(event, onEvent).off('error', onError).off('end', onClosed).off('close', onClosed);
    };
    const onEvent = (value: T) => {
      if (event === 'data') socket.pause();
      stop();
      resolve(value);
    };
    const onError = (error: Error) => {
      stop();
      reject(error);
    };
    const onClosed = () => {
      stop();
      reject(new Error('Connection terminated unexpectedly'));
    };
    socket.on(event, onEvent).on('error', onError).on('end', onClosed).on('close', onClosed);
  });
}

/** A one-line cause for a failed connection attempt, and whether the server gave no answer at all. */
function connectFailure(f: AttemptFailure, ep: PgEndpoint, ctx: CheckContext): { message: string; unanswered?: Unanswered } {
  const at = pgWhere(ep);
  const { error, firstBytes } = f;
  const code = error.code;
  const said = (message: string) => ({ message });
  const silent = (message: string) => ({ message, unanswered: noAnswer(ep.host, ep.port) });
  const network = describeNetworkError(code, at, ep.host);
  if (network) return { message: network, unanswered: unansweredFor(code, ep.host, ep.port) };
  if (code === 'ENOENT' && ep.host.startsWith('/')) return silent(`no PostgreSQL socket at ${at}`);
  if (firstBytes && firstBytes.length > 0 && !PG_FIRST_BYTES.has(firstBytes[0]!)) {
    return said(`not a PostgreSQL server on ${at} (it answered "${previewForeignBytes(firstBytes)}")`);
  }
  if (error instanceof ForeignProtocolError) return said(`not a PostgreSQL server on ${at}: ${error.message}`);
  const timedOut =
    error instanceof CheckAborted || /timeout/i.test(error.message) || ctx.signal.aborted;
  if (timedOut) {
    if (f.tcpPending) return silent(`TCP connect to ${at} timed out after ${ctx.timeoutMs} ms`);
    if (!firstBytes) return silent(`no answer from ${at} within ${ctx.timeoutMs} ms`);
    return said(`${at} did not complete the PostgreSQL handshake within ${ctx.timeoutMs} ms`);
  }
  if (isNoSsl(error)) {
    return said(`TLS mismatch: sslmode=${ep.sslMode} requires TLS but ${at} does not support SSL`);
  }
  if (isSslRequired(error)) {
    return said(`TLS mismatch: ${at} accepts user ${ep.user} only over SSL, but sslmode=${ep.sslMode} (use sslmode=require or stronger)`);
  }
  if (code === '28P01') return said(`authentication failed for user ${ep.user}`);
  if (code === '28000') return said(`authentication failed for user ${ep.user}: ${error.message}`);
  if (code === '3D000') return said(`database ${ep.database} does not exist on ${at}`);
  if (code === '57P03') return said(`${at} is not accepting connections: ${error.message}`);
  if (code === '53300') return said(`${at} has no free connection slots: ${error.message}`);
  if (error instanceof PasswordMissingError) {
    return said(`authentication failed for user ${ep.user}: the server asks for a password and the dsn has none`);
  }
  if (code && /CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO|VERIFY/i.test(code)) {
    return said(`TLS handshake with ${at} failed (sslmode=${ep.sslMode}): ${error.message} (${code})`);
  }
  if (code === 'ECONNRESET' || /terminated unexpectedly/i.test(error.message)) {
    // Closed without a byte: also what a port forwarder does while nothing listens behind it.
    return firstBytes
      ? said(`${at} closed the connection during the PostgreSQL handshake`)
      : silent(`${at} closed the connection without answering: not a PostgreSQL server?`);
  }
  const sqlstate = code && /^[0-9A-Z]{5}$/.test(code) ? ` (SQLSTATE ${code})` : code ? ` (${code})` : '';
  return said(`cannot connect to ${at}: ${error.message}${sqlstate}`);
}

/** A one-line cause for a failed query; a server that stops answering gave no answer. */
function queryFailure(error: PgError, what: string, ep: PgEndpoint, ctx: CheckContext): { message: string; unanswered?: Unanswered } {
  const at = pgWhere(ep);
  if (error instanceof ForeignProtocolError) return { message: `not a PostgreSQL server on ${at}: ${error.message}` };
  if (error instanceof CheckAborted || ctx.signal.aborted) {
    return { message: `no answer from ${at} to ${what} within ${ctx.timeoutMs} ms`, unanswered: noAnswer(ep.host, ep.port) };
  }
  if (error.code === '57014') return { message: `${what} on ${at} cancelled by statement_timeout (${ctx.timeoutMs} ms)` };
  if (error.code === '42501') return { message: `permission denied for user ${ep.user} (${what}): ${error.message}` };
  if (/terminated/i.test(error.message)) return { message: `connection to ${at} lost during ${what}` };
  const sqlstate = error.code ? ` (SQLSTATE ${error.code})` : '';
  return { message: `${what} failed on ${at}: ${error.message}${sqlstate}` };
}

/** End politely, but never wait on a peer that stopped answering: destroy after a short grace. */
async function closeConnection(connection: PgConnection, socket: Socket): Promise<void> {
  if (socket.destroyed) return;
  let timer: NodeJS.Timeout | undefined;
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  connection.terminate();
  await Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, 250)))]);
  clearTimeout(timer);
  socket.destroy();
}
