// The Redis client: speaks RESP through ioredis, one bounded attempt, and returns what the
// server said or a one-line cause.
//
// Steps, each bounded by ctx.timeoutMs and stopped by ctx.signal:
//   connect (TLS for rediss://) -> AUTH (if a password is given) -> SELECT db (if not 0) ->
//   PING (latency) -> INFO server, INFO replication, INFO memory. INFO memory rather than
//   CONFIG GET, which managed Redis services disable. Nothing is written.
//
// ioredis is built to keep an application connected; a check wants the opposite, one bounded
// attempt: no reconnect loop (retryStrategy -> null), no offline queue, no ready-check loop, and
// AUTH/SELECT sent by us so their failures come back to us instead of becoming 'error' events
// or console warnings. The password never enters a message: messages are built from host,
// port, user and db; text quoted from the driver or server is masked with every other output by
// the engine's redactor, which knows the URL and password.
import { CERT_FILE_MAX_BYTES, readRegularFileSync } from '../read-file.js';
import type { ConnectionOptions } from 'node:tls';
import type { Redis as RedisClient, RedisOptions } from 'ioredis';
import type { CheckContext, Unanswered } from '../check.js';
import type { TlsOption } from '../check-options.js';
import { abortable, CheckAborted } from '../abortable.js';
import { loadIoredis } from '../lazy-modules.js';
import {
  describeNetworkError,
  ForeignProtocolError,
  guardForeignBytes,
  isTlsRecord,
  parseProblem,
  previewForeignBytes,
  socketHost,
  tlsServerName,
  type ByteGuard,
  unansweredFor,
} from './network.js';

export interface RedisEndpoint {
  host: string;
  port: number;
  username: string | undefined;
  password: string | undefined;
  db: number;
  tls: boolean;
}

/** Why a URL cannot be used, without echoing it (it may hold a password); undefined when fine. */
export const redisUrlProblem = (url: string): string | undefined => parseProblem(parseRedisUrl, url);

export function parseRedisUrl(text: string): RedisEndpoint {
  if (!/^rediss?:\/\//i.test(text)) throw new Error('url must start with redis:// or rediss://');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error('url is not a valid URL (percent-encode special characters in the password)');
  }
  const port = url.port ? Number(url.port) : 6379;
  const dbText = url.pathname.replace(/^\//, '') || url.searchParams.get('db') || '0';
  if (!/^\d+$/.test(dbText)) throw new Error('url path must be a db index, e.g. redis://host:6379/0');
  return {
    host: socketHost(url) || 'localhost',
    port,
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    db: Number(dbText),
    tls: url.protocol.toLowerCase() === 'rediss:',
  };
}

/** What the server said. A fact is missing when the client did not get that far. */
export interface RedisFacts {
  host: string;
  port: number;
  db: number;
  tls: boolean;
  latencyMs?: number;
  /** The answer to PING (PONG from a Redis server). */
  pong?: string;
  /** INFO server, replication and memory, as their `key:value` fields. */
  info?: { server: Map<string, string>; replication: Map<string, string>; memory: Map<string, string> };
  /** AUTH was answered "no password is set": the server needs none. */
  passwordNotNeeded?: boolean;
  /** Why a step failed, and whether the server gave no answer at all (see CheckOutcome.unanswered). */
  failure?: { stage: 'setup' | 'exchange'; message: string; unanswered?: Unanswered };
}

/** `key:value` lines of an INFO answer. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) fields.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return fields;
}

// A first reply starts with a RESP2 or RESP3 type byte.
const RESP_FIRST_BYTES = new Set([...'+-:$*_,#!=(%~>|'].map((c) => c.charCodeAt(0)));
// The most a connection may carry: INFO answers are a few kilobytes. Kept small because the RESP
// parser rescans a reply that has not ended for each new chunk: a flood costs it quadratic time.
const REDIS_MAX_BYTES = 1024 * 1024;

export async function queryRedis(ep: RedisEndpoint, tlsOption: TlsOption | undefined, ctx: CheckContext): Promise<RedisFacts> {
  const facts: RedisFacts = { host: ep.host, port: ep.port, db: ep.db, tls: ep.tls };
  let tls: ConnectionOptions | undefined;
  if (ep.tls) {
    try {
      tls = {
        ...(tlsOption?.caFile ? { ca: readRegularFileSync(tlsOption.caFile, CERT_FILE_MAX_BYTES) } : {}),
        rejectUnauthorized: !tlsOption?.insecure,
        ...tlsServerName(ep.host),
      };
    } catch (err) {
      return { ...facts, failure: { stage: 'setup', message: `cannot read tls.caFile: ${(err as Error).message}` } };
    }
  }
  const budget = Math.max(1, Math.floor(ctx.timeoutMs));
  const clientOptions: RedisOptions = {
    host: ep.host,
    port: ep.port,
    ...(tls ? { tls } : {}),
    lazyConnect: true,
    enableOfflineQueue: false,
    enableReadyCheck: false,
    // ioredis would otherwise send CLIENT SETINFO before anything else: a check observes, and
    // keeps its first command the one it reports on.
    disableClientInfo: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    reconnectOnError: () => false,
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
    connectTimeout: budget,
    commandTimeout: budget,
    disconnectTimeout: 100,
  };
  const { Redis } = await loadIoredis();
  const client: RedisClient = new Redis(clientOptions);
  const seen: Observed = { tcpConnected: false, guard: undefined, socketError: undefined };
  // Handled, so nothing reaches stderr as an unhandled error. A failed connect() rejects only
  // with "Connection is closed."; the cause (ECONNREFUSED...) comes as this event.
  client.on('error', (err: Error) => (seen.socketError ??= err));
  client.on('connect', () => {
    seen.tcpConnected = true;
    // Emitted before the peer can answer anything: the guard sees every byte ioredis would.
    seen.guard = guardForeignBytes(client.stream, {
      protocol: 'RESP',
      accepts: (chunk, first) => !first || RESP_FIRST_BYTES.has(chunk[0]!),
      maxBytes: REDIS_MAX_BYTES,
    });
  });
  const stop = () => {
    client.disconnect();
    client.stream?.destroy();
  };
  let current = 'connect';
  const step = async <T>(what: string, work: () => Promise<T>): Promise<T> => {
    current = what;
    return abortable(work(), ctx.signal, { onAbort: stop });
  };
  try {
    await step('connect', () => client.connect());
    if (ep.password !== undefined) {
      try {
        await step('AUTH', () => (ep.username ? client.auth(ep.username, ep.password!) : client.auth(ep.password!)));
      } catch (err) {
        // Redis without a password answers AUTH with an error but still serves the client.
        if (!/without any password configured|no password is set/i.test((err as Error).message)) throw err;
        facts.passwordNotNeeded = true;
      }
    }
    if (ep.db !== 0) await step(`SELECT ${ep.db}`, () => client.select(ep.db));

    // PING and the three INFO sections in one round trip (a pipeline): over a network, three
    // round trips fewer. Read in order, so a failure still names its command.
    const started = performance.now();
    const sections = ['server', 'replication', 'memory'] as const;
    let pipeline = client.pipeline().ping();
    for (const section of sections) pipeline = pipeline.info(section);
    const replies = (await step('PING', () => pipeline.exec())) ?? [];
    facts.latencyMs = performance.now() - started;
    const reply = (i: number, what: string) => {
      const [err, value] = replies[i] ?? [new Error('Connection is closed.'), undefined];
      current = what;
      if (err) throw err;
      return value as string;
    };
    facts.pong = reply(0, 'PING');
    if (facts.pong !== 'PONG') return facts;
    const [server, replication, memory] = sections.map((section, i) => parseInfo(reply(i + 1, `INFO ${section}`)));
    facts.info = { server: server!, replication: replication!, memory: memory! };
    return facts;
  } catch (err) {
    // "Connection is closed." says only that the socket went away; report why, if we know.
    const cause =
      seen.guard?.tripped ?? (/Connection is closed/i.test((err as Error).message) && seen.socketError ? seen.socketError : err);
    return { ...facts, failure: { stage: 'exchange', ...failure(cause as RedisError, current, ep, seen, ctx) } };
  } finally {
    stop();
  }
}

type RedisError = Error & { code?: string };

/** What the connection saw, to tell a dead peer from a silent one or a stranger. */
interface Observed {
  tcpConnected: boolean;
  guard: ByteGuard | undefined;
  /** The first 'error' event of the connection: the socket-level cause of a close. */
  socketError: Error | undefined;
}

/** A one-line cause for a failed exchange, and whether the server gave no answer at all. */
function failure(error: RedisError, step: string, ep: RedisEndpoint, seen: Observed, ctx: CheckContext): { message: string; unanswered?: Unanswered } {
  const at = `${ep.host}:${ep.port}`;
  const code = error.code;
  const text = error.message;
  const firstBytes = seen.guard?.firstBytes;
  const said = (message: string) => ({ message });
  const silent = (message: string) => ({ message, unanswered: { host: ep.host, port: ep.port, refused: false } });
  const network = describeNetworkError(code, at, ep.host);
  if (network) return { message: network, unanswered: unansweredFor(code, ep.host, ep.port) };
  if (/^(NOAUTH|WRONGPASS)\b|invalid password|invalid username-password/i.test(text)) {
    if (/^NOAUTH/.test(text) && ep.password === undefined) {
      return said(`authentication failed: ${at} requires a password and none was given`);
    }
    return said(`authentication failed for user ${ep.username ?? 'default'} on ${at}`);
  }
  // A TLS record in answer to a plain-text command.
  if (!ep.tls && isTlsRecord(firstBytes)) return said(`TLS mismatch: ${at} speaks TLS (use rediss://)`);
  if (error instanceof ForeignProtocolError && error.reason !== 'first answer') return said(`not a Redis server on ${at}: ${text}`);
  if (error instanceof ForeignProtocolError || /Protocol error|ParserError|reply type byte/i.test(text) || error.name === 'ParserError') {
    const answer = firstBytes ? ` (it answered "${previewForeignBytes(firstBytes)}")` : '';
    return said(`not a Redis server on ${at}${answer}`);
  }
  if (ep.tls && (/wrong version number|packet length too long|unknown protocol|record layer/i.test(text) || code === 'ERR_SSL_WRONG_VERSION_NUMBER')) {
    return said(`TLS mismatch: ${at} does not speak TLS (rediss:// against a plain port? use redis://)`);
  }
  if (ep.tls && code && /CERT|ERR_TLS|SSL|SELF_SIGNED|UNABLE_TO/i.test(code)) {
    return said(`TLS certificate check failed for ${at}: ${text} (${code})`);
  }
  const timedOut =
    error instanceof CheckAborted || ctx.signal.aborted || code === 'ETIMEDOUT' || /timed out/i.test(text);
  if (timedOut) {
    if (!seen.tcpConnected) {
      return silent(
        ep.tls
          ? `no TLS session with ${at} within ${ctx.timeoutMs} ms (a plain-text port? use redis://)`
          : `TCP connect to ${at} timed out after ${ctx.timeoutMs} ms`,
      );
    }
    return silent(`no answer from ${at} to ${step} within ${ctx.timeoutMs} ms`);
  }
  if (/Connection is closed/i.test(text) || code === 'ECONNRESET' || code === 'EPIPE') {
    if (!firstBytes) {
      // A Redis server answers every command, even with an error, before it closes. A peer that
      // closes without a reply speaks something else (Postgres drops a RESP "startup packet"),
      // or is a port forwarder with nothing listening behind it: no answer either way.
      return silent(
        ep.tls
          ? `not a Redis server on ${at}: it closed the TLS connection without a RESP reply`
          : `not a Redis server on ${at}: it closed the connection without a RESP reply (a TLS-only port? use rediss://)`,
      );
    }
    return said(`connection to ${at} closed during ${step}`);
  }
  if (/DB index is out of range/i.test(text)) return said(`db index ${ep.db} is out of range on ${at}`);
  if (/SELECT is not allowed in cluster mode/i.test(text)) {
    return said(`db index ${ep.db} unavailable: ${at} runs in cluster mode (only db 0)`);
  }
  if (/^LOADING\b/.test(text)) return said(`${at} is loading its dataset into memory`);
  if (/^DENIED\b/.test(text)) return said(`${at} refused the client: ${text.split('.')[0] ?? text}`);
  return said(`${step} failed on ${at}: ${text}`);
}
