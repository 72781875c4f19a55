// Kafka peers for the `kafka` check's tests.
//
// startKafkaPeer(): a real Redpanda container through testcontainers when a Docker engine
// answers; else librdkafka's mock cluster, started through Debian's `kcat` (3 brokers on loopback
// ports it picks itself). The mock (librdkafka 2.0.2 here) answers Metadata only up to v2, so it
// auto-creates every topic a Metadata request names (there is no allowAutoTopicCreation field
// before v4), which is exactly the trap the check must avoid. It creates topics with 4 partitions
// and replication factor min(3, brokers), has no working CreateTopics (kafkajs sends it to the
// controller, and the mock reports controller id 0, which is no broker), and no ListGroups,
// DescribeGroups or DeleteGroups. Produce, Fetch and consumer groups (join/sync/leave) work.
//
// startKafkaProtocolDouble(): a few Kafka requests (ApiVersions, Metadata v0-1, ListGroups v0,
// SaslHandshake, SaslAuthenticate) answered by hand on loopback, for what the mock cannot do:
// listing consumer groups, and a broker that refuses SASL credentials.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { announcePeer, dockerAvailable } from '../docker.js';

export interface KafkaPeer {
  provider: 'kcat-mock' | 'testcontainers';
  /** host:port of each bootstrap broker. */
  brokers: string[];
  /** Make a topic exist the way this peer can; returns what it really has. */
  createTopic(name: string, partitions?: number): Promise<{ partitions: number; replicationFactor: number }>;
  /** Name a topic the way a careless client does (a Metadata request, or a producer allowed to auto-create). */
  nameTopicCarelessly(name: string): Promise<void>;
  /** Topic names, read with a separate client through an all-topics Metadata request. */
  listTopics(): Promise<string[]>;
  close(): Promise<void>;
}

const REDPANDA_IMAGE = 'docker.redpanda.com/redpandadata/redpanda:v24.2.4';

export async function startKafkaPeer(): Promise<KafkaPeer> {
  if (await dockerAvailable()) return startRedpanda();
  return startKcatMock();
}

async function adminClient(brokers: string[]) {
  const { Kafka, logLevel } = await import('kafkajs');
  const kafka = new Kafka({
    clientId: 'soma-verify-test-peer',
    brokers,
    logLevel: logLevel.NOTHING,
    retry: { retries: 2 },
    connectionTimeout: 3000,
    requestTimeout: 5000,
  });
  return kafka;
}

async function withAdmin<T>(brokers: string[], work: (admin: import('kafkajs').Admin) => Promise<T>): Promise<T> {
  const admin = (await adminClient(brokers)).admin();
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.disconnect();
  }
}

async function topicFacts(brokers: string[], name: string) {
  const { topics } = await withAdmin(brokers, (a) => a.fetchTopicMetadata({ topics: [] }));
  const topic = topics.find((t) => t.name === name);
  if (!topic) throw new Error(`topic ${name} was not created on the test peer`);
  return {
    partitions: topic.partitions.length,
    replicationFactor: Math.min(...topic.partitions.map((p) => p.replicas.length)),
  };
}

async function startKcatMock(): Promise<KafkaPeer> {
  let proc: ChildProcess;
  try {
    // The consumer keeps the mock cluster alive; its topic is created by kcat itself.
    proc = spawn(
      'kcat',
      ['-X', 'test.mock.num.brokers=3', '-b', 'localhost:1', '-C', '-t', 'kcat-mock-anchor', '-q', '-d', 'mock'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  } catch (err) {
    throw new Error(`cannot start kcat (install Debian's kcat; CI installs it): ${(err as Error).message}`, {
      cause: err,
    });
  }
  let tail = '';
  const bootstrap = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`kcat mock cluster printed no bootstrap.servers within 10 s; stderr: ${tail.slice(-500)}`));
    }, 10_000);
    proc.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new Error(
          err.code === 'ENOENT'
            ? 'kcat not found: install Debian package kcat (CI installs it) to run the Kafka tests'
            : `kcat failed to start: ${err.message}`,
          { cause: err },
        ),
      );
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`kcat exited with code ${code} before the mock cluster was up; stderr: ${tail.slice(-500)}`));
    });
    // Keep draining stderr (the mock logs every request): a full pipe would stall kcat.
    proc.stderr!.on('data', (chunk: Buffer) => {
      tail = (tail + chunk.toString()).slice(-20_000);
      const found = /bootstrap\.servers=(\S+)/.exec(tail);
      if (found?.[1]) {
        clearTimeout(timer);
        resolve(found[1]);
      }
    });
  });
  proc.removeAllListeners('exit');
  const brokers = bootstrap.split(',');
  announcePeer('kafka', 'kcat-mock', bootstrap);
  return {
    provider: 'kcat-mock',
    brokers,
    // The mock has no usable CreateTopics: a named Metadata request auto-creates with its defaults.
    async createTopic(name) {
      await withAdmin(brokers, (a) => a.fetchTopicMetadata({ topics: [name] }));
      return topicFacts(brokers, name);
    },
    async nameTopicCarelessly(name) {
      await withAdmin(brokers, (a) => a.fetchTopicMetadata({ topics: [name] }));
    },
    async listTopics() {
      return withAdmin(brokers, async (a) => (await a.fetchTopicMetadata({ topics: [] })).topics.map((t) => t.name));
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        const killer = setTimeout(() => proc.kill('SIGKILL'), 3000);
        proc.once('exit', () => {
          clearTimeout(killer);
          resolve();
        });
        proc.kill('SIGTERM');
      }),
  };
}

async function startRedpanda(): Promise<KafkaPeer> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const { default: getPort } = await import('get-port');
  // Kafka clients connect to the advertised address, so the host port must be known before the
  // broker starts: pick a free one and map it to itself.
  const hostPort = await getPort();
  const container = await new GenericContainer(REDPANDA_IMAGE)
    .withExposedPorts({ container: 9092, host: hostPort })
    .withCommand([
      'redpanda',
      'start',
      '--mode',
      'dev-container', // auto_create_topics_enabled=true: the "not created" test needs it
      '--smp',
      '1',
      '--kafka-addr',
      'PLAINTEXT://0.0.0.0:9092',
      '--advertise-kafka-addr',
      `PLAINTEXT://127.0.0.1:${hostPort}`,
    ])
    .withWaitStrategy(Wait.forLogMessage(/Successfully started Redpanda!/))
    .withStartupTimeout(120_000)
    .start();
  const brokers = [`127.0.0.1:${hostPort}`];
  announcePeer('kafka', 'testcontainers', `${REDPANDA_IMAGE} at ${brokers[0]}`);
  return {
    provider: 'testcontainers',
    brokers,
    async createTopic(name, partitions = 3) {
      await withAdmin(brokers, (a) => a.createTopics({ topics: [{ topic: name, numPartitions: partitions }] }));
      return topicFacts(brokers, name);
    },
    async nameTopicCarelessly(name) {
      // Admin clients never ask for auto-creation on Metadata v4+; a producer does by default.
      const { Partitioners } = await import('kafkajs');
      const producer = (await adminClient(brokers)).producer({
        allowAutoTopicCreation: true,
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      await producer.connect();
      try {
        await producer.send({ topic: name, messages: [{ value: 'careless' }] });
      } finally {
        await producer.disconnect();
      }
    },
    async listTopics() {
      return withAdmin(brokers, async (a) => (await a.fetchTopicMetadata({ topics: [] })).topics.map((t) => t.name));
    },
    close: async () => {
      await container.stop();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Kafka protocol double

export interface KafkaProtocolDoubleOptions {
  /** Consumer groups ListGroups reports; `undefined` leaves ListGroups out of ApiVersions. */
  groups?: string[];
  /** Topics in Metadata answers (with 1 partition on broker 1). */
  topics?: string[];
  /** Offer SASL PLAIN and refuse every credential. */
  refuseSasl?: boolean;
}

export interface KafkaProtocolDouble {
  provider: 'kafka-protocol-double';
  brokers: string[];
  /** API keys of the requests received, in order. */
  requests: number[];
  close(): Promise<void>;
}

const API = { Metadata: 3, ListGroups: 16, SaslHandshake: 17, ApiVersions: 18, SaslAuthenticate: 36 } as const;

/** Big-endian writer for the few Kafka primitives the answers need. */
export class KafkaWriter {
  private parts: Buffer[] = [];
  int8(v: number) {
    const b = Buffer.alloc(1);
    b.writeInt8(v);
    return this.push(b);
  }
  int16(v: number) {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    return this.push(b);
  }
  int32(v: number) {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    return this.push(b);
  }
  string(v: string | null) {
    if (v === null) return this.int16(-1);
    const bytes = Buffer.from(v);
    return this.int16(bytes.length).push(bytes);
  }
  bytes(v: Buffer) {
    return this.int32(v.length).push(v);
  }
  array<T>(items: readonly T[], each: (w: KafkaWriter, item: T) => void) {
    this.int32(items.length);
    for (const item of items) each(this, item);
    return this;
  }
  push(b: Buffer) {
    this.parts.push(b);
    return this;
  }
  buffer() {
    return Buffer.concat(this.parts);
  }
}

export async function startKafkaProtocolDouble(opts: KafkaProtocolDoubleOptions = {}): Promise<KafkaProtocolDouble> {
  const sockets = new Set<Socket>();
  const requests: number[] = [];
  let port = 0;
  const supported: Array<[number, number, number]> = [
    [API.ApiVersions, 0, 2],
    [API.Metadata, 0, 1],
    ...(opts.groups ? [[API.ListGroups, 0, 0] as [number, number, number]] : []),
    ...(opts.refuseSasl
      ? [
          [API.SaslHandshake, 0, 1] as [number, number, number],
          [API.SaslAuthenticate, 0, 0] as [number, number, number],
        ]
      : []),
  ];

  const answer = (apiKey: number, apiVersion: number): Buffer | undefined => {
    const w = new KafkaWriter();
    switch (apiKey) {
      case API.ApiVersions:
        w.int16(0).array(supported, (x, [key, min, max]) => x.int16(key).int16(min).int16(max));
        if (apiVersion >= 1) w.int32(0); // throttle_time_ms
        return w.buffer();
      case API.Metadata:
        w.array([1], (x, id) => {
          x.int32(id).string('127.0.0.1').int32(port);
          if (apiVersion >= 1) x.string(null); // rack
        });
        if (apiVersion >= 1) w.int32(1); // controller id
        w.array(opts.topics ?? [], (x, name) => {
          x.int16(0).string(name);
          if (apiVersion >= 1) x.int8(0); // is_internal
          x.array([0], (p, id) => p.int16(0).int32(id).int32(1).array([1], (r, n) => r.int32(n)).array([1], (r, n) => r.int32(n)));
        });
        return w.buffer();
      case API.ListGroups:
        return w.int16(0).array(opts.groups ?? [], (x, g) => x.string(g).string('consumer')).buffer();
      case API.SaslHandshake:
        return w.int16(0).array(['PLAIN'], (x, m) => x.string(m)).buffer();
      case API.SaslAuthenticate:
        // 58 = SASL_AUTHENTICATION_FAILED, as a real broker answers a wrong password.
        w.int16(58).string('Authentication failed: Invalid username or password');
        w.int32(0); // empty auth bytes
        return w.buffer();
      default:
        return undefined;
    }
  };

  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4 && pending.length >= 4 + pending.readInt32BE(0)) {
        const frame = pending.subarray(4, 4 + pending.readInt32BE(0));
        pending = pending.subarray(4 + frame.length);
        const apiKey = frame.readInt16BE(0);
        const apiVersion = frame.readInt16BE(2);
        const correlationId = frame.readInt32BE(4);
        requests.push(apiKey);
        const body = answer(apiKey, apiVersion);
        if (!body) {
          socket.destroy(); // what a broker does with a request it does not know
          return;
        }
        const header = Buffer.alloc(8);
        header.writeInt32BE(4 + body.length, 0);
        header.writeInt32BE(correlationId, 4);
        socket.write(Buffer.concat([header, body]));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  const where = `127.0.0.1:${port}`;
  announcePeer('kafka', 'kafka-protocol-double', where);
  return {
    provider: 'kafka-protocol-double',
    brokers: [where],
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
