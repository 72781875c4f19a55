// Pure helpers of the kafka check: reading broker lists as users and SomaBrain write them, and
// comparing the cluster's topics with the requirements.
import { describe, expect, it } from 'vitest';
import { compareTopics } from '../../checks/kafka.js';
import { budgetFor, formatBroker, parseBrokers, type ObservedTopic } from '../../src/clients/kafka.js';

describe('parseBrokers', () => {
  it('reads host:port, comma and space separated lists, and arrays', () => {
    expect(parseBrokers('a:9092')).toEqual([{ host: 'a', port: 9092 }]);
    expect(parseBrokers('a:1, b:2 c:3')).toEqual([
      { host: 'a', port: 1 },
      { host: 'b', port: 2 },
      { host: 'c', port: 3 },
    ]);
    expect(parseBrokers(['a:1,b:2', 'c:3']).map(formatBroker)).toEqual(['a:1', 'b:2', 'c:3']);
  });

  it("strips SomaBrain's kafka:// scheme, other schemes, userinfo and a trailing slash", () => {
    expect(parseBrokers('kafka://somabrain_kafka:9092')).toEqual([{ host: 'somabrain_kafka', port: 9092 }]);
    expect(parseBrokers('SASL_SSL://user:pw@broker:9093/')).toEqual([{ host: 'broker', port: 9093 }]);
  });

  it('defaults the port to 9092 and reads bracketed IPv6', () => {
    expect(parseBrokers('kafka')).toEqual([{ host: 'kafka', port: 9092 }]);
    expect(parseBrokers('[::1]:30102')).toEqual([{ host: '::1', port: 30102 }]);
    expect(formatBroker({ host: '::1', port: 30102 })).toBe('[::1]:30102');
  });

  it('rejects empty lists and bad ports, without echoing credentials', () => {
    expect(() => parseBrokers(' , ')).toThrow(/no broker address/);
    expect(() => parseBrokers('a:99999')).toThrow(/invalid port/);
    expect(() => parseBrokers('kafka://u:topsecret@a:0')).toThrow(/invalid port/);
    expect(() => parseBrokers('kafka://u:topsecret@a:x')).toThrow(/^cannot read broker address "\*\*\*@a:x"$/);
    expect(() => parseBrokers('SASL_SSL://u:topsecret@a:0')).toThrow(/^broker address "\*\*\*@a:0" has an invalid port$/);
  });
});

describe('compareTopics', () => {
  const partition = (id: number, replicas: number[], isr = replicas, leader = replicas[0] ?? -1) => ({
    partitionId: id,
    leader,
    replicas,
    isr,
  });
  const observed: ObservedTopic[] = [
    { name: 'audit.events', partitions: [0, 1, 2].map((i) => partition(i, [1, 2, 3])) },
    { name: 'audit.operations', partitions: [0, 1, 2, 3].map((i) => partition(i, [1, 2])) },
    { name: 'metrics.streams', partitions: [partition(0, [1, 2, 3], [1]), partition(1, [1, 2, 3], [1, 2, 3], -1)] },
  ];

  it('accepts topics that meet partitions and replication factor (seed 003 audit.events 3/3)', () => {
    const r = compareTopics([{ name: 'audit.events', partitions: 3, replicationFactor: 3 }], observed);
    expect(r.problems).toEqual([]);
    expect(r.facts['audit.events']).toEqual({
      partitions: 3,
      replicationFactor: 3,
      underReplicatedPartitions: 0,
      offlinePartitions: 0,
    });
  });

  it('names each missing or under-sized topic', () => {
    const r = compareTopics(
      [{ name: 'audit.operations', partitions: 6, replicationFactor: 3 }, { name: 'conversation.inbound' }],
      observed,
    );
    expect(r.problems).toEqual([
      'topic audit.operations has 4 partitions, needs 6 and replication factor 2, needs 3',
      'topic conversation.inbound missing',
    ]);
    expect(r.facts['conversation.inbound']).toEqual({ missing: true });
  });

  it('fails on partitions without a leader and warns on under-replicated ones', () => {
    const r = compareTopics([{ name: 'metrics.streams' }], observed);
    expect(r.problems).toEqual(['topic metrics.streams has 1 partitions without a leader']);
    expect(r.warnings).toEqual(['topic metrics.streams has 1 under-replicated partitions']);
  });
});

describe('budgetFor', () => {
  it('keeps kafkajs timeouts inside the check budget', () => {
    for (const timeoutMs of [300, 5000, 30_000, 120_000]) {
      const b = budgetFor(timeoutMs);
      expect(b.requestTimeoutMs).toBeLessThan(Math.max(timeoutMs, 200));
      expect(b.connectionTimeoutMs).toBeLessThan(Math.max(timeoutMs, 200));
    }
  });
});
