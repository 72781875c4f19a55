// `kafka`: speaks the Kafka protocol (kafkajs) and describes the cluster: brokers and controller,
// required topics with their partitions and replication factor, required consumer groups, and,
// only when `roundTrip` is set, produces one marked message to an existing topic and consumes it
// back.
//
// A check must never create a topic by looking. kafkajs (2.2.4) names topics in Metadata
// requests when asked about them; `kafka.admin()` sets `allowAutoTopicCreation: false`, but that
// flag exists only from Metadata v4 on, and a broker that negotiates an older version (librdkafka's
// mock cluster answers v2) creates every topic it is asked about. So this check never names a topic
// in a Metadata request: it sends ONE request for all topics (a null topic array, which creates
// nothing whatever the version), and compares names locally. That same answer carries every
// topic's partitions and replicas, so no second request is needed. The round trip's producer and
// consumer only run after the topic was seen to exist, with `allowAutoTopicCreation: false` too.
import { readFile } from 'node:fs/promises';
import { connect as tcpConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Admin, Consumer, ISocketFactory, Kafka, KafkaConfig, LogEntry, Producer, SASLOptions } from 'kafkajs';
import { defineCheck, type CheckContext, type CheckOutcome } from '../src/check.js';
import { maskCredentials } from '../src/redact.js';
import { abortable, CheckAborted } from '../src/abortable.js';
import { loadKafkajs } from '../src/lazy-modules.js';
import { previewForeignBytes } from '../src/clients/network.js';

// ---------------------------------------------------------------------------------------------
// Options

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
  const entries = (typeof input === 'string' ? [input] : input)
    .flatMap((item) => item.split(/[\s,]+/))
    .filter((item) => item.length > 0);
  if (entries.length === 0) throw new Error('no broker address given');
  return entries.map((entry) => {
    // Listener names such as SASL_SSL:// carry an underscore, which URL schemes do not allow.
    const withoutScheme = entry.replace(/^[a-z][a-z0-9+._-]*:\/\//i, '');
    const authority = withoutScheme.replace(/^[^@/]*@/, '').replace(/\/.*$/, '');
    // Never echo userinfo: maskCredentials does not know listener-style schemes.
    const shown = withoutScheme.replace(/^[^@/]*@/, '***@');
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

const brokersOption = z
  .union([z.string(), z.array(z.string()).min(1)])
  .superRefine((value, issue) => {
    try {
      parseBrokers(value);
    } catch (err) {
      issue.addIssue({ code: 'custom', message: (err as Error).message });
    }
  });

const topicRequirement = z.union([
  z.string().min(1),
  z
    .object({
      name: z.string().min(1),
      partitions: z.number().int().min(1).optional(),
      replicationFactor: z.number().int().min(1).optional(),
    })
    .strict(),
]);

const options = z
  .object({
    brokers: brokersOption,
    minBrokers: z.number().int().min(1).default(1),
    topics: z.array(topicRequirement).default([]),
    groups: z.array(z.string().min(1)).default([]),
    roundTrip: z.object({ topic: z.string().min(1) }).strict().optional(),
    ssl: z
      .union([
        z.boolean(),
        z.object({ caFile: z.string().min(1).optional(), insecure: z.boolean().optional() }).strict(),
      ])
      .optional(),
    sasl: z
      .object({
        mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
        username: z.string().min(1),
        password: z.string(),
      })
      .strict()
      .optional(),
    clientId: z.string().min(1).default('soma-verify'),
  })
  .strict();
type Options = z.infer<typeof options>;

// ---------------------------------------------------------------------------------------------
// Pure comparison of the cluster's topics with the requirements

export interface TopicRequirement {
  name: string;
  partitions?: number;
  replicationFactor?: number;
}

/** What the all-topics Metadata answer says about one topic. */
export interface ObservedTopic {
  name: string;
  partitions: ReadonlyArray<{ partitionId: number; leader: number; replicas: number[]; isr: number[] }>;
}

export interface TopicFacts {
  partitions: number;
  /** The smallest replica count over the topic's partitions. */
  replicationFactor: number;
  underReplicatedPartitions: number;
  offlinePartitions: number;
}

export interface TopicComparison {
  /** Fail-level findings, one short clause each ("topic x missing"). */
  problems: string[];
  /** Reachable but degraded (under-replicated partitions). */
  warnings: string[];
  facts: Record<string, TopicFacts | { missing: true }>;
}

export function normalizeTopics(topics: ReadonlyArray<string | TopicRequirement>): TopicRequirement[] {
  return topics.map((t) => (typeof t === 'string' ? { name: t } : t));
}

export function compareTopics(
  required: readonly TopicRequirement[],
  observed: readonly ObservedTopic[],
): TopicComparison {
  const byName = new Map(observed.map((t) => [t.name, t]));
  const result: TopicComparison = { problems: [], warnings: [], facts: {} };
  for (const want of required) {
    const topic = byName.get(want.name);
    if (!topic) {
      result.problems.push(`topic ${want.name} missing`);
      result.facts[want.name] = { missing: true };
      continue;
    }
    const facts: TopicFacts = {
      partitions: topic.partitions.length,
      replicationFactor: topic.partitions.length
        ? Math.min(...topic.partitions.map((p) => p.replicas.length))
        : 0,
      underReplicatedPartitions: topic.partitions.filter((p) => p.isr.length < p.replicas.length).length,
      offlinePartitions: topic.partitions.filter((p) => p.leader < 0).length,
    };
    result.facts[want.name] = facts;
    const shortfalls: string[] = [];
    if (want.partitions !== undefined && facts.partitions < want.partitions) {
      shortfalls.push(`${facts.partitions} partitions, needs ${want.partitions}`);
    }
    if (want.replicationFactor !== undefined && facts.replicationFactor < want.replicationFactor) {
      shortfalls.push(`replication factor ${facts.replicationFactor}, needs ${want.replicationFactor}`);
    }
    if (shortfalls.length) result.problems.push(`topic ${want.name} has ${shortfalls.join(' and ')}`);
    if (facts.offlinePartitions) {
      result.problems.push(`topic ${want.name} has ${facts.offlinePartitions} partitions without a leader`);
    }
    if (facts.underReplicatedPartitions) {
      result.warnings.push(`topic ${want.name} has ${facts.underReplicatedPartitions} under-replicated partitions`);
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Timeouts and error mapping

interface Budget {
  connectionTimeoutMs: number;
  requestTimeoutMs: number;
}

/**
 * kafkajs timeouts from the check's budget. The request timeout stays well inside the budget so
 * that a silent peer fails with kafkajs' own error, leaving time for the protocol probe below.
 */
export function budgetFor(timeoutMs: number): Budget {
  return {
    connectionTimeoutMs: Math.max(100, Math.min(10_000, Math.round(timeoutMs * 0.5))),
    requestTimeoutMs: Math.max(100, Math.min(30_000, Math.round(timeoutMs * 0.6))),
  };
}

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
  tls: { ca?: Buffer; rejectUnauthorized: boolean } | undefined,
  payload: Buffer,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Exchange> {
  return new Promise((resolve) => {
    let received = Buffer.alloc(0);
    let settled = false;
    const socket: Socket = tls
      ? tlsConnect({ host: address.host, port: address.port, servername: address.host, ...tls })
      : tcpConnect({ host: address.host, port: address.port });
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
 * Tell a Kafka broker from a silent or foreign peer, after kafkajs got no usable answer (it only
 * reports "timed out" or "closed connection"). Two connections at once: one sends a well-formed
 * ApiVersions v0 request, which a Kafka broker answers with our correlation id; the other sends a
 * text line, because a line-based server such as Redis never answers the Kafka request (its
 * inline parser stops at the NUL bytes of the frame and waits for a newline) but answers a line.
 * A Kafka broker just closes the line connection. Hand-written because kafkajs exposes no way to
 * see the raw bytes a peer sent back.
 */
async function probePeer(
  address: BrokerAddress,
  tls: { ca?: Buffer; rejectUnauthorized: boolean } | undefined,
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
    if (!tls && (b[0] === 0x15 || b[0] === 0x16) && b[1] === 0x03) return { kind: 'tls-listener' };
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

function describeError(err: unknown): KafkaFailure {
  if (err instanceof Error) {
    // kafkajs wraps the real error in KafkaJSNumberOfRetriesExceeded (cause) or originalError.
    const inner = (err as { cause?: unknown; originalError?: unknown }).cause ??
      (err as { originalError?: unknown }).originalError;
    if (inner instanceof Error && err.name === 'KafkaJSNumberOfRetriesExceeded') return describeError(inner);
    return { name: err.name, message: err.message };
  }
  return { name: 'Error', message: String(err) };
}

// ---------------------------------------------------------------------------------------------
// The check

export default defineCheck<Options>({
  kind: 'kafka',
  prepare: loadKafkajs,
  options,
  target: (o) => `kafka://${parseBrokers(o.brokers).map(formatBroker).join(',')}`,
  async run(o, ctx) {
    const seeds = parseBrokers(o.brokers);
    const secret = o.sasl?.password;
    // Whatever a broker or kafkajs says goes through here before it reaches the report.
    const clean = (text: string) => {
      const masked = maskCredentials(text);
      return secret && secret.length > 0 ? masked.split(secret).join('***') : masked;
    };
    try {
      const outcome = await inspect(o, ctx, seeds);
      return { ...outcome, message: clean(outcome.message) };
    } catch (err) {
      const { message } = describeError(err);
      return { status: 'fail', message: clean(`kafka check failed unexpectedly: ${message}`) };
    }
  },
});

async function inspect(o: Options, ctx: CheckContext, seeds: BrokerAddress[]): Promise<CheckOutcome> {
  const { Kafka, logLevel } = await loadKafkajs();
  const started = performance.now();
  const deadline = started + ctx.timeoutMs;
  const budget = budgetFor(ctx.timeoutMs);
  const seedList = seeds.map(formatBroker).join(',');
  let tlsOptions: Awaited<ReturnType<typeof resolveTls>>;
  try {
    tlsOptions = await resolveTls(o.ssl);
  } catch (err) {
    return { status: 'fail', message: `cannot read ssl.caFile: ${describeError(err).message}` };
  }
  let phase = 'connecting';

  // kafkajs logs to the console by default; keep its words for the message instead.
  const errorLogs: Array<{ message: string; broker?: string }> = [];
  const logCreator = () => (entry: LogEntry) => {
    if (entry.level <= logLevel.ERROR) {
      const broker = (entry.log as { broker?: unknown }).broker;
      errorLogs.push({ message: entry.log.message, ...(typeof broker === 'string' ? { broker } : {}) });
      if (errorLogs.length > 20) errorLogs.shift();
    }
  };

  const config: KafkaConfig = {
    clientId: o.clientId,
    brokers: seeds.map(formatBroker),
    connectionTimeout: budget.connectionTimeoutMs,
    authenticationTimeout: budget.connectionTimeoutMs,
    requestTimeout: budget.requestTimeoutMs,
    // One attempt per seed broker (kafkajs moves to the next seed on each retry), quickly.
    retry: { retries: Math.min(seeds.length - 1, 2), initialRetryTime: 50, maxRetryTime: 200 },
    logLevel: logLevel.ERROR,
    logCreator,
    ...(tlsOptions ? { ssl: tlsOptions } : {}),
    ...(o.sasl ? { sasl: toKafkajsSasl(o.sasl) } : {}),
  };
  const sockets = new KafkaSockets();
  const kafka: Kafka = new Kafka({ ...config, socketFactory: sockets.factory });
  const clients: Array<Admin | Producer | Consumer> = [];
  const admin = kafka.admin();
  clients.push(admin);

  try {
    await abortable(admin.connect(), ctx.signal, { phase });

    phase = 'reading cluster metadata';
    const metadataStarted = performance.now();
    const cluster = await abortable(admin.describeCluster(), ctx.signal, { phase });
    // The all-topics request: `topics: []` is sent as a null array, which creates nothing.
    const { topics: observedTopics } = await abortable(admin.fetchTopicMetadata({ topics: [] }), ctx.signal, { phase });
    const metadataMs = round(performance.now() - metadataStarted);

    const problems: string[] = [];
    const warnings: string[] = [];
    const brokers = cluster.brokers
      .map((b) => ({ id: b.nodeId, host: b.host, port: b.port }))
      .sort((a, b) => a.id - b.id);
    if (brokers.length < o.minBrokers) {
      problems.push(`${brokers.length} broker${brokers.length === 1 ? '' : 's'} in the cluster, needs ${o.minBrokers}`);
    }
    if (cluster.controller === null) problems.push('the cluster has no controller');

    const required = normalizeTopics(o.topics);
    const topics = compareTopics(required, observedTopics);
    problems.push(...topics.problems);
    warnings.push(...topics.warnings);

    const details: Record<string, unknown> = {
      clusterId: cluster.clusterId,
      brokerCount: brokers.length,
      brokers,
      controllerId: cluster.controller,
      topicCount: observedTopics.filter((t) => !t.name.startsWith('__')).length,
      topics: topics.facts,
      metadataMs,
    };

    if (o.groups.length) {
      phase = 'listing consumer groups';
      const groups = await listGroupIds(admin, ctx.signal, phase);
      if ('unsupported' in groups) {
        problems.push(`cannot verify groups ${o.groups.join(', ')}: ${groups.unsupported}`);
      } else {
        const missing = o.groups.filter((g) => !groups.ids.has(g));
        details.groups = Object.fromEntries(o.groups.map((g) => [g, groups.ids.has(g)]));
        for (const g of missing) problems.push(`consumer group ${g} missing`);
      }
    }

    if (o.roundTrip) {
      const topic = o.roundTrip.topic;
      if (!observedTopics.some((t) => t.name === topic)) {
        problems.push(`round-trip topic ${topic} missing (not created)`);
      } else if (problems.length) {
        details.roundTrip = { skipped: 'not attempted: the cluster already fails' };
      } else {
        phase = `the round trip on topic ${topic}`;
        const trip = await roundTrip(kafka, admin, topic, clients, ctx.signal, () => phase, (p) => (phase = p));
        details.roundTrip = trip;
        if (trip.ok === false) problems.push(`round trip on ${topic} failed: ${trip.error}`);
        else details.roundTripMs = trip.latencyMs;
      }
    }

    const summary = [
      `${brokers.length} broker${brokers.length === 1 ? '' : 's'}`,
      `controller ${cluster.controller ?? 'none'}`,
      ...(required.length ? [`${required.length} topic${required.length === 1 ? '' : 's'} checked`] : []),
      ...(o.groups.length ? [`${o.groups.length} group${o.groups.length === 1 ? '' : 's'} checked`] : []),
      ...(typeof details.roundTripMs === 'number' ? [`round trip ${details.roundTripMs} ms`] : []),
    ].join(', ');
    if (problems.length) return { status: 'fail', message: problems.join('; '), details };
    if (warnings.length) return { status: 'warn', message: `${warnings.join('; ')} (${summary})`, details };
    return { status: 'pass', message: `${summary} on ${seedList}`, details };
  } catch (err) {
    return {
      status: 'fail',
      message: await explainFailure(err, { phase, seeds, tlsOptions, errorLogs, budget, deadline, ctx, sasl: o.sasl }),
    };
  } finally {
    // Leave politely (LeaveGroup, close the connections), but within a second, and not at all
    // once the check was cut: then destroy whatever kafkajs still holds (a JoinGroup the broker
    // keeps waiting for the rebalance delay, a half-open connection), so nothing outlives the check.
    const disconnected = Promise.allSettled(clients.map((c) => c.disconnect()));
    await settledWithin(disconnected, ctx.signal.aborted ? 0 : 1000);
    sockets.destroyAll();
  }
}

/**
 * The sockets kafkajs opens (its default factory, minus keep-alive, which a check does not need),
 * so that the check can close every one of them when it ends: kafkajs has no way to abort.
 */
class KafkaSockets {
  private readonly open = new Set<Socket>();
  private ended = false;

  readonly factory: ISocketFactory = ({ host, port, ssl, onConnect }) => {
    const socket = ssl
      ? tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), ...ssl }, onConnect)
      : tcpConnect({ host, port }, onConnect);
    // kafkajs reacts to 'error' (not to a bare 'close'): a late reconnect fails at once.
    if (this.ended) socket.destroy(new Error('the check has ended'));
    this.open.add(socket);
    socket.once('close', () => this.open.delete(socket));
    return socket;
  };

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

async function listGroupIds(
  admin: Admin,
  signal: AbortSignal,
  phase: string,
): Promise<{ ids: Set<string> } | { unsupported: string }> {
  try {
    const { groups } = await abortable(admin.listGroups(), signal, { phase });
    return { ids: new Set(groups.map((g) => g.groupId)) };
  } catch (err) {
    const { name } = describeError(err);
    if (name === 'KafkaJSServerDoesNotSupportApiKey') {
      return { unsupported: 'the broker does not support ListGroups' };
    }
    throw err;
  }
}

type RoundTripResult =
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
  admin: Admin,
  topic: string,
  clients: Array<Admin | Producer | Consumer>,
  signal: AbortSignal,
  getPhase: () => string,
  setPhase: (phase: string) => void,
): Promise<RoundTripResult> {
  const { Partitioners } = await loadKafkajs();
  const marker = `soma-verify-${randomBytes(6).toString('hex')}`;
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
      throwawayGroup: await deleteThrowawayGroup(consumer, admin, groupId, groupJoined),
    };
  } catch (err) {
    if (err instanceof CheckAborted) throw err;
    return { ok: false, error: describeError(err).message };
  }
}

/** What became of the round trip's consumer group: deleted, never created, or left to expire. */
type ThrowawayGroup = 'deleted' | 'not created' | 'left to expire';

async function deleteThrowawayGroup(consumer: Consumer, admin: Admin, groupId: string, joined: boolean): Promise<ThrowawayGroup> {
  if (!joined) return 'not created';
  const bounded = <T>(work: Promise<T>) =>
    Promise.race([work, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), 1500).unref())]);
  try {
    // The group must be empty before it can be deleted.
    await bounded(consumer.disconnect());
    await bounded(admin.deleteGroups([groupId]));
    return 'deleted';
  } catch {
    // It has no committed offsets: the broker expires it.
    return 'left to expire';
  }
}

interface FailureContext {
  phase: string;
  seeds: BrokerAddress[];
  tlsOptions: { ca?: Buffer; rejectUnauthorized: boolean } | undefined;
  errorLogs: Array<{ message: string; broker?: string }>;
  budget: Budget;
  deadline: number;
  ctx: CheckContext;
  sasl: Options['sasl'];
}

/** One line naming the cause: refused, no answer, not Kafka, TLS, authentication, timeout. */
async function explainFailure(err: unknown, f: FailureContext): Promise<string> {
  const seedList = f.seeds.map(formatBroker).join(',');
  if (err instanceof CheckAborted) {
    return `timed out after ${f.ctx.timeoutMs} ms while ${err.phase} (${seedList})`;
  }
  const { name, message } = describeError(err);
  const lastBroker = [...f.errorLogs].reverse().find((l) => l.broker)?.broker;
  const where = lastBroker ?? formatBroker(f.seeds[0]!);

  if (/ECONNREFUSED/.test(message)) return `connection refused on ${where}`;
  if (/ENOTFOUND|EAI_AGAIN/.test(message)) return `cannot resolve broker host ${where}`;
  if (name === 'KafkaJSSASLAuthenticationError' || /SASL .*authentication failed|Authentication failed/i.test(message)) {
    return `authentication failed for user ${f.sasl?.username ?? '(none)'} (SASL ${f.sasl?.mechanism ?? ''}) on ${where}: ${message}`;
  }
  if (/certificate|ssl|tls|handshake|wrong version number/i.test(message) && f.tlsOptions) {
    return `TLS handshake with ${where} failed: ${message}`;
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
      return `not a Kafka broker on ${formatBroker(foreign.seed)}: it speaks another protocol (answered "${foreign.verdict.preview}")`;
    }
    if (pick('tls-listener')) {
      return `${formatBroker(pick('tls-listener')!.seed)} is a TLS listener: set ssl for this check`;
    }
    const tls = pick('tls');
    if (tls && tls.verdict.kind === 'tls') {
      return `TLS handshake with ${formatBroker(tls.seed)} failed (${tls.verdict.reason}): is the listener plaintext? (ssl is set)`;
    }
    const closed = pick('closed');
    if (closed) {
      return (
        `not a Kafka broker on ${formatBroker(closed.seed)}: it closed the connection on a Kafka request` +
        (f.tlsOptions ? '' : ' (or it is a TLS listener: set ssl)')
      );
    }
    const silent = pick('silent');
    if (silent) {
      return `no answer from ${formatBroker(silent.seed)} within ${f.budget.requestTimeoutMs} ms`;
    }
    const refused = pick('refused');
    if (refused) return `connection refused on ${formatBroker(refused.seed)}`;
    const broken = pick('error');
    if (broken && broken.verdict.kind === 'error') return `cannot talk to ${formatBroker(broken.seed)}: ${broken.verdict.reason}`;
    // The probe got a Kafka answer: the failure was kafkajs' own, report it as it is.
  }
  if (name === 'KafkaJSRequestTimeoutError' || /timed out/i.test(message)) {
    return `no answer from ${where} within ${f.budget.requestTimeoutMs} ms while ${f.phase}`;
  }
  if (/Connection timeout/i.test(message)) {
    return `no answer from ${where} within ${f.budget.connectionTimeoutMs} ms (connection timeout)`;
  }
  return `kafka error while ${f.phase} on ${where}: ${message}`;
}

async function resolveTls(ssl: Options['ssl']): Promise<{ ca?: Buffer; rejectUnauthorized: boolean } | undefined> {
  if (!ssl) return undefined;
  if (ssl === true) return { rejectUnauthorized: true };
  return {
    rejectUnauthorized: !ssl.insecure,
    ...(ssl.caFile ? { ca: await readFile(ssl.caFile) } : {}),
  };
}

function toKafkajsSasl(sasl: NonNullable<Options['sasl']>): SASLOptions {
  return { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password } as SASLOptions;
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
