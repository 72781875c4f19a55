// `kafka`: describes the cluster through src/clients/kafka.ts (brokers and controller, every
// topic's partitions and replicas, consumer groups) and judges it against the options: enough
// brokers, a controller, the required topics with their partitions and replication factor, the
// required consumer groups. Only when `roundTrip` is set, and only once the cluster passes, it
// produces one marked message to an existing topic and consumes it back. Looking never creates a
// topic (see the client for how).
import * as v from 'valibot';
import { defineCheck, type CheckOutcome } from '../src/check.js';
import { tlsOption } from '../src/check-options.js';
import { loadKafkajs } from '../src/lazy-modules.js';
import {
  formatBroker,
  KafkaClientError,
  openKafka,
  parseBrokers,
  type ClusterFacts,
  type ObservedTopic,
  type RoundTripResult,
} from '../src/clients/kafka.js';
import { describeError } from '../src/clients/kafka-failure.js';

/** What is wrong with a broker list, in parseBrokers' words; undefined when it reads. */
function brokersProblem(value: string | string[]): string | undefined {
  try {
    parseBrokers(value);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

const brokersOption = v.pipe(
  v.union([v.string(), v.pipe(v.array(v.string()), v.minLength(1))]),
  v.check((value) => !brokersProblem(value), (issue) => brokersProblem(issue.input)!),
);

const topicRequirement = v.union([
  v.pipe(v.string(), v.minLength(1)),
  v.strictObject({
    name: v.pipe(v.string(), v.minLength(1)),
    partitions: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
    replicationFactor: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
  }),
]);

const options = v.strictObject({
  brokers: brokersOption,
  minBrokers: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 1),
  topics: v.optional(v.array(topicRequirement), []),
  groups: v.optional(v.array(v.pipe(v.string(), v.minLength(1))), []),
  roundTrip: v.optional(v.strictObject({ topic: v.pipe(v.string(), v.minLength(1)) })),
  ssl: v.optional(v.union([v.boolean(), tlsOption])),
  sasl: v.optional(
    v.strictObject({
      mechanism: v.picklist(['plain', 'scram-sha-256', 'scram-sha-512']),
      username: v.pipe(v.string(), v.minLength(1)),
      password: v.string(),
    }),
  ),
  clientId: v.optional(v.pipe(v.string(), v.minLength(1)), 'soma-verify'),
});
type Options = v.InferOutput<typeof options>;

export interface TopicRequirement {
  name: string;
  partitions?: number;
  replicationFactor?: number;
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
  facts: Record<string, TopicFacts | { missing: true } | { error: string }>;
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
    if (topic.error) {
      result.problems.push(`topic ${want.name}: the broker answered ${topic.error}`);
      result.facts[want.name] = { error: topic.error };
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

/** What the client found: the cluster, and the round trip when one ran. */
export interface KafkaFacts extends ClusterFacts {
  seeds: string;
  roundTrip?: RoundTripResult;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The verdict on what the cluster said; pure, so it is tested without a broker. */
export function judge(f: KafkaFacts, o: Options): CheckOutcome {
  const problems: string[] = [];
  const warnings: string[] = [];
  if (f.brokers.length < o.minBrokers) problems.push(`${plural(f.brokers.length, 'broker')} in the cluster, needs ${o.minBrokers}`);
  // Clients go to the addresses the brokers advertise: one this check cannot reach, they cannot either.
  for (const u of f.unreachable ?? []) problems.push(`broker ${u.id} advertises ${u.address}, which cannot be reached: ${u.message}`);
  if (f.controller === null) problems.push('the cluster has no controller');
  const required = normalizeTopics(o.topics);
  const topics = compareTopics(required, f.topics);
  problems.push(...topics.problems);
  warnings.push(...topics.warnings);
  const details: Record<string, unknown> = {
    clusterId: f.clusterId,
    brokerCount: f.brokers.length,
    brokers: f.brokers,
    controllerId: f.controller,
    topicCount: f.topics.filter((t) => !t.name.startsWith('__')).length,
    topics: topics.facts,
    metadataMs: f.metadataMs,
  };
  if (o.groups.length && f.groups) {
    if ('unsupported' in f.groups) {
      problems.push(`cannot verify groups ${o.groups.join(', ')}: ${f.groups.unsupported}`);
    } else {
      const ids = f.groups.ids;
      details.groups = Object.fromEntries(o.groups.map((g) => [g, ids.has(g)]));
      for (const g of o.groups.filter((g) => !ids.has(g))) problems.push(`consumer group ${g} missing`);
    }
  }
  if (o.roundTrip) {
    const topic = o.roundTrip.topic;
    if (!f.topics.some((t) => t.name === topic)) {
      problems.push(`round-trip topic ${topic} missing (not created)`);
    } else if (problems.length) {
      details.roundTrip = { skipped: 'not attempted: the cluster already fails' };
    } else if (f.roundTrip) {
      details.roundTrip = f.roundTrip;
      if (f.roundTrip.ok === false) problems.push(`round trip on ${topic} failed: ${f.roundTrip.error}`);
      else details.roundTripMs = f.roundTrip.latencyMs;
    }
  }
  const summary = [
    plural(f.brokers.length, 'broker'),
    `controller ${f.controller ?? 'none'}`,
    ...(required.length ? [`${plural(required.length, 'topic')} checked`] : []),
    ...(o.groups.length ? [`${plural(o.groups.length, 'group')} checked`] : []),
    ...(typeof details.roundTripMs === 'number' ? [`round trip ${details.roundTripMs} ms`] : []),
  ].join(', ');
  if (problems.length) return { status: 'fail', message: problems.join('; '), details };
  if (warnings.length) return { status: 'warn', message: `${warnings.join('; ')} (${summary})`, details };
  return { status: 'pass', message: `${summary} on ${f.seeds}`, details };
}

export default defineCheck<Options>({
  kind: 'kafka',
  // kafkajs is for the round trip only: describing the cluster needs no driver.
  prepare: (planned) => (planned.some((o) => o.roundTrip) ? loadKafkajs() : undefined),
  options,
  target: (o) => `kafka://${parseBrokers(o.brokers).map(formatBroker).join(',')}`,
  async run(o, ctx) {
    const seeds = parseBrokers(o.brokers);
    try {
      const session = await openKafka({ seeds, clientId: o.clientId, ssl: o.ssl, sasl: o.sasl }, ctx);
      try {
        const facts: KafkaFacts = { ...(await session.describe(o.groups.length > 0)), seeds: seeds.map(formatBroker).join(',') };
        const topic = o.roundTrip?.topic;
        // The round trip writes: only to a topic that exists, and only when the cluster passes.
        if (topic && facts.topics.some((t) => t.name === topic) && judge(facts, o).status !== 'fail') {
          facts.roundTrip = await session.roundTrip(topic);
        }
        return judge(facts, o);
      } finally {
        await session.close();
      }
    } catch (err) {
      if (err instanceof KafkaClientError) return { status: 'fail', message: err.message, unanswered: err.unanswered };
      return { status: 'fail', message: `kafka check failed unexpectedly: ${describeError(err).message}` };
    }
  },
});
