// The Kafka client: describes the cluster (brokers, controller, every topic's partitions and
// replicas, consumer groups) over the wire itself (./kafka-wire.ts), and, only when asked, runs a
// produce/consume round trip through kafkajs, loaded for it alone. Every socket of a check, ours
// and kafkajs's, goes through one factory, so the check can close them all when it ends (kafkajs
// takes no AbortSignal), and a peer that floods or speaks another protocol is cut at once.
//
// A check must never create a topic by looking. A Metadata request that names a topic creates it
// on a broker that auto-creates topics, unless it says `allow_auto_topic_creation: false`, a field
// that exists only from Metadata v4 on (librdkafka's mock cluster answers up to v2). So this
// client never names a topic: it sends ONE Metadata request for all topics (a null topic array,
// which creates nothing whatever the version), and the check compares names locally. That answer
// carries every topic's partitions and replicas too. The round trip's producer and consumer only
// run after the topic was seen to exist, with `allowAutoTopicCreation: false`.
import { CERT_FILE_MAX_BYTES, readRegularFile } from '../read-file.js';
import type { Socket } from 'node:net';
import type { Admin, Consumer, ISocketFactory, Kafka, KafkaConfig, LogEntry, Producer, SASLOptions } from 'kafkajs';
import type { CheckContext, Unanswered } from '../check.js';
import type { TlsOption } from '../check-options.js';
import { abortable, CheckAborted } from '../abortable.js';
import { loadKafkajs } from '../lazy-modules.js';
import { describeNetworkError, guardForeignBytes, openSocket, type ByteGuard } from './network.js';
import { apiVersions, authenticate, KAFKA_MAX_FRAME, KafkaConnection, KafkaWireError, listGroups, metadata, type ApiVersions } from './kafka-wire.js';
import { describeError, explainFailure, type CutConnection } from './kafka-failure.js';

export interface BrokerAddress {
  host: string;
  port: number;
}

const DEFAULT_KAFKA_PORT = 9092;

/**
 * Parse broker addresses as users write them: `host:port`, comma- or space-separated lists,
 * arrays of those, and URLs such as SomaBrain's `kafka://host:port` (any scheme and any userinfo
 * are dropped: credentials belong in `sasl`). IPv6 literals go in brackets: `[::1]:9092`.
 * A missing port means 9092. Throws on an entry it cannot read.
 */
export function parseBrokers(input: string | readonly string[]): BrokerAddress[] {
  const items = typeof input === 'string' ? [input] : input;
  // A list is split on commas and spaces; an item with credentials only on commas and before a
  // scheme, so that a space inside its password does not make a broker of half of it.
  const entries = items
    .flatMap((item) => item.split(item.includes('@') ? /\s*,\s*|\s+(?=[a-z][a-z0-9+._-]*:\/\/)/i : /[\s,]+/))
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
  if (entries.length === 0) throw new Error('no broker address given');
  // Never echo userinfo: maskCredentials does not know listener-style schemes, and a password may
  // hold a '/' (base64) or a space, which splits it across two entries here.
  const credentials = items.some((item) => item.includes('@'));
  return entries.map((entry) => {
    // Listener names such as SASL_SSL:// carry an underscore, which URL schemes do not allow.
    const withoutScheme = entry.replace(/^[a-z][a-z0-9+._-]*:\/\//i, '');
    const userinfoEnd = withoutScheme.lastIndexOf('@');
    const hostPart = withoutScheme.slice(userinfoEnd + 1);
    const authority = hostPart.replace(/\/.*$/, '');
    const shown = userinfoEnd >= 0 ? `***@${hostPart}` : credentials ? '*** (part of an address with credentials)' : withoutScheme;
    const bracketed = /^\[([0-9a-f:.]+)\](?::(\d+))?$/i.exec(authority);
    const plain = /^([^:[\]]+)(?::(\d+))?$/.exec(authority);
    const match = bracketed ?? plain;
    if (!match || !match[1]) throw new Error(`cannot read broker address "${shown}"`);
    const port = match[2] === undefined ? DEFAULT_KAFKA_PORT : Number(match[2]);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new Error(`broker address "${shown}" has an invalid port`);
    }
    return { host: match[1], port };
  });
}

/** `host:port` as kafkajs and people write it (IPv6 in brackets). */
export function formatBroker({ host, port }: BrokerAddress): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export interface KafkaBudget {
  connectionTimeoutMs: number;
  requestTimeoutMs: number;
}

/**
 * kafkajs timeouts from the check's budget. The request timeout stays well inside the budget so
 * that a silent peer fails with kafkajs' own error, leaving time for the protocol probe below.
 */
export function budgetFor(timeoutMs: number): KafkaBudget {
  return {
    connectionTimeoutMs: Math.max(100, Math.min(10_000, Math.round(timeoutMs * 0.5))),
    requestTimeoutMs: Math.max(100, Math.min(30_000, Math.round(timeoutMs * 0.6))),
  };
}

/** How to reach the cluster. */
export interface KafkaTarget {
  seeds: BrokerAddress[];
  clientId: string;
  ssl?: boolean | TlsOption;
  sasl?: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string };
}

/** What the all-topics Metadata answer says about one topic. */
export interface ObservedTopic {
  name: string;
  /** The error the broker answered for the topic instead of describing it. */
  error?: string;
  partitions: ReadonlyArray<{ partitionId: number; leader: number; replicas: number[]; isr: number[] }>;
}

/** What the cluster said. */
export interface ClusterFacts {
  /** Null before Metadata v2. */
  clusterId: string | null;
  brokers: Array<{ id: number; host: string; port: number }>;
  controller: number | null;
  /** Every topic, internal ones included. */
  topics: ObservedTopic[];
  metadataMs: number;
  /** Consumer group ids, when asked for, or why the broker cannot list them. */
  groups?: { ids: Set<string> } | { unsupported: string };
  /** Advertised brokers this check could not reach (clients connect to those addresses, not the seed). */
  unreachable?: Array<{ id: number; address: string; message: string }>;
}

/**
 * One connection to a cluster for one check: `describe`, then maybe `roundTrip`, then `close`.
 * Every method settles with facts or throws a KafkaClientError whose message names the cause.
 */
export interface KafkaSession {
  describe(withGroups: boolean): Promise<ClusterFacts>;
  roundTrip(topic: string): Promise<RoundTripResult>;
  close(): Promise<void>;
}

/** A failure of the exchange with the cluster, worded for a person (the CLI's redactor masks it like every output). */
export class KafkaClientError extends Error {
  override name = 'KafkaClientError';
  constructor(
    message: string,
    /** Set when the cluster gave no answer at all (see CheckOutcome.unanswered). */
    readonly unanswered?: Unanswered,
  ) {
    super(message);
  }
}

export async function openKafka(target: KafkaTarget, ctx: CheckContext): Promise<KafkaSession> {
  const { seeds } = target;
  const deadline = performance.now() + ctx.timeoutMs;
  const budget = budgetFor(ctx.timeoutMs);
  let tlsOptions: KafkaTls | undefined;
  try {
    tlsOptions = await resolveTls(target.ssl);
  } catch (err) {
    throw new KafkaClientError(`cannot read ssl.caFile: ${describeError(err).message}`);
  }
  let phase = 'connecting';
  // Where each failure happened, and kafkajs's own words during a round trip (it logs them).
  const errorLogs: Array<{ message: string; broker?: string }> = [];
  const sockets = new KafkaSockets();
  const connections: KafkaConnection[] = [];
  const clients: Array<Admin | Producer | Consumer> = [];

  /** `work` with the broker at `address`; a failure is logged with that broker, which the message names. */
  const at = async <T>(address: BrokerAddress, work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (err) {
      errorLogs.push({ message: describeError(err).message, broker: formatBroker(address) });
      throw err;
    }
  };
  /** A connection to one broker, its API versions read and SASL done. */
  const brokerAt = (address: BrokerAddress): Promise<Broker> =>
    at(address, async () => {
      const socket = sockets.connect(address.host, address.port, tlsOptions);
      await connected(socket, tlsOptions !== undefined, budget.connectionTimeoutMs);
      const conn = new KafkaConnection(socket, target.clientId, budget.requestTimeoutMs);
      connections.push(conn);
      const versions = await apiVersions(conn);
      if (target.sasl) await authenticate(conn, versions, target.sasl);
      return { address, conn, versions };
    });
  /** The first seed that answers, trying up to three in turn when one cannot be reached. */
  const bootstrap = async (): Promise<Broker> => {
    for (const [i, seed] of seeds.slice(0, 3).entries()) {
      try {
        return await brokerAt(seed);
      } catch (err) {
        const unreachable = err instanceof KafkaWireError && ['network', 'closed', 'timeout'].includes(err.kind);
        if (!unreachable || i === Math.min(seeds.length, 3) - 1 || ctx.signal.aborted) throw err;
      }
    }
    throw new KafkaWireError('no seed broker', 'network');
  };

  const explained = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (err) {
      const { message, unanswered } = await explainFailure(err, { cut: sockets.tripped(), phase, seeds, tlsOptions, errorLogs, budget, deadline, ctx, sasl: target.sasl });
      throw new KafkaClientError(message, unanswered);
    }
  };

  return {
    describe: (withGroups) =>
      explained(async () => {
        const seed = await abortable(bootstrap(), ctx.signal, { phase });
        phase = 'reading cluster metadata';
        const metadataStarted = performance.now();
        const cluster = await abortable(at(seed.address, () => metadata(seed.conn, seed.versions)), ctx.signal, { phase });
        const facts: ClusterFacts = {
          clusterId: cluster.clusterId,
          brokers: cluster.brokers.sort((a, b) => a.id - b.id),
          controller: cluster.controller,
          topics: cluster.topics,
          metadataMs: round(performance.now() - metadataStarted),
        };
        phase = 'connecting to every advertised broker';
        const reached = await abortable(reachAll(cluster.brokers, seed, brokerAt), ctx.signal, { phase });
        const unreachable = cluster.brokers.flatMap((b) => {
          const r = reached.get(formatBroker(b));
          return r && 'message' in r ? [{ id: b.id, address: formatBroker(b), message: r.message }] : [];
        });
        facts.unreachable = unreachable;
        if (withGroups && unreachable.length === 0) {
          phase = 'listing consumer groups';
          facts.groups = await abortable(listAllGroups([...reached.values()] as Broker[], at), ctx.signal, { phase });
        }
        return facts;
      }),
    roundTrip: (topic) =>
      explained(async () => {
        phase = `the round trip on topic ${topic}`;
        const kafka = await kafkajsClient(target, budget, tlsOptions, sockets, errorLogs);
        return roundTrip(kafka, topic, clients, ctx.signal, () => phase, (p) => (phase = p));
      }),
    async close() {
      for (const conn of connections) conn.close();
      // Leave politely (LeaveGroup, close the connections), but within a second, and not at all
      // once the check was cut: then destroy whatever kafkajs still holds (a JoinGroup the broker
      // keeps waiting for the rebalance delay, a half-open connection), so nothing outlives the check.
      const disconnected = Promise.allSettled(clients.map((c) => c.disconnect()));
      await settledWithin(disconnected, ctx.signal.aborted ? 0 : 1000);
      sockets.destroyAll();
    },
  };
}

/** A broker this session talks to. */
interface Broker {
  address: BrokerAddress;
  conn: KafkaConnection;
  versions: ApiVersions;
}

/** The socket has connected (and finished its TLS handshake), within `timeoutMs`. */
function connected(socket: Socket, tls: boolean, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      socket.off(tls ? 'secureConnect' : 'connect', onConnect).off('error', onError).off('close', onClose);
      if (err) {
        socket.destroy();
        reject(err);
      } else resolve();
    };
    const onConnect = () => done();
    // A listener that closes on a TLS ClientHello is often a plaintext one: the probe tells.
    const onError = (err: NodeJS.ErrnoException) =>
      done(tls && err.code === 'ECONNRESET' ? new KafkaWireError('Closed connection', 'closed') : new KafkaWireError(err.message, 'network', err.code));
    const onClose = () => done(new KafkaWireError('Closed connection', 'closed'));
    const timer = setTimeout(() => done(new KafkaWireError('Connection timeout', 'timeout')), timeoutMs);
    socket.once(tls ? 'secureConnect' : 'connect', onConnect).once('error', onError).once('close', onClose);
  });
}

const MAX_BROKERS = 256;

/**
 * A connection to every advertised listener (each once; the seed's is reused), or why there is
 * none: a client is sent to these addresses, so one it cannot reach is a broken cluster for it,
 * whatever the seed answers. Bounded, since the count comes from the peer.
 */
async function reachAll(
  brokers: ReadonlyArray<{ host: string; port: number }>,
  seed: Broker,
  brokerAt: (address: BrokerAddress) => Promise<Broker>,
): Promise<Map<string, Broker | { message: string }>> {
  const addresses = new Map(brokers.map((b) => [formatBroker(b), { host: b.host, port: b.port }]));
  if (addresses.size > MAX_BROKERS) throw new KafkaWireError(`the cluster lists ${addresses.size} brokers, more than the ${MAX_BROKERS} a check connects to`, 'broker');
  const reached = new Map<string, Broker | { message: string }>();
  await Promise.all(
    [...addresses].map(async ([key, address]) => {
      if (key === formatBroker(seed.address)) return void reached.set(key, seed);
      reached.set(
        key,
        await brokerAt(address).catch((err: unknown) => ({
          message: describeNetworkError((err as { code?: string }).code, key, address.host) ?? describeError(err).message,
        })),
      );
    }),
  );
  return reached;
}

/**
 * Every group of the cluster: each broker lists those it coordinates. One broker without
 * ListGroups (librdkafka's mock has none) means the groups cannot be known.
 */
async function listAllGroups(
  brokers: Broker[],
  at: <T>(address: BrokerAddress, work: () => Promise<T>) => Promise<T>,
): Promise<{ ids: Set<string> } | { unsupported: string }> {
  const lists = await Promise.all(brokers.map((b) => at(b.address, () => listGroups(b.conn, b.versions))));
  if (lists.some((ids) => ids === undefined)) return { unsupported: 'the broker does not support ListGroups' };
  return { ids: new Set(lists.flat() as string[]) };
}

/** A kafkajs client over this session's sockets, for the round trip only. */
async function kafkajsClient(
  target: KafkaTarget,
  budget: KafkaBudget,
  tlsOptions: KafkaTls | undefined,
  sockets: KafkaSockets,
  errorLogs: Array<{ message: string; broker?: string }>,
): Promise<Kafka> {
  const { Kafka, logLevel } = await loadKafkajs();
  // kafkajs logs to the console by default; keep its words for the message instead.
  const logCreator = () => (entry: LogEntry) => {
    if (entry.level <= logLevel.ERROR) {
      const broker = (entry.log as { broker?: unknown }).broker;
      errorLogs.push({ message: entry.log.message, ...(typeof broker === 'string' ? { broker } : {}) });
      if (errorLogs.length > 20) errorLogs.shift();
    }
  };
  const config: KafkaConfig = {
    clientId: target.clientId,
    brokers: target.seeds.map(formatBroker),
    connectionTimeout: budget.connectionTimeoutMs,
    authenticationTimeout: budget.connectionTimeoutMs,
    requestTimeout: budget.requestTimeoutMs,
    // One attempt per seed broker (kafkajs moves to the next seed on each retry), quickly.
    retry: { retries: Math.min(target.seeds.length - 1, 2), initialRetryTime: 50, maxRetryTime: 200 },
    logLevel: logLevel.ERROR,
    logCreator,
    ...(tlsOptions ? { ssl: tlsOptions } : {}),
    ...(target.sasl ? { sasl: target.sasl as SASLOptions } : {}),
  };
  return new Kafka({ ...config, socketFactory: sockets.factory });
}

// The most a connection may carry, kafkajs's fetches included (one message is read back).
const KAFKA_MAX_BYTES = 64 * 1024 * 1024;

/** A checker of Kafka's framing, chunk by chunk: each response's size must be plausible. */
function kafkaFraming(): (chunk: Buffer) => boolean {
  let header = Buffer.alloc(0);
  let remaining = 0;
  return (chunk) => {
    let i = 0;
    while (i < chunk.length) {
      if (remaining > 0) {
        const n = Math.min(remaining, chunk.length - i);
        remaining -= n;
        i += n;
        continue;
      }
      const take = chunk.subarray(i, i + 4 - header.length);
      header = Buffer.concat([header, take]);
      i += take.length;
      if (header.length < 4) break;
      const size = header.readInt32BE(0);
      header = Buffer.alloc(0);
      if (size < 4 || size > KAFKA_MAX_FRAME) return false;
      remaining = size;
    }
    return true;
  };
}

/**
 * Every socket of a check's session, this client's and kafkajs's, so that the check can close all
 * of them when it ends: kafkajs has no way to abort.
 */
class KafkaSockets {
  private readonly open = new Set<Socket>();
  private readonly guards: Array<{ guard: ByteGuard; where: string }> = [];
  private ended = false;

  /** A guarded connection, for this client and for kafkajs's round trip alike. */
  connect(host: string, port: number, ssl: KafkaTls | undefined, onConnect?: () => void): Socket {
    const socket = openSocket(host, port, ssl, onConnect);
    // A flooding or foreign peer is cut before its bytes are buffered.
    this.guards.push({
      guard: guardForeignBytes(socket, { protocol: 'Kafka', accepts: kafkaFraming(), maxBytes: KAFKA_MAX_BYTES }),
      where: formatBroker({ host, port }),
    });
    // kafkajs reacts to 'error' (not to a bare 'close'): a late reconnect fails at once.
    if (this.ended) socket.destroy(new Error('the check has ended'));
    this.open.add(socket);
    socket.once('close', () => this.open.delete(socket));
    return socket;
  }

  /** kafkajs's socket factory (its default, minus keep-alive, which a check does not need). */
  readonly factory: ISocketFactory = ({ host, port, ssl, onConnect }) => this.connect(host, port, ssl ? (ssl as KafkaTls) : undefined, onConnect);

  /** The first connection the guard cut, if any: the real cause of what kafkajs reports. */
  tripped(): CutConnection | undefined {
    const cut = this.guards.find((g) => g.guard.tripped);
    return cut && { error: cut.guard.tripped!, where: cut.where };
  }

  destroyAll(): void {
    this.ended = true;
    for (const socket of this.open) socket.destroy(new Error('the check has ended'));
  }
}

/** Wait for `work`, at most `ms` (0: not at all), leaving no timer behind. */
async function settledWithin(work: Promise<unknown>, ms: number): Promise<void> {
  if (ms <= 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

export type RoundTripResult =
  | {
      ok: true;
      /** From send to the message read back, the new group's join (rebalance delay) included. */
      latencyMs: number;
      produceAckMs: number;
      partition: number;
      offset: string;
      throwawayGroup: ThrowawayGroup;
    }
  | { ok: false; error: string; throwawayGroup?: ThrowawayGroup };

/**
 * Produce one marked message and read it back with a throwaway consumer group, then delete the
 * group (best effort: not every broker supports DeleteGroups). The topic was seen to exist before
 * this runs; producer and consumer are still told not to create topics.
 */
async function roundTrip(
  kafka: Kafka,
  topic: string,
  clients: Array<Admin | Producer | Consumer>,
  signal: AbortSignal,
  getPhase: () => string,
  setPhase: (phase: string) => void,
): Promise<RoundTripResult> {
  const { Partitioners } = await loadKafkajs();
  const marker = `soma-verify-${process.getBuiltinModule('node:crypto').randomBytes(6).toString('hex')}`;
  const groupId = `${marker}-probe`;
  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { retries: 0 },
  });
  clients.push(producer);
  const started = performance.now();
  setPhase(`producing the round-trip message to ${topic}`);
  await abortable(producer.connect(), signal, { phase: getPhase() });
  const [written] = await abortable(
    producer.send({
      topic,
      acks: -1,
      messages: [{ key: marker, value: JSON.stringify({ somaVerify: 'round-trip', at: new Date().toISOString() }) }],
    }),
    signal,
    { phase: getPhase() },
  );
  if (!written || written.errorCode !== 0 || written.baseOffset === undefined) {
    return { ok: false, error: `produce answered error code ${written?.errorCode ?? 'none'}` };
  }
  const produceAckMs = round(performance.now() - started);

  setPhase(
    `consuming the round-trip message from ${topic} (a new consumer group can wait ` +
      'group.initial.rebalance.delay.ms, 3 s by default: give this check a longer timeout)',
  );
  const consumer = kafka.consumer({
    groupId,
    allowAutoTopicCreation: false,
    // One message is read back: small fetches keep a busy topic within the connection's byte cap.
    maxBytes: 1024 * 1024,
    maxBytesPerPartition: 1024 * 1024,
    // Brokers refuse a session timeout under group.min.session.timeout.ms (6 s by default); the
    // consumer leaves explicitly, so this only matters if the process dies.
    sessionTimeout: 10_000,
    rebalanceTimeout: 10_000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: 100,
    retry: { retries: 0, restartOnFailure: async () => false },
  });
  clients.push(consumer);
  let groupJoined = false;
  try {
    const received = new Promise<number>((resolve, reject) => {
      consumer.on(consumer.events.CRASH, (event) => reject(event.payload.error));
      consumer.on(consumer.events.GROUP_JOIN, () => (groupJoined = true));
      consumer
        .connect()
        .then(() => consumer.subscribe({ topics: [topic], fromBeginning: false }))
        .then(() =>
          consumer.run({
            autoCommit: false,
            eachMessage: async ({ message }) => {
              if (message.key?.toString() === marker) resolve(performance.now());
            },
          }),
        )
        // Start reading where the marked message was written, whatever the group's reset policy.
        .then(() => consumer.seek({ topic, partition: written.partition, offset: written.baseOffset! }))
        .catch(reject);
    });
    const receivedAt = await abortable(received, signal, { phase: getPhase() });
    return {
      ok: true,
      latencyMs: round(receivedAt - started),
      produceAckMs,
      partition: written.partition,
      offset: written.baseOffset,
      throwawayGroup: await deleteThrowawayGroup(kafka, clients, consumer, groupId, groupJoined),
    };
  } catch (err) {
    if (err instanceof CheckAborted) throw err;
    return { ok: false, error: describeError(err).message };
  }
}

/** What became of the round trip's consumer group: deleted, never created, or left to expire. */
type ThrowawayGroup = 'deleted' | 'not created' | 'left to expire';

async function deleteThrowawayGroup(
  kafka: Kafka,
  clients: Array<Admin | Producer | Consumer>,
  consumer: Consumer,
  groupId: string,
  joined: boolean,
): Promise<ThrowawayGroup> {
  if (!joined) return 'not created';
  const bounded = <T>(work: Promise<T>) =>
    Promise.race([work, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), 1500).unref())]);
  try {
    // The group must be empty before it can be deleted.
    await bounded(consumer.disconnect());
    const admin = kafka.admin();
    clients.push(admin);
    await bounded(admin.connect());
    await bounded(admin.deleteGroups([groupId]));
    return 'deleted';
  } catch {
    // It has no committed offsets: the broker expires it.
    return 'left to expire';
  }
}

/** A TLS setting for kafkajs. */
export type KafkaTls = { ca?: Buffer; rejectUnauthorized: boolean };

async function resolveTls(ssl: KafkaTarget['ssl']): Promise<KafkaTls | undefined> {
  if (!ssl) return undefined;
  if (ssl === true) return { rejectUnauthorized: true };
  return {
    rejectUnauthorized: !ssl.insecure,
    ...(ssl.caFile ? { ca: await readRegularFile(ssl.caFile, CERT_FILE_MAX_BYTES) } : {}),
  };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
