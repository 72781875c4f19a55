// judge() of checks/kafka.ts on facts as src/clients/kafka.ts reports them: no broker.
import { describe, expect, it } from 'vitest';
import { judge, type KafkaFacts } from '../../checks/kafka.js';

const partition = (partitionId: number, replicas = [1, 2, 3], isr = replicas, leader = 1) => ({ partitionId, leader, replicas, isr });
const cluster = (over: Partial<KafkaFacts> = {}): KafkaFacts => ({
  seeds: 'k1:9092',
  clusterId: 'c1',
  brokers: [1, 2, 3].map((id) => ({ id, host: `k${id}`, port: 9092 })),
  controller: 1,
  topics: [
    { name: 'audit.events', partitions: [partition(0), partition(1), partition(2)] },
    { name: '__consumer_offsets', partitions: [partition(0)] },
  ],
  metadataMs: 1.2,
  ...over,
});
const options = (over: Record<string, unknown> = {}) => ({ brokers: 'k1:9092', minBrokers: 1, topics: [], groups: [], clientId: 'soma-verify', ...over }) as Parameters<typeof judge>[1];

describe('kafka judge', () => {
  it('passes a cluster, summarising brokers, controller and checks, and counts user topics only', () => {
    const v = judge(cluster(), options({ topics: ['audit.events'] }));
    expect(v).toMatchObject({ status: 'pass', message: '3 brokers, controller 1, 1 topic checked on k1:9092' });
    expect(v.details).toMatchObject({ clusterId: 'c1', brokerCount: 3, controllerId: 1, topicCount: 1, metadataMs: 1.2 });
  });

  it('fails too few brokers and a missing controller', () => {
    expect(judge(cluster({ controller: null }), options({ minBrokers: 4 })).message).toBe(
      '3 brokers in the cluster, needs 4; the cluster has no controller',
    );
  });

  it('fails a required topic the broker answered an error for, even with no partition to judge', () => {
    const v = judge(cluster({ topics: [{ name: 'audit.events', error: 'TOPIC_AUTHORIZATION_FAILED', partitions: [] }] }), options({ topics: ['audit.events'] }));
    expect(v).toMatchObject({ status: 'fail', message: 'topic audit.events: the broker answered TOPIC_AUTHORIZATION_FAILED' });
    expect(v.details?.topics).toEqual({ 'audit.events': { error: 'TOPIC_AUTHORIZATION_FAILED' } });
  });

  it('fails missing topics and groups; says why groups cannot be verified', () => {
    const v = judge(cluster({ groups: { ids: new Set(['a']) } }), options({ topics: ['nope'], groups: ['a', 'b'] }));
    expect(v.message).toBe('topic nope missing; consumer group b missing');
    expect(v.details?.groups).toEqual({ a: true, b: false });
    expect(judge(cluster({ groups: { unsupported: 'the broker does not support ListGroups' } }), options({ groups: ['a'] })).message).toBe(
      'cannot verify groups a: the broker does not support ListGroups',
    );
  });

  it('warns on under-replicated partitions, with the summary', () => {
    const topics = [{ name: 't', partitions: [partition(0, [1, 2, 3], [1])] }];
    expect(judge(cluster({ topics }), options({ topics: ['t'] }))).toMatchObject({
      status: 'warn',
      message: 'topic t has 1 under-replicated partitions (3 brokers, controller 1, 1 topic checked)',
    });
  });

  it('round trip: missing topic fails, a failing cluster skips it, its result is reported', () => {
    expect(judge(cluster(), options({ roundTrip: { topic: 'x' } })).message).toBe('round-trip topic x missing (not created)');
    const skipped = judge(cluster(), options({ minBrokers: 5, roundTrip: { topic: 'audit.events' } }));
    expect(skipped.details?.roundTrip).toEqual({ skipped: 'not attempted: the cluster already fails' });
    const ok = judge(
      cluster({ roundTrip: { ok: true, latencyMs: 12.3, produceAckMs: 2, partition: 0, offset: '5', throwawayGroup: 'deleted' } }),
      options({ roundTrip: { topic: 'audit.events' } }),
    );
    expect(ok).toMatchObject({ status: 'pass', message: '3 brokers, controller 1, round trip 12.3 ms on k1:9092', details: { roundTripMs: 12.3 } });
    const failed = judge(cluster({ roundTrip: { ok: false, error: 'boom' } }), options({ roundTrip: { topic: 'audit.events' } }));
    expect(failed.message).toBe('round trip on audit.events failed: boom');
  });
});

describe('advertised brokers', () => {
  it('fails a broker the check could not reach at the address it advertises, naming it', async () => {
    const { judge } = await import('../../checks/kafka.js');
    const v = judge(
      { seeds: '127.0.0.1:9092', clusterId: 'c', brokers: [{ id: 1, host: '127.0.0.1', port: 9092 }, { id: 2, host: 'kafka-2.internal', port: 9092 }], controller: 1, topics: [], metadataMs: 1, unreachable: [{ id: 2, address: 'kafka-2.internal:9092', message: 'host kafka-2.internal not found' }] },
      { minBrokers: 1, topics: [], groups: [] } as never,
    );
    expect(v.status).toBe('fail');
    expect(v.message).toContain('broker 2 advertises kafka-2.internal:9092, which cannot be reached: host kafka-2.internal not found');
  });
});
