// The runner with in-process check kinds: scheduling, timeouts, deadline, dependencies.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineCheck, type CheckOutcome } from '../../src/check.js';
import type { PlannedCheck } from '../../src/run/plan.js';
import { cutByInterrupt, runPlan } from '../../src/run/runner.js';

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
  id, checkKind: sleeper, options, target: id, timeoutMs: 2000, dependsOn: [], ...extra,
});

describe('runPlan', () => {
  it('hands a check\'s progress lines on as one line: a CR from a service cannot start a CI workflow command', async () => {
    const chatty = defineCheck<Record<string, never>>({
      kind: 'chatty',
      options: z.object({}),
      target: () => '-',
      run: async (_o, ctx) => {
        ctx.log('body said: ok\r::error::injected\nnext\u2028line');
        return { status: 'pass', message: 'ok' };
      },
    });
    const lines: string[] = [];
    await runPlan([planned('c', {}, { checkKind: chatty })], { concurrency: 1, deadlineMs: 5000, log: (l) => lines.push(l) });
    expect(lines).toEqual(['c: body said: ok ::error::injected next line']);
  });
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
    await runPlan(Array.from({ length: 10 }, (_, i) => planned(`c${i}`, {}, { checkKind: counting })), { concurrency: 3, deadlineMs: 10_000 });
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
    const [r] = await runPlan([planned('t', {}, { checkKind: thrower })], { concurrency: 1, deadlineMs: 1000 });
    expect(r).toMatchObject({ status: 'fail', message: 'check crashed: boom' });
  });
  it('loads drivers before the clock starts, and fails the checks of a kind that cannot load', async () => {
    let prepared = 0;
    const slowLoading = defineCheck({ ...sleeper, prepare: () => new Promise((r) => setTimeout(() => r(prepared++), 300)) });
    const broken = defineCheck({ ...sleeper, kind: 'broken', prepare: () => Promise.reject(new Error("Cannot find package 'nope'")) });
    const results = await runPlan(
      [planned('a', { ms: 10, status: 'pass' }, { checkKind: slowLoading, timeoutMs: 200 }), planned('b', { ms: 10, status: 'pass' }, { checkKind: slowLoading }), planned('c', { ms: 10, status: 'pass' }, { checkKind: broken })],
      { concurrency: 4, deadlineMs: 10_000 },
    );
    expect(prepared).toBe(1);
    expect(results[0]).toMatchObject({ status: 'pass' });
    expect(results[0]!.durationMs).toBeLessThan(200);
    expect(results[2]).toMatchObject({ status: 'fail', message: "cannot load the broken check: Cannot find package 'nope'" });
  });
  it('hands prepare the options of every planned check of its kind, once, so it loads only what they need', async () => {
    const seen: unknown[][] = [];
    const choosy = defineCheck<{ ms: number; status: 'pass' | 'warn' | 'fail' }>({ ...sleeper, kind: 'choosy', prepare: async (all) => void seen.push([...all]) });
    await runPlan(
      [planned('a', { ms: 1, status: 'pass' }, { checkKind: choosy }), planned('x', { ms: 1, status: 'pass' }), planned('b', { ms: 2, status: 'warn' }, { checkKind: choosy })],
      { concurrency: 4, deadlineMs: 10_000 },
    );
    expect(seen).toEqual([[{ ms: 1, status: 'pass' }, { ms: 2, status: 'warn' }]]);
    // A check that cannot run (its schema threw) has no options to give.
    seen.length = 0;
    await runPlan(
      [planned('a', { ms: 1, status: 'pass' }, { checkKind: choosy }), { ...planned('c', {}, { checkKind: choosy }), options: undefined, problem: 'its options schema threw' }],
      { concurrency: 4, deadlineMs: 10_000 },
    );
    expect(seen).toEqual([[{ ms: 1, status: 'pass' }]]);
  });
  it('fails, never passes, what a signal interrupted, naming the signal', async () => {
    const interrupt = new AbortController();
    setTimeout(() => interrupt.abort('SIGTERM'), 100);
    const results = await runPlan(
      [planned('a', { ms: 2000, status: 'pass' }), planned('b', { ms: 10, status: 'pass' })],
      { concurrency: 1, deadlineMs: 10_000, signal: interrupt.signal },
    );
    expect(results[0]).toMatchObject({ status: 'fail', message: expect.stringMatching(/^interrupted by SIGTERM after \d+ ms$/) });
    expect(results[1]).toMatchObject({ status: 'fail', message: 'not run: interrupted by SIGTERM' });
  });
  it('tells the results an interrupt decided from those the checks reached on their own', async () => {
    const interrupt = new AbortController();
    setTimeout(() => interrupt.abort('SIGTERM'), 150);
    const results = await runPlan(
      [planned('done', { ms: 10, status: 'fail' }), planned('cut', { ms: 2000, status: 'pass' }), planned('never', { ms: 10, status: 'pass' })],
      { concurrency: 2, deadlineMs: 10_000, signal: interrupt.signal },
    );
    expect(results.map((r) => [r.id, r.status])).toEqual([['done', 'fail'], ['cut', 'fail'], ['never', 'pass']]);
    // 'never' ran after 'done' ended, before the signal: its own result, like 'done''s failure.
    expect(results.map(cutByInterrupt)).toEqual([false, true, false]);
    const late = await runPlan([planned('late', { ms: 10, status: 'pass' })], { concurrency: 1, deadlineMs: 10_000, signal: AbortSignal.abort('SIGINT') });
    expect(late[0]).toMatchObject({ status: 'fail', message: 'not run: interrupted by SIGINT' });
    expect(cutByInterrupt(late[0]!)).toBe(true);
  });
});

describe('runPlan with a plugin that breaks the contract (issue 7)', () => {
  const answering = (answer: () => unknown) =>
    defineCheck<Record<string, never>>({ kind: 'rogue', options: z.object({}), target: () => '-', run: async () => answer() as CheckOutcome });
  const runRogue = async (answer: () => unknown) =>
    (await runPlan([planned('r', {}, { checkKind: answering(answer) })], { concurrency: 1, deadlineMs: 5000 }))[0]!;

  it('an unknown status, a missing message or no outcome at all is a failure naming the breach', async () => {
    expect(await runRogue(() => ({ status: 'failed', message: 'x' }))).toMatchObject({
      status: 'fail', message: 'the rogue check broke the check contract: status "failed" is not one of pass, warn, fail, skip',
    });
    expect(await runRogue(() => ({ status: 'pass' }))).toMatchObject({
      status: 'fail', message: 'the rogue check broke the check contract: message is undefined, not a string (status was pass)',
    });
    expect(await runRogue(() => undefined)).toMatchObject({
      status: 'fail', message: 'the rogue check broke the check contract: run() resolved to undefined, not { status, message }',
    });
  });
  it('a malformed `unanswered` is a failure naming the breach; a well-formed one is kept as given, and read once', async () => {
    const breach = (what: string) => `the rogue check broke the check contract: ${what} (status was fail)`;
    const fail = (unanswered: unknown) => runRogue(() => ({ status: 'fail', message: 'down', unanswered }));
    expect(await fail('127.0.0.1:80')).toMatchObject({ status: 'fail', message: breach('unanswered is "127.0.0.1:80", not { host, port, refused }') });
    expect(await fail(null)).toMatchObject({ message: breach('unanswered is null, not { host, port, refused }') });
    expect(await fail({ host: '', port: 80, refused: true })).toMatchObject({ message: breach('unanswered.host is "", not a host name') });
    expect(await fail({ host: 'db\n::error::x', port: 80, refused: true })).toMatchObject({ message: expect.stringMatching(/unanswered\.host is .*, not a host name/) });
    expect(await fail({ host: 'db', port: 0, refused: true })).toMatchObject({ message: breach('unanswered.port is 0, not a TCP port') });
    expect(await fail({ host: 'db', port: 5432.5, refused: true })).toMatchObject({ message: breach('unanswered.port is 5432.5, not a TCP port') });
    expect(await fail({ host: 'db', port: '5432', refused: true })).toMatchObject({ message: breach('unanswered.port is "5432", not a TCP port') });
    expect(await fail({ host: 'db', port: 5432, refused: 'yes' })).toMatchObject({ message: breach('unanswered.refused is "yes", not true or false') });
    // Only the three fields are copied: nothing else a plugin hangs on the object reaches the engine.
    const kept = await fail({ host: 'db', port: 5432, refused: true, extra: () => 1 });
    expect(kept).toMatchObject({ status: 'fail', message: 'down' });
    expect(kept.unanswered).toEqual({ host: 'db', port: 5432, refused: true });
    expect(Object.keys(kept.unanswered!)).toEqual(['host', 'port', 'refused']);
    // Without it a failure counts as answered: the result has no such field.
    expect(await runRogue(() => ({ status: 'fail', message: 'HTTP 503' }))).not.toHaveProperty('unanswered');
  });
  it('circular and BigInt details become printable', async () => {
    const details: Record<string, unknown> = { big: 10n ** 20n, nested: { n: 1 } };
    details.self = details;
    const r = await runRogue(() => ({ status: 'pass', message: 'ok', details }));
    expect(r.status).toBe('pass');
    expect(JSON.parse(JSON.stringify(r.details))).toEqual({ big: '100000000000000000000', nested: { n: 1 }, self: '[circular]' });
  });
  it('a run that never settles fails at its timeout', async () => {
    const started = performance.now();
    const [r] = await runPlan([planned('h', {}, { checkKind: answering(() => new Promise(() => {})), timeoutMs: 300 })], { concurrency: 1, deadlineMs: 5000 });
    expect(r).toMatchObject({ status: 'fail', message: 'timed out after 300 ms' });
    expect(performance.now() - started).toBeLessThan(300 + 1500);
  });
  it('a prepare that never settles fails its checks within their timeout', async () => {
    const hanging = defineCheck({ ...sleeper, kind: 'hang', prepare: () => new Promise(() => {}) });
    const started = performance.now();
    const [r] = await runPlan([planned('p', { ms: 1, status: 'pass' }, { checkKind: hanging, timeoutMs: 300 })], { concurrency: 1, deadlineMs: 5000 });
    expect(r).toMatchObject({ status: 'fail', message: 'cannot load the hang check: prepare() did not settle within 300 ms' });
    expect(performance.now() - started).toBeLessThan(300 + 1500);
  });
  it('a pass that arrives after the timeout, because the check blocked the event loop, is a failure', async () => {
    const blocking = answering(() => {
      const until = Date.now() + 600;
      while (Date.now() < until) { /* a check that blocks the event loop */ }
      return { status: 'pass', message: 'fine' };
    });
    const [r] = await runPlan([planned('b', {}, { checkKind: blocking, timeoutMs: 200 })], { concurrency: 1, deadlineMs: 5000 });
    expect(r).toMatchObject({ status: 'fail', message: expect.stringMatching(/^timed out after 200 ms \(its pass came after \d+ ms\)$/) });
  });
  it('keeps a multi-line message whole for the redactor, and rounds the duration once, to 0.1 ms', async () => {
    const r = await runRogue(() => ({ status: 'warn', message: 'line one\nline two' }));
    expect(r.message).toBe('line one\nline two');
    expect(Math.round(r.durationMs * 10)).toBe(r.durationMs * 10);
  });
});
