// The checks of the stores (pg, kafkajs, our own RESP client) against a peer that floods bytes: each must cut the
// connection at its first foreign answer (or past its byte cap), fail naming the cause within its
// timeout, and keep the process's memory bounded. Run in process, from the sources, so the test
// can watch this process's memory while the check runs.
import { afterEach, describe, expect, it } from 'vitest';
import type { CheckKind, CheckOutcome } from '../../../src/check.js';
import { floodServer, type FloodPeer } from '../../support/faults.js';
import { MARGIN_MS } from '../../support/run-check.js';

const TIMEOUT_MS = 3000;
/** The most this process may grow while a check reads a flood (the unbounded drivers took GBs). */
const MEMORY_BOUND = 128 * 1024 * 1024;

let peer: FloodPeer | undefined;
afterEach(async () => {
  await peer?.close();
  peer = undefined;
});

interface Measured {
  outcome: CheckOutcome;
  wallMs: number;
  rssGrowth: number;
}

async function runFlooded(kind: CheckKind, options: unknown): Promise<Measured> {
  const validated = await kind.options['~standard'].validate(options);
  if ('issues' in validated && validated.issues) throw new Error(JSON.stringify(validated.issues));
  await kind.prepare?.([(validated as { value: unknown }).value]);
  global.gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  const started = performance.now();
  const signal = AbortSignal.timeout(TIMEOUT_MS);
  try {
    const outcome = await kind.run(validated.value, { signal, timeoutMs: TIMEOUT_MS, dependencies: new Map(), log: () => {} });
    return { outcome, wallMs: performance.now() - started, rssGrowth: Math.max(peak, process.memoryUsage().rss) - baseline };
  } finally {
    clearInterval(sampler);
  }
}

function expectCut(m: Measured, cause: RegExp) {
  expect(m.outcome.status, m.outcome.message).toBe('fail');
  expect(m.outcome.message).toMatch(cause);
  expect(m.wallMs).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
  expect(m.rssGrowth).toBeLessThan(MEMORY_BOUND);
}

// Text that no protocol here accepts as a first answer.
const garbage = Buffer.alloc(64 * 1024, 'A');

describe('postgres against a flooding peer', async () => {
  const postgres = (await import('../../../checks/postgres.js')).default;

  it('fails at its first answer, naming the foreign protocol', async () => {
    peer = await floodServer(garbage);
    const m = await runFlooded(postgres, { dsn: `postgresql://u@127.0.0.1:${peer.port}/db?sslmode=disable` });
    expectCut(m, new RegExp(`^not a PostgreSQL server on 127\\.0\\.0\\.1:${peer.port} \\(it answered "AAAA`));
  });

  it('fails past its byte cap when the flood starts like a PostgreSQL message', async () => {
    // An authentication request ('R') announcing a 2 GB message: pg would buffer all of it.
    const head = Buffer.alloc(64 * 1024, 0);
    head.write('R', 0);
    head.writeInt32BE(0x7fffffff, 1);
    peer = await floodServer(head);
    const m = await runFlooded(postgres, { dsn: `postgresql://u@127.0.0.1:${peer.port}/db?sslmode=disable` });
    expectCut(m, /^not a PostgreSQL server on 127\.0\.0\.1:\d+: the peer sent more than \d+ bytes/);
  });
});

describe('redis against a flooding peer', async () => {
  const redis = (await import('../../../checks/redis.js')).default;

  it('fails at its first answer, naming the foreign protocol', async () => {
    peer = await floodServer(garbage);
    const m = await runFlooded(redis, { url: `redis://127.0.0.1:${peer.port}/0` });
    expectCut(m, new RegExp(`^not a Redis server on 127\\.0\\.0\\.1:${peer.port} \\(it answered "AAAA`));
  });

  it('fails past its byte cap when the flood starts like a RESP reply', async () => {
    // A simple string that never ends: the RESP parser would buffer it all, waiting for CRLF.
    const head = Buffer.alloc(64 * 1024, 'x');
    head.write('+', 0);
    peer = await floodServer(head);
    const m = await runFlooded(redis, { url: `redis://127.0.0.1:${peer.port}/0` });
    expectCut(m, /^not a Redis server on 127\.0\.0\.1:\d+: the peer sent more than \d+ bytes/);
  });
});

describe('kafka against a flooding peer', async () => {
  const kafka = (await import('../../../checks/kafka.js')).default;

  it('fails at its first answer, naming the foreign protocol', async () => {
    peer = await floodServer(garbage);
    const m = await runFlooded(kafka, { brokers: `127.0.0.1:${peer.port}` });
    expectCut(m, new RegExp(`^not a Kafka broker on 127\\.0\\.0\\.1:${peer.port}: it speaks another protocol \\(answered "AAAA`));
  });

  it('fails when the flood breaks Kafka framing after a plausible first response', async () => {
    // A response announcing 16 MiB, then a size of 0, which kafkajs cannot decode (it throws
    // outside any promise: without the guard, the process crashes).
    const head = Buffer.alloc(64 * 1024, 0);
    head.writeInt32BE(16 * 1024 * 1024, 0);
    peer = await floodServer(head);
    const m = await runFlooded(kafka, { brokers: `127.0.0.1:${peer.port}` });
    expectCut(m, /^not a Kafka broker on 127\.0\.0\.1:\d+: the peer sent bytes that are not Kafka/);
  });

  it('fails at the first frame of a well-framed flood, which answers no request', async () => {
    // Responses of 64 KiB each, for no request (correlation id -1), never ending.
    const frame = Buffer.alloc(64 * 1024, 0);
    frame.writeInt32BE(frame.length - 4, 0);
    frame.writeInt32BE(-1, 4);
    peer = await floodServer(frame);
    const m = await runFlooded(kafka, { brokers: `127.0.0.1:${peer.port}` });
    expectCut(m, /^not a Kafka broker on 127\.0\.0\.1:\d+: the peer sent bytes that are not Kafka \(an answer to no request \(correlation id -1\)\)$/);
  });
});
