// What every protocol client shares about the network: one wording for the failures a socket
// reports (refused, unresolved, unreachable), address parsing, the TLS sniff, the preview of a
// wrong-protocol peer's answer, and the guard that stops a driver from buffering what such a peer
// sends (a flooding peer would otherwise grow a driver's parse buffer to gigabytes).
import { excerpt } from '../redact.js';
import { connect, isIP, type Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { Unanswered } from '../check.js';

/** A failure to reach or understand a peer, sorted so that callers can word and count it. */
export type FailureKind = 'refused' | 'unresolved' | 'unreachable' | 'timeout' | 'tls' | 'foreign-protocol' | 'auth';

/** The host of a URL as sockets take it: an IPv6 literal without its brackets. */
export function socketHost(url: URL): string {
  return unbracket(url.hostname);
}

const unbracket = (host: string) => host.replace(/^\[|\]$/g, '');

/** True for an IPv4 or IPv6 literal (brackets allowed): TLS then sends no server name. */
export function isIpAddress(host: string): boolean {
  return isIP(unbracket(host)) !== 0;
}

/** `servername` for a TLS connection: a host name, never an IP literal (RFC 6066). */
export function tlsServerName(host: string): { servername?: string } {
  return isIpAddress(host) ? {} : { servername: host };
}

/**
 * A TCP connection to `host`:`port`, in TLS when `tls` is given (its server name taken from the
 * host). node:tls loads only then: it costs milliseconds of every run's start.
 */
export function openSocket(host: string, port: number, tls?: ConnectionOptions, onConnect?: () => void): Socket {
  return tls ? process.getBuiltinModule('node:tls').connect({ host, port, ...tlsServerName(host), ...tls }, onConnect) : connect({ host, port }, onConnect);
}

/**
 * The one wording of a socket-level failure, by the Node error code: `where` is `host:port` (or
 * a socket path), `host` the name that was resolved. Undefined for codes it does not cover.
 */
export function describeNetworkError(code: string | undefined, where: string, host: string): string | undefined {
  return networkFailure(code, where, host)?.message;
}

export function networkFailure(
  code: string | undefined,
  where: string,
  host: string,
): { kind: FailureKind; message: string } | undefined {
  switch (code) {
    case 'ECONNREFUSED':
      return { kind: 'refused', message: `connection refused on ${where}` };
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return { kind: 'unresolved', message: `cannot resolve host ${host}` };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return { kind: 'unreachable', message: `no route to ${where} (${code})` };
  }
  return undefined;
}

/** The connection was never made (refused, unresolved, no route): no byte of a request left. */
export const neverConnected = (code: string | undefined): boolean => networkFailure(code, '', '') !== undefined;

/**
 * CheckOutcome.unanswered for a socket-level failure, by the Node error code: the peer gave no
 * answer (refused, unresolved, no route, timed out, reset). Undefined for other codes. A refusal
 * on a unix socket (a host that is a path) is no TCP refusal: nothing can watch it with a connect.
 */
export function unansweredFor(code: string | undefined, host: string, port: number): Unanswered | undefined {
  const network = networkFailure(code, `${host}:${port}`, host);
  if (network) return { host, port, refused: network.kind === 'refused' && !host.startsWith('/') };
  return code === 'ETIMEDOUT' || code === 'ECONNRESET' || code === 'EPIPE' ? noAnswer(host, port) : undefined;
}

/** CheckOutcome.unanswered for a peer that took the connection and then said nothing. */
export function noAnswer(host: string, port: number): Unanswered {
  return { host, port, refused: false };
}

/** Why `parse` refuses `text` (its error message), or undefined when it reads it. */
export function parseProblem(parse: (text: string) => unknown, text: string): string | undefined {
  try {
    parse(text);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** A TLS record (alert 0x15 or handshake 0x16, version 3.x): the peer speaks TLS. */
export function isTlsRecord(bytes: Buffer | undefined): boolean {
  return !!bytes && bytes.length >= 2 && (bytes[0] === 0x15 || bytes[0] === 0x16) && bytes[1] === 0x03;
}

/**
 * The readable start of what a peer of the wrong protocol answered, for a message such as
 * `not a Redis server on h:p (it answered "HTTP/1.1 400 Bad Request")`: its first line, with
 * unprintable runs as spaces, at most 60 characters.
 */
export function previewForeignBytes(bytes: Buffer): string {
  const line = bytes.subarray(0, 120).toString('latin1').split(/\r?\n/)[0] ?? '';
  const text = line.replace(/[^\x20-\x7e]+/g, ' ').trim();
  return excerpt(text, 60, '...');
}

/** The socket was cut because the peer does not speak the protocol, or sent more than allowed. */
export class ForeignProtocolError extends Error {
  override name = 'ForeignProtocolError';
  readonly code = 'FOREIGN_PROTOCOL';
  constructor(
    readonly protocol: string,
    readonly firstBytes: Buffer,
    readonly reason: 'first answer' | 'later answer' | 'too many bytes',
    readonly limit?: number,
  ) {
    super(
      reason === 'first answer'
        ? `the peer does not speak ${protocol} (it answered "${previewForeignBytes(firstBytes)}")`
        : reason === 'later answer'
          ? `the peer sent bytes that are not ${protocol}`
          : `the peer sent more than ${limit} bytes, more than any ${protocol} answer this check asks for`,
    );
  }
}

export interface ByteGuard {
  /** The first bytes the peer sent, once it sent any. */
  readonly firstBytes: Buffer | undefined;
  /** Set when the guard cut the connection. */
  readonly tripped: ForeignProtocolError | undefined;
}

/**
 * Watch what a peer sends on `socket` before the driver buffers it: every chunk must look like
 * `protocol` (`accepts`, told whether it is the first), and the connection may carry at most
 * `maxBytes`. Otherwise the socket is destroyed with a ForeignProtocolError, which the driver
 * reports as a socket error, so the check fails at once instead of the driver buffering a flood
 * until memory or the timeout runs out. Hand-written: kafkajs has no such limit of its own.
 */
export function guardForeignBytes(
  socket: Socket,
  { protocol, accepts, maxBytes }: { protocol: string; accepts: (chunk: Buffer, first: boolean) => boolean; maxBytes: number },
): ByteGuard {
  const state: { firstBytes: Buffer | undefined; tripped: ForeignProtocolError | undefined } = {
    firstBytes: undefined,
    tripped: undefined,
  };
  let seen = 0;
  // The check runs in front of every 'data' listener, and a chunk it refuses reaches none: a
  // driver handed a broken frame may throw outside any promise (kafkajs does, on a size under 4).
  const emit = socket.emit;
  socket.emit = function (this: Socket, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'data' && !state.tripped) {
      const chunk = args[0] as Buffer;
      const first = !state.firstBytes;
      state.firstBytes ??= Buffer.from(chunk.subarray(0, 256));
      seen += chunk.length;
      if (!accepts(chunk, first)) {
        state.tripped = new ForeignProtocolError(protocol, state.firstBytes, first ? 'first answer' : 'later answer');
      } else if (seen > maxBytes) {
        state.tripped = new ForeignProtocolError(protocol, state.firstBytes, 'too many bytes', maxBytes);
      }
      if (state.tripped) {
        socket.destroy(state.tripped);
        return false;
      }
    }
    if (event === 'data' && state.tripped) return false;
    return Reflect.apply(emit, this, [event, ...args]) as boolean;
  } as Socket['emit'];
  return state;
}
