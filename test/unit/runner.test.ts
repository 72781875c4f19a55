// The runner with in-process check kinds: scheduling, timeouts, deadline, dependencies.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCheck, type CheckOutcome } from '../../src/check.js';
import type { PlannedCheck } from '../../src/run/plan.js';
import { runPlan } from '../../src/run/runner.js';

const sleeper = defineCheck<{ ms: number; status: 'pass' | 'warn' | 'fail'; ignoreSignal?: boolean }>({
  kind: 'sleep',
  options: z.object({ ms: z.number(), status: z.enum(['pass', 'warn', 'fail']), ignoreSignal: z.boolean().optional() }),
  target: (o) => `${o.ms} ms`,
  run: (o, ctx) =>
    new Promise<CheckOutcome>((resolve) => {
      const timer = setTimeout(() => resolve({ status: o.status, message: `slept ${o.ms}`, details: { deps: [...ctx.dependencies.keys()] } }), o.ms);
      if (!o.ignoreSignal) ctx.signal.addEventListener('abort', () => { clearTimeout(timer); resolve({ status: 'fail', message: 'aborted' }); });
    }),
});
const thrower = defineCheck<Record<string, never>>({
  kind: 'throw',
  options: z.object({}),
  target: () => '-',
  run: async () => { throw new Error('boom'); },
});

const planned = (id: string, options: object, extra: Partial<PlannedCheck> = {}): PlannedCheck => ({
  id, kind: sleeper, options, target: id, timeoutMs: 2000, dependsOn: [], ...extra,
});

describe('runPlan', () => {
  it('runs checks concurrently: the run takes about as long as the slowest check', async () => {
    const started = performance.now();
    const results = await runPlan(
      Array.from({ length: 8 }, (_, i) => planned(`c${i}`, { ms: 300, status: 'pass' })),
      { concurrency: 16, deadlineMs: 10_000 },
    );
    expect(results.map((r) => r.status)).toEqual(Array(8).fill('pass'));
    expect(performance.now() - started).toBeLessThan(8 * 300);
  });
  it('keeps at most `concurrency` checks running', async () => {
    let running = 0;
    let peak = 0;
    const counting = defineCheck({ ...sleeper, run: async () => { running++; peak = Math.max(peak, running); await new Promise((r) => setTimeout(r, 50)); running--; return { status: 'pass' as const, message: '' }; } });
    await runPlan(Array.from({ length: 10 }, (_, i) => planned(`c${i}`, {}, { kind: counting })), { concurrency: 3, deadlineMs: 10_000 });
    expect(peak).toBe(3);
  });
  it('skips dependents of a failed check as blocked, and hands results to dependents', async () => {
    const results = await runPlan(
      [
        planned('db', { ms: 10, status: 'fail' }),
        planned('api', { ms: 10, status: 'pass' }, { dependsOn: ['db'] }),
        planned('api.metrics', { ms: 10, status: 'pass' }, { dependsOn: ['api'] }),
        planned('cache', { ms: 10, status: 'warn' }),
        planned('worker', { ms: 10, status: 'pass' }, { dependsOn: ['cache'] }),
      ],
      { concurrency: 4, deadlineMs: 10_000 },
    );
    const byId = Object.fromEntries(results.map((r) => [r.id, r]));
    expect(byId.api).toMatchObject({ status: 'skip', message: 'blocked by db' });
    expect(byId['api.metrics']).toMatchObject({ status: 'skip', message: 'blocked by api' });
    expect(byId.worker).toMatchObject({ status: 'pass', details: { deps: ['cache'] } });
  });
  it('fails a check at its timeout even when the kind ignores its signal', async () => {
    const started = performance.now();
    const [r] = await runPlan([planned('slow', { ms: 5000, status: 'pass', ignoreSignal: true }, { timeoutMs: 200 })], { concurrency: 1, deadlineMs: 10_000 });
    expect(r).toMatchObject({ status: 'fail', message: 'timed out after 200 ms' });
    expect(performance.now() - started).toBeLessThan(200 + 1500);
  });
  it('cuts running checks at the global deadline and fails those never started', async () => {
    const results = await runPlan(
      [planned('a', { ms: 5000, status: 'pass' }, { timeoutMs: 10_000 }), planned('b', { ms: 10, status: 'pass' })],
      { concurrency: 1, deadlineMs: 300 },
    );
    expect(results[0]!.status).toBe('fail');
    expect(results[1]).toMatchObject({ status: 'fail', message: expect.stringMatching(/global deadline/) });
  });
  it('turns a thrown error into a failure naming it', async () => {
    const [r] = await runPlan([planned('t', {}, { kind: thrower })], { concurrency: 1, deadlineMs: 1000 });
    expect(r).toMatchObject({ status: 'fail', message: 'check crashed: boom' });
  });
  it('loads drivers before the clock starts, and fails the checks of a kind that cannot load', async () => {
    let prepared = 0;
    const slowLoading = defineCheck({ ...sleeper, prepare: () => new Promise((r) => setTimeout(() => r(prepared++), 300)) });
    const broken = defineCheck({ ...sleeper, kind: 'broken', prepare: () => Promise.reject(new Error("Cannot find package 'nope'")) });
    const results = await runPlan(
      [planned('a', { ms: 10, status: 'pass' }, { kind: slowLoading, timeoutMs: 200 }), planned('b', { ms: 10, status: 'pass' }, { kind: slowLoading }), planned('c', { ms: 10, status: 'pass' }, { kind: broken })],
      { concurrency: 4, deadlineMs: 10_000 },
    );
    expect(prepared).toBe(1);
    expect(results[0]).toMatchObject({ status: 'pass' });
    expect(results[0]!.durationMs).toBeLessThan(200);
    expect(results[2]).toMatchObject({ status: 'fail', message: "cannot load the broken check: Cannot find package 'nope'" });
  });
  it('skips what has not started when interrupted', async () => {
    const interrupt = new AbortController();
    setTimeout(() => interrupt.abort(), 100);
    const results = await runPlan(
      [planned('a', { ms: 2000, status: 'pass' }), planned('b', { ms: 10, status: 'pass' })],
      { concurrency: 1, deadlineMs: 10_000, signal: interrupt.signal },
    );
    expect(results.map((r) => r.status)).toEqual(['skip', 'skip']);
  });
});
