// The scenario engine in process, against a real HTTP server whose answers each test scripts:
// retries stop at once on terminal answers and back off on the others, cleanup runs after every
// kind of ending with what was captured, captured values are masked; and the runner leaves a kind
// with `abortGraceMs` its cleanup time after a timeout, the global deadline and an interrupt.
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { CheckContext, CheckKind } from '../../src/check.js';
import type { PlannedCheck } from '../../src/run/plan.js';
import { runPlan } from '../../src/run/runner.js';
import { defineScenario, expectStatus, objectBody, step, type StepRecord } from '../../src/scenario/scenario.js';
import { serveOnLoopback, type TcpPeer } from '../support/faults.js';

/** Each request to /item takes the next scripted status; /secret answers a value to capture. */
let script: number[] = [];
let hits = 0;
let deletes = 0;
let server: TcpPeer;

beforeAll(async () => {
  server = await serveOnLoopback(
    createServer((req, res) => {
      req.resume();
      if (req.url === '/secret') return res.writeHead(200, { 'content-type': 'application/json' }).end('{"coordinate":[12.5,-3.25,7.125]}');
      if (req.method === 'DELETE') {
        deletes++;
        return res.writeHead(200, { 'content-type': 'application/json' }).end('{"deleted":true}');
      }
      if (req.url === '/hang') return; // never answers
      hits++;
      const status = script.shift() ?? 200;
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ detail: `scripted ${status}` }));
    }),
  );
});
afterAll(() => server?.close());

const reset = (statuses: number[]) => {
  script = [...statuses];
  hits = 0;
  deletes = 0;
};

/** A scenario: capture a value, GET `path` until 200 (retrying), then clean up with a DELETE. */
function scenario(path: string, retryForMs = 3000, timeoutMs?: number): CheckKind<Record<string, never>> {
  return defineScenario({
    kind: 'test.smoke',
    options: z.object({}).strict(),
    target: () => server.url(),
    runbook(_o, run) {
      let wrote = false;
      return {
        steps: [
          step('capture', async (s) => {
            const res = await s.http({ url: `${server.url()}/secret` });
            run.capture('coordinate', (objectBody(res, 'GET /secret').coordinate as number[]).join(','));
            wrote = true;
            return `captured ${run.get('coordinate')}`;
          }),
          step('wait for it', async (s) => {
            const res = await s.http({ url: `${server.url()}${path}` });
            expectStatus(res, [200], `GET ${path}`, { absentIs404: path === '/absent' });
            return 'there';
          }, { retryForMs, timeoutMs }),
        ],
        cleanup: [
          step('delete it', async (s) => {
            if (!wrote) return s.skip('nothing was written');
            await s.http({ url: `${server.url()}/item/${run.get('coordinate')}`, method: 'DELETE' });
            return `deleted ${run.get('coordinate')}`;
          }),
        ],
        summary: () => 'all good',
      };
    },
  });
}

const ctx = (timeoutMs = 10_000, signal = new AbortController().signal): CheckContext => ({
  signal,
  timeoutMs,
  dependencies: new Map(),
  log: () => {},
});
const stepsOf = (details: Record<string, unknown> | undefined) => details?.steps as StepRecord[];

describe('scenario engine', () => {
  it.each([401, 403, 422])('stops at once on a terminal %i, then cleans up', async (status) => {
    reset([status, 200]);
    const outcome = await scenario('/item').run({}, ctx());
    expect(hits).toBe(1);
    expect(outcome.status).toBe('fail');
    expect(outcome.message).toMatch(new RegExp(`^wait for it: GET /item answered ${status}: scripted ${status}; cleanup: deleted \\*\\*\\*$`));
    expect(deletes).toBe(1);
  });

  it('a 404 on a route is terminal; a 404 of an item the step waits for is retried', async () => {
    reset([404, 200]);
    const route = await scenario('/item').run({}, ctx());
    expect(hits).toBe(1);
    expect(route.message).toMatch(/the route is missing/);
    reset([404, 404, 200]);
    const absent = await scenario('/absent').run({}, ctx());
    expect(absent.status).toBe('pass');
    expect(hits).toBe(3);
  });

  it('retries 503 with backoff until it passes', async () => {
    reset([503, 503, 503, 200]);
    const outcome = await scenario('/item').run({}, ctx());
    expect(outcome.status).toBe('pass');
    expect(hits).toBe(4);
    expect(stepsOf(outcome.details).map((s) => s.status)).toEqual(['pass', 'pass', 'pass']);
  });

  it('gives up at the retry bound with the last reason and the attempts', async () => {
    reset(Array(100).fill(503));
    const outcome = await scenario('/item', 800).run({}, ctx());
    expect(outcome.message).toMatch(/^wait for it: GET \/item answered 503: scripted 503 \(still so after \d+ attempts in \d+ ms\); cleanup: deleted \*\*\*$/);
    // Capped exponential backoff: a handful of tries in 800 ms, not a busy loop.
    expect(hits).toBeGreaterThan(2);
    expect(hits).toBeLessThan(10);
  });

  it('masks captured values in the message, the steps and the cleanup report', async () => {
    reset([200]);
    const outcome = await scenario('/item').run({}, ctx());
    const text = JSON.stringify(outcome);
    expect(text).not.toContain('12.5,-3.25,7.125');
    expect(stepsOf(outcome.details)[0]!.message).toBe('captured ***');
    expect(outcome.details!.cleanup).toEqual({ ok: true, message: 'deleted ***' });
  });

  it('out of budget: names the step and still cleans up', async () => {
    reset([]);
    const signal = AbortSignal.timeout(400);
    const outcome = await scenario('/hang').run({}, ctx(400, signal));
    expect(outcome.status).toBe('fail');
    expect(outcome.message).toBe("ran out of time (400 ms) at step 'wait for it'; cleanup: deleted ***");
    expect(deletes).toBe(1);
  });

  it("a step's own timeout inside the budget: names the step and its bound, then cleans up", async () => {
    reset([]);
    const outcome = await scenario('/hang', 3000, 300).run({}, ctx());
    expect(outcome.status).toBe('fail');
    expect(outcome.message).toBe('wait for it: step timed out after 300 ms; cleanup: deleted ***');
    expect(deletes).toBe(1);
  });

  it('interrupted: a skip that still cleans up', async () => {
    reset([]);
    const interrupt = new AbortController();
    setTimeout(() => interrupt.abort(), 200);
    const outcome = await scenario('/hang').run({}, ctx(10_000, interrupt.signal));
    expect(outcome).toMatchObject({ status: 'skip', message: "interrupted at step 'wait for it'; cleanup: deleted ***" });
    expect(deletes).toBe(1);
  });
});

describe('runner: abortGraceMs', () => {
  /** A kind that needs `cleanupMs` after its signal aborts, then claims a pass: the runner
   *  turns that into a fail (timeout, deadline) or a skip (interrupt), keeping the message. */
  const cleaning = (cleanupMs: number): CheckKind => ({
    kind: 'cleaning',
    options: z.object({}),
    target: () => '-',
    abortGraceMs: 1000,
    run: (_o, c) =>
      new Promise((resolve) => {
        c.signal.addEventListener('abort', () => setTimeout(() => resolve({ status: 'pass', message: 'cut; cleaned up' }), cleanupMs));
      }),
  });
  const planned = (kind: CheckKind, timeoutMs: number): PlannedCheck => ({ id: 'c', checkKind: kind, options: {}, target: '-', timeoutMs, dependsOn: [] });

  it('waits for the cleanup after the check timeout', async () => {
    const [r] = await runPlan([planned(cleaning(300), 200)], { concurrency: 1, deadlineMs: 10_000 });
    expect(r).toMatchObject({ status: 'fail', message: 'cut; cleaned up' }); // a claimed pass after a cut is a fail
  });

  it('waits for the cleanup after the global deadline', async () => {
    const [r] = await runPlan([planned(cleaning(300), 10_000)], { concurrency: 1, deadlineMs: 200 });
    expect(r).toMatchObject({ status: 'fail', message: 'cut; cleaned up' }); // a claimed pass after a cut is a fail
  });

  it('waits for the cleanup after an interrupt, and reports a skip', async () => {
    const interrupt = new AbortController();
    setTimeout(() => interrupt.abort(), 100);
    const [r] = await runPlan([planned(cleaning(300), 10_000)], { concurrency: 1, deadlineMs: 10_000, signal: interrupt.signal });
    expect(r).toMatchObject({ status: 'skip', message: 'cut; cleaned up' });
  });

  it('reports the abort when the cleanup overruns its grace', async () => {
    const [r] = await runPlan([planned(cleaning(5000), 200)], { concurrency: 1, deadlineMs: 10_000 });
    expect(r).toMatchObject({ status: 'fail', message: 'timed out after 200 ms; its cleanup did not finish within 1000 ms' });
  });
});
