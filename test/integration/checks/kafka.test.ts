// The `kafka` check against a real Kafka-protocol peer (kcat's librdkafka mock cluster here, a
// Redpanda container where Docker answers), a hand-written Kafka protocol double for what the mock
// lacks (ListGroups, SASL), and fault peers. Every run goes through the compiled check in a child
// process, which must exit by itself.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusedPort, silentServer, type TcpPeer } from '../../support/faults.js';
import { runCheck, MARGIN_MS, expectNoSecret } from '../../support/run-check.js';
import { startKafkaPeer, startKafkaProtocolDouble, type KafkaPeer } from '../../support/peers/kafka.js';

const TIMEOUT_MS = 5000;

let peer: KafkaPeer;
let smoke: { partitions: number; replicationFactor: number };

beforeAll(async () => {
  peer = await startKafkaPeer();
  smoke = await peer.createTopic('soma-verify.smoke', 3);
  await peer.createTopic('audit.events', 3);
});

afterAll(async () => {
  await peer?.close();
});

describe('kafka check against a Kafka-protocol cluster', () => {
  it('passes and describes brokers, controller and the required topics', async () => {
    const result = await runCheck(
      'kafka',
      {
        brokers: `kafka://${peer.brokers[0]}`,
        topics: [{ name: 'audit.events', partitions: smoke.partitions, replicationFactor: smoke.replicationFactor }],
      },
      { timeoutMs: TIMEOUT_MS },
    );
    expect(result.status, result.message).toBe('pass');
    const details = result.details as {
      brokerCount: number;
      brokers: Array<{ id: number; host: string; port: number }>;
      controllerId: number | null;
      topics: Record<string, { partitions: number; replicationFactor: number }>;
    };
    expect(details.brokerCount).toBe(peer.brokers.length);
    expect(details.brokers.map((b) => `${b.host}:${b.port}`).sort()).toEqual([...peer.brokers].sort());
    expect(details.controllerId).not.toBeNull();
    expect(details.topics['audit.events']).toMatchObject({ partitions: smoke.partitions });
    expect(result.message).toMatch(/broker/);
  });

  it('fails when the cluster has fewer brokers than minBrokers', async () => {
    const result = await runCheck(
      'kafka',
      { brokers: peer.brokers.join(','), minBrokers: peer.brokers.length + 2 },
      { timeoutMs: TIMEOUT_MS },
    );
    expect(result.status).toBe('fail');
    expect(result.message).toMatch(new RegExp(`${peer.brokers.length} brokers? in the cluster, needs ${peer.brokers.length + 2}`));
  });

  it('this peer auto-creates a topic that a Metadata request names (precondition of the next test)', async () => {
    await peer.nameTopicCarelessly('soma-verify.careless');
    expect(await peer.listTopics()).toContain('soma-verify.careless');
  });

  it('fails on a missing topic, naming it, and does NOT create it', async () => {
    const result = await runCheck(
      'kafka',
      { brokers: peer.brokers, topics: ['audit.operations', 'audit.events'], roundTrip: { topic: 'metrics.streams' } },
      { timeoutMs: TIMEOUT_MS },
    );
    expect(result.status).toBe('fail');
    expect(result.message).toMatch(/topic audit\.operations missing/);
    expect(result.message).toMatch(/round-trip topic metrics\.streams missing/);
    expect(result.message).not.toMatch(/audit\.events/);
    const topics = await peer.listTopics();
    expect(topics).not.toContain('audit.operations');
    expect(topics).not.toContain('metrics.streams');
  });

  it('fails on an under-partitioned, under-replicated topic, naming partitions and replication factor', async () => {
    const result = await runCheck(
      'kafka',
      {
        brokers: peer.brokers,
        topics: [{ name: 'audit.events', partitions: smoke.partitions + 2, replicationFactor: smoke.replicationFactor + 1 }],
      },
      { timeoutMs: TIMEOUT_MS },
    );
    expect(result.status).toBe('fail');
    expect(result.message).toContain(
      `topic audit.events has ${smoke.partitions} partitions, needs ${smoke.partitions + 2} and replication factor ${smoke.replicationFactor}, needs ${smoke.replicationFactor + 1}`,
    );
  });

  it('round trip produces a marked message, consumes it back and reports the latency', async () => {
    const result = await runCheck(
      'kafka',
      { brokers: peer.brokers, roundTrip: { topic: 'soma-verify.smoke' } },
      { timeoutMs: 15_000 },
    );
    expect(result.status, result.message).toBe('pass');
    const details = result.details as { roundTripMs: number; roundTrip: { ok: boolean; partition: number } };
    expect(details.roundTripMs).toBeGreaterThan(0);
    expect(details.roundTrip.ok).toBe(true);
    expect(result.message).toMatch(/round trip \d+(\.\d)? ms/);
  });

  it('a round trip cut by its timeout while the new consumer group waits for its rebalance delay ends the check and the process', async () => {
    // runCheck fails if the child process does not exit by itself: no socket may outlive the check.
    const result = await runCheck(
      'kafka',
      { brokers: peer.brokers, roundTrip: { topic: 'soma-verify.smoke' } },
      { timeoutMs: 1000 },
    );
    expect(result.status).toBe('fail');
    expect(result.message).toMatch(/^timed out after 1000 ms while consuming the round-trip message from soma-verify\.smoke/);
    expect(result.durationMs).toBeLessThan(1000 + MARGIN_MS);
  });

  it('ListGroups unsupported by the broker: groups cannot be verified, and the message says why (Kafka protocol double: the kcat mock has no ListGroups)', async () => {
    const double = await startKafkaProtocolDouble({ topics: [] });
    try {
      const result = await runCheck('kafka', { brokers: double.brokers, groups: ['conversation-worker'] }, { timeoutMs: TIMEOUT_MS });
      expect(result.status).toBe('fail');
      expect(result.message).toMatch(/cannot verify groups conversation-worker: the broker does not support ListGroups/);
    } finally {
      await double.close();
    }
  });
});

describe('kafka check: consumer groups (Kafka protocol double: the kcat mock has no ListGroups)', () => {
  it('passes when the group exists', async () => {
    const double = await startKafkaProtocolDouble({ groups: ['conversation-worker', 'tool-executor'], topics: ['conversation.inbound'] });
    try {
      const result = await runCheck(
        'kafka',
        { brokers: double.brokers, groups: ['conversation-worker'], topics: ['conversation.inbound'] },
        { timeoutMs: TIMEOUT_MS },
      );
      expect(result.status, result.message).toBe('pass');
      expect(result.details).toMatchObject({ groups: { 'conversation-worker': true }, brokerCount: 1, controllerId: 1 });
      expect(double.requests).toContain(16); // ListGroups really went over the wire
    } finally {
      await double.close();
    }
  });

  it('fails naming the missing group', async () => {
    const double = await startKafkaProtocolDouble({ groups: ['tool-executor'] });
    try {
      const result = await runCheck('kafka', { brokers: double.brokers, groups: ['conversation-worker', 'tool-executor'] }, { timeoutMs: TIMEOUT_MS });
      expect(result.status).toBe('fail');
      expect(result.message).toBe('consumer group conversation-worker missing');
    } finally {
      await double.close();
    }
  });
});

describe('kafka check: faults fail within the timeout with a message naming the cause', () => {
  let silent: TcpPeer;
  beforeAll(async () => {
    silent = await silentServer();
  });
  afterAll(async () => {
    await silent?.close();
  });

  it('refused port', async () => {
    const port = await refusedPort();
    const result = await runCheck('kafka', { brokers: `127.0.0.1:${port}` }, { timeoutMs: TIMEOUT_MS });
    expect(result.status).toBe('fail');
    expect(result.message).toBe(`connection refused on 127.0.0.1:${port}`);
    expect(result.wallMs).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
  });

  it('a port that accepts and never answers', async () => {
    const result = await runCheck('kafka', { brokers: `127.0.0.1:${silent.port}` }, { timeoutMs: TIMEOUT_MS });
    expect(result.status).toBe('fail');
    expect(result.message).toMatch(new RegExp(`no answer from 127\\.0\\.0\\.1:${silent.port} within \\d+ ms`));
    expect(result.wallMs).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
  });

  it('Redis on the port (127.0.0.1:6379) is reported as not a Kafka broker', async () => {
    const result = await runCheck('kafka', { brokers: '127.0.0.1:6379' }, { timeoutMs: TIMEOUT_MS });
    expect(result.status).toBe('fail');
    expect(result.message).toMatch(/^not a Kafka broker on 127\.0\.0\.1:6379: it speaks another protocol \(answered "(\+PONG|-NOAUTH|-ERR)/);
    expect(result.wallMs).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
  });

  it('Postgres on the port (127.0.0.1:5432) is reported as not a Kafka broker', async () => {
    const result = await runCheck('kafka', { brokers: '127.0.0.1:5432' }, { timeoutMs: TIMEOUT_MS });
    expect(result.status).toBe('fail');
    expect(result.message).toMatch(/^not a Kafka broker on 127\.0\.0\.1:5432: /);
    expect(result.wallMs).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
  });

  it('an HTTP server on the port is reported as not a Kafka broker', async () => {
    const http = createServer((_req, res) => res.end('hello'));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const { port } = http.address() as AddressInfo;
    try {
      const result = await runCheck('kafka', { brokers: `127.0.0.1:${port}` }, { timeoutMs: TIMEOUT_MS });
      expect(result.status).toBe('fail');
      expect(result.message).toMatch(new RegExp(`^not a Kafka broker on 127\\.0\\.0\\.1:${port}: it speaks another protocol \\(answered "HTTP/1\\.1 400`));
      expect(result.wallMs).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
    } finally {
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
    }
  });

  it('ssl set against a plaintext Kafka listener names the TLS mismatch', async () => {
    const result = await runCheck('kafka', { brokers: peer.brokers[0], ssl: true }, { timeoutMs: TIMEOUT_MS });
    expect(result.status).toBe('fail');
    expect(result.message).toMatch(/TLS handshake with .* failed .*is the listener plaintext\?/);
    expect(result.wallMs).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
  });

  it('bad SASL credentials: authentication failed, password never printed (Kafka protocol double of SASL PLAIN)', async () => {
    const double = await startKafkaProtocolDouble({ refuseSasl: true });
    const password = 'hunter2-s3cret-kafka';
    try {
      const result = await runCheck(
        'kafka',
        { brokers: double.brokers, sasl: { mechanism: 'plain', username: 'soma', password } },
        { timeoutMs: TIMEOUT_MS },
      );
      expect(result.status).toBe('fail');
      expect(result.message).toMatch(/^authentication failed for user soma/);
      expectNoSecret(result.output, password);
      expect(result.wallMs).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
    } finally {
      await double.close();
    }
  });

  it('a whole-check timeout shorter than the peer needs still ends the check and the process', async () => {
    const result = await runCheck('kafka', { brokers: `127.0.0.1:${silent.port}` }, { timeoutMs: 800 });
    expect(result.status).toBe('fail');
    expect(result.message).toMatch(/no answer from|timed out after 800 ms/);
    expect(result.wallMs).toBeLessThan(800 + MARGIN_MS);
  });
});
