// The Redis client: speaks RESP2 over one connection, one bounded attempt, and returns what the
// server said or a one-line cause.
//
// Steps, each bounded by ctx.timeoutMs and stopped by ctx.signal:
//   connect (TLS for rediss://) -> AUTH (if a password is given) -> SELECT db (if not 0) ->
//   PING (latency) -> INFO server, INFO replication, INFO memory. INFO memory rather than
//   CONFIG GET, which managed Redis services disable. Nothing is written. The commands after the
//   connection go out together (one round trip) and their replies are read in order, so a
//   failure names its command.
//
// Hand-written, not ioredis: ioredis is built to keep an application connected (reconnects, an
// offline queue, a ready check), which a check had to turn off one by one; and loading it took
// 35-45 ms of each run's CPU, the largest single cost of a verification's own time (issue 11).
// A check needs six commands and RESP2's five reply types. The password never enters a message:
// messages are built from host, port, user and db; text quoted from the server is masked with
// every other output by the engine's redactor, which knows the URL and password.
import { CERT_FILE_MAX_BYTES, readRegularFileSync } from '../read-file.js';
import type { Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { CheckContext, Unanswered } from '../check.js';
import type { TlsOption } from '../check-options.js';
import { abortable, CheckAborted } from '../abortable.js';
import {
  describeNetworkError,
  ForeignProtocolError,
  guardForeignBytes,
  isTlsRecord,
  noAnswer,
  openSocket,
  parseProblem,
  previewForeignBytes,
  socketHost,
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
      };
    } catch (err) {
      return { ...facts, failure: { stage: 'setup', message: `cannot read tls.caFile: ${(err as Error).message}` } };
    }
  }
  const seen: Observed = { tcpConnected: false, guard: undefined, socketError: undefined };
  const socket = openSocket(ep.host, ep.port, tls);
  // Installed before the peer can answer anything: the guard sees every byte.
  seen.guard = guardForeignBytes(socket, {
    protocol: 'RESP',
    accepts: (chunk, first) => !first || RESP_FIRST_BYTES.has(chunk[0]!),
    maxBytes: REDIS_MAX_BYTES,
  });
  const connection = new RespConnection(socket, seen);
  const connected = new Promise<void>((resolve) => socket.once(ep.tls ? 'secureConnect' : 'connect', resolve));
  const stop = () => socket.destroy();
  let current = 'connect';
  const step = <T>(what: string, work: Promise<T>): Promise<T> => {
    current = what;
    return abortable(Promise.race([work, connection.closed]), ctx.signal, { onAbort: stop });
  };
  try {
    await step('connect', connected);
    seen.tcpConnected = true;
    const commands: Array<{ name: string; args: string[] }> = [];
    if (ep.password !== undefined) commands.push({ name: 'AUTH', args: ep.username ? ['AUTH', ep.username, ep.password] : ['AUTH', ep.password] });
    if (ep.db !== 0) commands.push({ name: `SELECT ${ep.db}`, args: ['SELECT', String(ep.db)] });
    const sections = ['server', 'replication', 'memory'] as const;
    commands.push({ name: 'PING', args: ['PING'] }, ...sections.map((section) => ({ name: `INFO ${section}`, args: ['INFO', section] })));
    const started = performance.now();
    const replies = connection.send(commands.map((c) => c.args));
    const answers = new Map<string, Reply>();
    for (const [i, command] of commands.entries()) {
      const reply = await step(command.name, replies[i]!);
      if (reply instanceof ReplyError) {
        // Redis without a password answers AUTH with an error but still serves the client.
        if (command.name === 'AUTH' && /without any password configured|no password is set/i.test(reply.message)) facts.passwordNotNeeded = true;
        else throw reply;
      }
      answers.set(command.name, reply);
    }
    facts.latencyMs = performance.now() - started;
    const text = (name: string) => {
      current = name;
      const reply = answers.get(name);
      if (typeof reply !== 'string') throw new Error(`Protocol error: ${name} answered ${reply === null ? 'nil' : 'a reply of the wrong type'}`);
      return reply;
    };
    facts.pong = text('PING');
    if (facts.pong !== 'PONG') return facts;
    const [server, replication, memory] = sections.map((section) => parseInfo(text(`INFO ${section}`)));
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

/** An error reply of the server ("-ERR ...", "-WRONGPASS ..."): its text is the message. */
class ReplyError extends Error {
  override name = 'ReplyError';
}

/** A RESP2 reply: simple string, integer, bulk string (null: nil), array, or error reply. */
type Reply = string | number | null | ReplyError | Reply[];

/** Commands out, replies in, in order, on one connection. */
class RespConnection {
  private readonly reader = new RespReader();
  private readonly waiting: Array<{ resolve(reply: Reply): void; reject(err: Error): void }> = [];
  private ended: Error | undefined;
  /** Rejects when the connection fails or closes: whatever was awaited then fails with it. */
  readonly closed: Promise<never>;

  constructor(
    private readonly socket: Socket,
    seen: Observed,
  ) {
    let close!: (err: Error) => void;
    this.closed = new Promise<never>((_, reject) => (close = reject));
    this.closed.catch(() => {});
    const end = (err: Error) => {
      this.ended ??= err;
      close(this.ended);
      for (const w of this.waiting.splice(0)) w.reject(this.ended);
    };
    this.end = end;
    socket.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      this.deliver();
    });
    socket.on('error', (err: Error) => {
      seen.socketError ??= err;
      end(err);
    });
    socket.on('close', () => end(new Error('Connection is closed.')));
  }

  /** Writes the commands at once (one round trip); a promise of each reply, in their order. */
  send(commands: string[][]): Array<Promise<Reply>> {
    const replies = commands.map(() => new Promise<Reply>((resolve, reject) => this.waiting.push({ resolve, reject })));
    for (const reply of replies) reply.catch(() => {}); // those after a failure are never read
    if (this.ended) this.end(this.ended);
    else this.socket.write(commands.map(encodeCommand).join(''));
    this.deliver(); // what a peer sent before it was asked
    return replies;
  }

  private readonly end: (err: Error) => void;

  /** Hands each whole reply to the command waiting for it; bytes RESP2 cannot hold end it all. */
  private deliver() {
    try {
      for (let reply: Reply | undefined; this.waiting.length > 0 && (reply = this.reader.next()) !== undefined; ) this.waiting.shift()!.resolve(reply);
    } catch (err) {
      this.end(err as Error);
      this.socket.destroy();
    }
  }
}

/** A command as RESP sends it: an array of bulk strings. */
function encodeCommand(args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

const MAX_ARRAY_DEPTH = 8;

/** RESP2 replies parsed as their bytes arrive (a connection carries at most REDIS_MAX_BYTES). */
class RespReader {
  private buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer) {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
  }

  /** The next whole reply, or undefined until more bytes come; throws on what RESP2 cannot hold. */
  next(): Reply | undefined {
    const parsed = this.parse(0);
    if (!parsed) return undefined;
    this.buffer = this.buffer.subarray(parsed.end);
    return parsed.reply;
  }

  private parse(at: number, depth = 0): { reply: Reply; end: number } | undefined {
    const lineEnd = this.buffer.indexOf('\r\n', at);
    if (lineEnd < 0) return undefined;
    const type = String.fromCharCode(this.buffer[at]!);
    const line = this.buffer.toString('utf8', at + 1, lineEnd);
    const next = lineEnd + 2;
    switch (type) {
      case '+':
        return { reply: line, end: next };
      case '-':
        return { reply: new ReplyError(line), end: next };
      case ':':
        return { reply: lengthOf(line, -Infinity), end: next };
      case '$': {
        const length = lengthOf(line, -1);
        if (length === -1) return { reply: null, end: next };
        if (this.buffer.length < next + length + 2) return undefined;
        if (this.buffer.toString('latin1', next + length, next + length + 2) !== '\r\n') throw new Error('Protocol error: a bulk string overran its length');
        return { reply: this.buffer.toString('utf8', next, next + length), end: next + length + 2 };
      }
      case '*': {
        // INFO and PING answer flat; a peer that nests arrays without end is not Redis.
        if (depth >= MAX_ARRAY_DEPTH) throw new Error('Protocol error: arrays nested too deep');
        const count = lengthOf(line, -1);
        if (count === -1) return { reply: null, end: next };
        const items: Reply[] = [];
        let end = next;
        for (let i = 0; i < count; i++) {
          const item = this.parse(end, depth + 1);
          if (!item) return undefined;
          items.push(item.reply);
          end = item.end;
        }
        return { reply: items, end };
      }
      default:
        throw new Error(`Protocol error, got ${JSON.stringify(type)} as reply type byte`);
    }
  }
}

/** A RESP length or integer; `min` is the least it may be (-1: nil). */
function lengthOf(text: string, min: number): number {
  const n = Number(text);
  if (!/^-?\d+$/.test(text) || n < min) throw new Error(`Protocol error: "${text.slice(0, 20)}" is not a length`);
  return n;
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
  const silent = (message: string) => ({ message, unanswered: noAnswer(ep.host, ep.port) });
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
  if (error instanceof ForeignProtocolError || /^Protocol error/.test(text)) {
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
