// The `redis` check: speaks RESP through ioredis and says what is wrong.
//
// Steps, each bounded by ctx.timeoutMs and stopped by ctx.signal:
//   connect (TLS for rediss://) -> AUTH (if a password is given) -> SELECT db (if not 0) ->
//   PING must answer PONG (latency) -> INFO server, INFO replication, INFO memory.
// Then the options are compared: role (master | replica) and maxmemory-policy. INFO memory is
// used rather than CONFIG GET, which managed Redis services disable. Nothing is written.
//
// ioredis is built to keep an application connected; a check wants the opposite, one bounded
// attempt: no reconnect loop (retryStrategy -> null), no offline queue, no ready-check loop, and
// AUTH/SELECT sent by us so their failures come back to us instead of becoming 'error' events
// or console warnings. The password never enters a message: messages are built from host,
// port, user and db; text quoted from the driver or server is masked with every other output by
// the engine's redactor, which knows the URL and password.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { Redis as RedisClient, RedisOptions } from 'ioredis';
import { z } from 'zod';
import { defineCheck, type CheckContext, type CheckOutcome } from '../src/check.js';
import { abortable, CheckAborted } from '../src/abortable.js';
import { maskCredentials } from '../src/redact.js';
import { loadIoredis } from '../src/lazy-modules.js';
import { previewForeignBytes } from '../src/clients/network.js';

const options = z
  .object({
    /** redis://[user:password@]host[:port][/db] or rediss:// for TLS. */
    url: z.string().superRefine((url, check) => {
      // The message names what is wrong without echoing the URL, which may hold a password.
      const problem = parseUrlOrError(url);
      if (problem) check.addIssue({ code: 'custom', message: problem });
    }),
    /** Overrides the password of the URL. */
    password: z.string().optional(),
    /** Overrides the db index of the URL. */
    db: z.number().int().min(0).optional(),
    role: z.enum(['master', 'replica']).optional(),
    maxmemoryPolicy: z.string().min(1).optional(),
    tls: z.object({ caFile: z.string().optional(), insecure: z.boolean().optional() }).optional(),
  })
  .strict()
  .superRefine((o, check) => {
    if (o.tls && !/^rediss:/i.test(o.url)) {
      check.addIssue({ code: 'custom', path: ['tls'], message: 'tls options need a rediss:// url' });
    }
  });
export type RedisCheckOptions = z.infer<typeof options>;

interface RedisEndpoint {
  host: string;
  port: number;
  username: string | undefined;
  password: string | undefined;
  db: number;
  tls: boolean;
}

function parseUrlOrError(url: string): string | undefined {
  try {
    parseUrl(url);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

function parseUrl(text: string): RedisEndpoint {
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
    host: url.hostname.replace(/^\[|\]$/g, '') || 'localhost',
    port,
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    db: Number(dbText),
    tls: url.protocol.toLowerCase() === 'rediss:',
  };
}

/** The endpoint with the options' overrides applied (options win over the URL). */
function endpointOf(o: RedisCheckOptions): RedisEndpoint {
  const ep = parseUrl(o.url);
  return { ...ep, password: o.password ?? ep.password, db: o.db ?? ep.db };
}

/** `key:value` lines of an INFO answer. */
function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) fields.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return fields;
}

/** What the connection saw, to tell a dead peer from a silent one or a stranger. */
interface Observed {
  tcpConnected: boolean;
  firstBytes: Buffer | undefined;
  /** The first 'error' event of the connection: the socket-level cause of a close. */
  socketError: Error | undefined;
}

function failureMessage(
  error: Error & { code?: string },
  step: string,
  ep: RedisEndpoint,
  seen: Observed,
  ctx: CheckContext,
): string {
  const at = `${ep.host}:${ep.port}`;
  const code = error.code;
  const text = error.message;
  if (code === 'ECONNREFUSED') return `connection refused on ${at}`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot resolve host ${ep.host}`;
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return `${at} is unreachable (${code})`;
  if (/^(NOAUTH|WRONGPASS)\b|invalid password|invalid username-password/i.test(text)) {
    if (/^NOAUTH/.test(text) && ep.password === undefined) {
      return `authentication failed: ${at} requires a password and none was given`;
    }
    return `authentication failed for user ${ep.username ?? 'default'} on ${at}`;
  }
  // A TLS record (alert 0x15, handshake 0x16, version 3.x) in answer to a plain-text command.
  const tlsRecord = seen.firstBytes && [0x15, 0x16].includes(seen.firstBytes[0]!) && seen.firstBytes[1] === 0x03;
  if (!ep.tls && tlsRecord) return `TLS mismatch: ${at} speaks TLS (use rediss://)`;
  if (/Protocol error|ParserError|reply type byte/i.test(text) || error.name === 'ParserError') {
    const answer = seen.firstBytes ? ` (it answered "${previewForeignBytes(seen.firstBytes)}")` : '';
    return `not a Redis server on ${at}${answer}`;
  }
  if (ep.tls && (/wrong version number|packet length too long|unknown protocol|record layer/i.test(text) || code === 'ERR_SSL_WRONG_VERSION_NUMBER')) {
    return `TLS mismatch: ${at} does not speak TLS (rediss:// against a plain port? use redis://)`;
  }
  if (ep.tls && code && /CERT|ERR_TLS|SSL|SELF_SIGNED|UNABLE_TO/i.test(code)) {
    return `TLS certificate check failed for ${at}: ${text} (${code})`;
  }
  const timedOut =
    error instanceof CheckAborted || ctx.signal.aborted || code === 'ETIMEDOUT' || /timed out/i.test(text);
  if (timedOut) {
    if (!seen.tcpConnected) {
      return ep.tls
        ? `no TLS session with ${at} within ${ctx.timeoutMs} ms (a plain-text port? use redis://)`
        : `TCP connect to ${at} timed out after ${ctx.timeoutMs} ms`;
    }
    return `no answer from ${at} to ${step} within ${ctx.timeoutMs} ms`;
  }
  if (/Connection is closed/i.test(text) || code === 'ECONNRESET' || code === 'EPIPE') {
    if (!seen.firstBytes) {
      // A Redis server answers every command, even with an error, before it closes. A peer that
      // closes without a reply speaks something else (Postgres drops a RESP "startup packet").
      return ep.tls
        ? `not a Redis server on ${at}: it closed the TLS connection without a RESP reply`
        : `not a Redis server on ${at}: it closed the connection without a RESP reply (a TLS-only port? use rediss://)`;
    }
    return `connection to ${at} closed during ${step}`;
  }
  if (/DB index is out of range/i.test(text)) return `db index ${ep.db} is out of range on ${at}`;
  if (/SELECT is not allowed in cluster mode/i.test(text)) {
    return `db index ${ep.db} unavailable: ${at} runs in cluster mode (only db 0)`;
  }
  if (/^LOADING\b/.test(text)) return `${at} is loading its dataset into memory`;
  if (/^DENIED\b/.test(text)) return `${at} refused the client: ${text.split('.')[0] ?? text}`;
  return `${step} failed on ${at}: ${text}`;
}

export default defineCheck<RedisCheckOptions>({
  kind: 'redis',
  prepare: loadIoredis,
  options,
  target: (o) => {
    const ep = endpointOf(o);
    return `${maskCredentials(o.url.replace(/\/\d*$/, ''))}/${ep.db}`;
  },
  async run(o, ctx): Promise<CheckOutcome> {
    const ep = endpointOf(o);
    const at = `${ep.host}:${ep.port}`;

    let tls: ConnectionOptions | undefined;
    if (ep.tls) {
      try {
        tls = {
          ...(o.tls?.caFile ? { ca: readFileSync(o.tls.caFile) } : {}),
          rejectUnauthorized: !o.tls?.insecure,
          ...(/^[\d.]+$|:/.test(ep.host) ? {} : { servername: ep.host }),
        };
      } catch (err) {
        return { status: 'fail', message: `cannot read tls.caFile: ${(err as Error).message}` };
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
    const seen: Observed = { tcpConnected: false, firstBytes: undefined, socketError: undefined };
    // Handled, so nothing reaches stderr as an unhandled error. A failed connect() rejects only
    // with "Connection is closed."; the cause (ECONNREFUSED...) comes as this event.
    client.on('error', (err: Error) => (seen.socketError ??= err));
    client.on('connect', () => {
      seen.tcpConnected = true;
      client.stream.once('data', (chunk: Buffer) => (seen.firstBytes ??= chunk));
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
    const details: Record<string, unknown> = { host: ep.host, port: ep.port, db: ep.db, tls: ep.tls };
    let warning: string | undefined;

    try {
      await step('connect', () => client.connect());

      if (ep.password !== undefined) {
        try {
          await step('AUTH', () =>
            ep.username ? client.auth(ep.username, ep.password!) : client.auth(ep.password!),
          );
        } catch (err) {
          // Redis without a password answers AUTH with an error but still serves the client.
          if (!/without any password configured|no password is set/i.test((err as Error).message)) throw err;
          warning = `a password is given but ${at} requires none`;
        }
      }
      if (ep.db !== 0) await step(`SELECT ${ep.db}`, () => client.select(ep.db));

      const started = performance.now();
      const pong = await step('PING', () => client.ping());
      details.latencyMs = Math.round((performance.now() - started) * 100) / 100;
      if (pong !== 'PONG') {
        return { status: 'fail', message: `PING on ${at} answered "${String(pong)}", not PONG`, details };
      }

      const server = parseInfo(await step('INFO server', () => client.info('server')));
      const replication = parseInfo(await step('INFO replication', () => client.info('replication')));
      const memory = parseInfo(await step('INFO memory', () => client.info('memory')));

      const version = server.get('redis_version') ?? server.get('valkey_version');
      const mode = server.get('redis_mode') ?? server.get('server_mode');
      const rawRole = replication.get('role');
      const role = rawRole === 'slave' ? 'replica' : rawRole;
      const policy = memory.get('maxmemory_policy');
      Object.assign(details, {
        redisVersion: version,
        mode,
        role,
        maxmemoryPolicy: policy,
        maxmemory: memory.has('maxmemory') ? Number(memory.get('maxmemory')) : undefined,
        usedMemory: memory.has('used_memory') ? Number(memory.get('used_memory')) : undefined,
      });
      if (role === 'master') details.connectedReplicas = Number(replication.get('connected_slaves') ?? 0);
      if (role === 'replica') {
        details.masterHost = `${replication.get('master_host')}:${replication.get('master_port')}`;
        details.masterLinkStatus = replication.get('master_link_status');
      }

      const problems: string[] = [];
      if (mode === 'sentinel') problems.push(`${at} is a Redis Sentinel, not a data server`);
      if (o.role && role !== o.role) problems.push(`role is ${role ?? 'unknown'}, expected ${o.role}`);
      if (o.maxmemoryPolicy && policy?.toLowerCase() !== o.maxmemoryPolicy.toLowerCase()) {
        problems.push(`maxmemory-policy is ${policy ?? 'unknown'}, expected ${o.maxmemoryPolicy}`);
      }
      if (problems.length) return { status: 'fail', message: problems.join('; '), details };

      if (role === 'replica' && details.masterLinkStatus !== 'up') {
        return { status: 'warn', message: `replica ${at} has its link to master ${details.masterHost} down`, details };
      }
      if (warning) return { status: 'warn', message: warning, details };
      return {
        status: 'pass',
        message: `Redis ${version ?? '?'} on ${at} answers PONG (${details.latencyMs} ms), role ${role ?? 'unknown'}`,
        details,
      };
    } catch (err) {
      // "Connection is closed." says only that the socket went away; report why, if we know.
      const cause =
        /Connection is closed/i.test((err as Error).message) && seen.socketError ? seen.socketError : err;
      return {
        status: 'fail',
        message: failureMessage(cause as Error & { code?: string }, current, ep, seen, ctx),
        details,
      };
    } finally {
      stop();
    }
  },
});
