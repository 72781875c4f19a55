// Why a Kafka exchange failed, in one line: refused, unresolved, silent, not Kafka, TLS,
// authentication, timeout. A Kafka request gets the same nothing from a silent peer, a line-based
// server (Redis) and a plaintext listener spoken to in TLS: "timed out" or "closed connection". So
// a failed connect is followed by a small probe of the seed brokers.
import type { CheckContext, Unanswered } from '../check.js';
import { CheckAborted } from '../abortable.js';
import { describeNetworkError, ForeignProtocolError, isTlsRecord, noAnswer, openSocket, previewForeignBytes, unansweredFor } from './network.js';
import { formatBroker, type BrokerAddress, type KafkaBudget, type KafkaTls } from './kafka.js';
import { KafkaWireError } from './kafka-wire.js';

type ProbeVerdict =
  | { kind: 'kafka' }
  | { kind: 'refused' }
  | { kind: 'unresolved' }
  | { kind: 'silent' }
  | { kind: 'closed' }
  | { kind: 'tls'; reason: string }
  | { kind: 'other-protocol'; preview: string }
  | { kind: 'tls-listener' }
  | { kind: 'error'; reason: string };

const PROBE_CORRELATION_ID = 0x534f4d41; // "SOMA"

type Exchange =
  | { kind: 'bytes'; bytes: Buffer }
  | { kind: 'refused' | 'unresolved' | 'silent' | 'closed' }
  | { kind: 'tls' | 'error'; reason: string };

/** Connect, send `payload`, and report what came back first (bytes, close, silence, error). */
function exchange(
  address: BrokerAddress,
  tls: KafkaTls | undefined,
  payload: Buffer,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Exchange> {
  return new Promise((resolve) => {
    let received = Buffer.alloc(0);
    let settled = false;
    const socket = openSocket(address.host, address.port, tls);
    const finish = (result: Exchange) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onQuiet);
      socket.destroy();
      resolve(received.length ? { kind: 'bytes', bytes: received } : result);
    };
    const onQuiet = () => finish({ kind: 'silent' });
    const timer = setTimeout(onQuiet, timeoutMs);
    signal.addEventListener('abort', onQuiet, { once: true });
    socket.once(tls ? 'secureConnect' : 'connect', () => socket.write(payload));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 8) finish({ kind: 'closed' });
    });
    socket.once('end', () => finish({ kind: 'closed' }));
    socket.once('close', () => finish({ kind: 'closed' }));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') finish({ kind: 'refused' });
      else if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') finish({ kind: 'unresolved' });
      else if (tls) finish({ kind: 'tls', reason: err.code ?? err.message });
      else finish({ kind: 'error', reason: err.code ?? err.message });
    });
  });
}

/**
 * Tell a Kafka broker from a silent or foreign peer, after a connection got no usable answer (only
 * "timed out" or "closed connection"). Two connections at once: one sends a well-formed
 * ApiVersions v0 request, which a Kafka broker answers with our correlation id; the other sends a
 * text line, because a line-based server such as Redis never answers the Kafka request (its
 * inline parser stops at the NUL bytes of the frame and waits for a newline) but answers a line.
 * A Kafka broker just closes the line connection.
 */
async function probePeer(
  address: BrokerAddress,
  tls: KafkaTls | undefined,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<ProbeVerdict> {
  const clientId = Buffer.from('soma-verify');
  const request = Buffer.alloc(4 + 2 + 2 + 4 + 2 + clientId.length);
  request.writeInt32BE(request.length - 4, 0);
  request.writeInt16BE(18, 4); // ApiVersions
  request.writeInt16BE(0, 6); // version 0
  request.writeInt32BE(PROBE_CORRELATION_ID, 8);
  request.writeInt16BE(clientId.length, 12);
  clientId.copy(request, 14);

  const [kafkaAnswer, lineAnswer] = await Promise.all([
    exchange(address, tls, request, timeoutMs, signal),
    exchange(address, tls, Buffer.from('PING\r\n'), timeoutMs, signal),
  ]);
  if (kafkaAnswer.kind === 'bytes') {
    const b = kafkaAnswer.bytes;
    const size = b.length >= 8 ? b.readInt32BE(0) : -1;
    if (size >= 6 && size < 1_000_000 && b.readInt32BE(4) === PROBE_CORRELATION_ID) return { kind: 'kafka' };
    // A TLS record header (alert 0x15 or handshake 0x16, version 3.x): a TLS listener.
    if (!tls && isTlsRecord(b)) return { kind: 'tls-listener' };
    return { kind: 'other-protocol', preview: previewForeignBytes(b) };
  }
  if (lineAnswer.kind === 'bytes') return { kind: 'other-protocol', preview: previewForeignBytes(lineAnswer.bytes) };
  return kafkaAnswer;
}

interface KafkaFailure {
  /** kafkajs error class name and message, or a Node error code. */
  name: string;
  message: string;
}

export function describeError(err: unknown): KafkaFailure {
  if (err instanceof Error) {
    // kafkajs wraps the real error in KafkaJSNumberOfRetriesExceeded (cause) or originalError.
    const inner = (err as { cause?: unknown; originalError?: unknown }).cause ??
      (err as { originalError?: unknown }).originalError;
    if (inner instanceof Error && err.name === 'KafkaJSNumberOfRetriesExceeded') return describeError(inner);
    return { name: err.name, message: err.message };
  }
  return { name: 'Error', message: String(err) };
}

/** A connection the byte guard cut: the peer's first answer was not Kafka, or it flooded. */
export interface CutConnection {
  error: ForeignProtocolError;
  where: string;
}

interface FailureContext {
  cut: CutConnection | undefined;
  phase: string;
  seeds: BrokerAddress[];
  tlsOptions: KafkaTls | undefined;
  errorLogs: Array<{ message: string; broker?: string }>;
  budget: KafkaBudget;
  deadline: number;
  ctx: CheckContext;
  sasl: { mechanism: string; username: string } | undefined;
}

/** One line naming the cause: refused, no answer, not Kafka, TLS, authentication, timeout. */
const NETWORK_CODES = ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'];

/** A connection cut by the byte guard: a TLS listener, another protocol, or a flood. */
function describeCut({ error, where }: CutConnection, ssl: boolean): string {
  if (error.reason !== 'first answer') return `not a Kafka broker on ${where}: ${error.message}`;
  if (!ssl && isTlsRecord(error.firstBytes)) return `${where} is a TLS listener: set ssl for this check`;
  return `not a Kafka broker on ${where}: it speaks another protocol (answered "${previewForeignBytes(error.firstBytes)}")`;
}

/**
 * The one-line cause of a failed exchange, and whether the cluster gave no answer at all (see
 * CheckOutcome.unanswered): then at which broker.
 */
export async function explainFailure(err: unknown, f: FailureContext): Promise<{ message: string; unanswered?: Unanswered }> {
  const seedList = f.seeds.map(formatBroker).join(',');
  const said = (message: string) => ({ message });
  const silent = (message: string, broker: BrokerAddress) => ({ message, unanswered: noAnswer(broker.host, broker.port) });
  if (f.cut) return said(describeCut(f.cut, f.tlsOptions !== undefined));
  if (err instanceof CheckAborted) {
    return silent(`timed out after ${f.ctx.timeoutMs} ms while ${err.phase} (${seedList})`, f.seeds[0]!);
  }
  const { name, message } = describeError(err);
  const lastBroker = [...f.errorLogs].reverse().find((l) => l.broker)?.broker;
  const where = lastBroker ?? formatBroker(f.seeds[0]!);
  // What our own client knows the cause of, before guessing from the words of a message.
  if (err instanceof KafkaWireError) {
    // Framed like Kafka, but no answer a broker gives.
    if (err.kind === 'malformed') return said(`not a Kafka broker on ${where}: the peer sent bytes that are not Kafka (${message})`);
    if (err.kind === 'sasl') return said(`authentication failed for user ${f.sasl?.username ?? '(none)'} (SASL ${f.sasl?.mechanism ?? ''}) on ${where}: ${message}`);
    if (err.kind === 'unsupported' || err.kind === 'broker') return said(`kafka error while ${f.phase} on ${where}: ${message}`);
  }
  const whereHost = where.replace(/^\[|\]?:\d+$/g, '');
  const broker = { host: whereHost, port: Number(/:(\d+)$/.exec(where)?.[1] ?? f.seeds[0]!.port) };

  const code = NETWORK_CODES.find((c) => message.includes(c));
  const network = describeNetworkError(code, where, whereHost);
  if (network) return { message: network, unanswered: unansweredFor(code, broker.host, broker.port) };
  if (name === 'KafkaJSSASLAuthenticationError' || /SASL .*authentication failed|Authentication failed/i.test(message)) {
    return said(`authentication failed for user ${f.sasl?.username ?? '(none)'} (SASL ${f.sasl?.mechanism ?? ''}) on ${where}: ${message}`);
  }
  if (/certificate|ssl|tls|handshake|wrong version number/i.test(message) && f.tlsOptions) {
    return said(`TLS handshake with ${where} failed: ${message}`);
  }

  // Timed out or closed while talking: probe to tell a silent peer from a foreign protocol.
  const silentOrClosed =
    name === 'KafkaJSRequestTimeoutError' ||
    name === 'KafkaJSConnectionClosedError' ||
    /timed out|Closed connection|Connection timeout|ECONNRESET|socket hang up/i.test(message);
  const undecodable = name === 'KafkaJSProtocolError' || /Invalid|decode|not supported|buffer/i.test(message);
  if ((silentOrClosed || undecodable) && f.phase === 'connecting') {
    const remaining = f.deadline - performance.now() - 200;
    const probeMs = Math.max(100, Math.min(2000, remaining));
    const verdicts = await Promise.all(
      f.seeds.slice(0, 5).map(async (seed) => ({ seed, verdict: await probePeer(seed, f.tlsOptions, probeMs, f.ctx.signal) })),
    );
    const pick = (kind: ProbeVerdict['kind']) => verdicts.find((v) => v.verdict.kind === kind);
    const foreign = pick('other-protocol');
    if (foreign && foreign.verdict.kind === 'other-protocol') {
      return said(`not a Kafka broker on ${formatBroker(foreign.seed)}: it speaks another protocol (answered "${foreign.verdict.preview}")`);
    }
    if (pick('tls-listener')) {
      return said(`${formatBroker(pick('tls-listener')!.seed)} is a TLS listener: set ssl for this check`);
    }
    const tls = pick('tls');
    if (tls && tls.verdict.kind === 'tls') {
      return said(`TLS handshake with ${formatBroker(tls.seed)} failed (${tls.verdict.reason}): is the listener plaintext? (ssl is set)`);
    }
    // Closed without a byte: also what a port forwarder does while nothing listens behind it.
    const closed = pick('closed');
    if (closed) {
      return silent(
        `not a Kafka broker on ${formatBroker(closed.seed)}: it closed the connection on a Kafka request` +
          (f.tlsOptions ? '' : ' (or it is a TLS listener: set ssl)'),
        closed.seed,
      );
    }
    const quiet = pick('silent');
    if (quiet) {
      return silent(`no answer from ${formatBroker(quiet.seed)} within ${f.budget.requestTimeoutMs} ms`, quiet.seed);
    }
    const refused = pick('refused');
    if (refused) {
      return {
        message: describeNetworkError('ECONNREFUSED', formatBroker(refused.seed), refused.seed.host)!,
        unanswered: unansweredFor('ECONNREFUSED', refused.seed.host, refused.seed.port),
      };
    }
    const broken = pick('error');
    if (broken && broken.verdict.kind === 'error') return said(`cannot talk to ${formatBroker(broken.seed)}: ${broken.verdict.reason}`);
    // The probe got a Kafka answer: the failure was kafkajs' own, report it as it is.
  }
  if (name === 'KafkaJSRequestTimeoutError' || /timed out/i.test(message)) {
    return silent(`no answer from ${where} within ${f.budget.requestTimeoutMs} ms while ${f.phase}`, broker);
  }
  if (/Connection timeout/i.test(message)) {
    return silent(`no answer from ${where} within ${f.budget.connectionTimeoutMs} ms (connection timeout)`, broker);
  }
  return said(`kafka error while ${f.phase} on ${where}: ${message}`);
}
