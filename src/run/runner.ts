// Runs a plan: checks concurrently up to a limit, each under its own timeout and the global
// deadline, in dependency order; a check whose dependency failed is skipped as blocked, so the
// root cause stands out. Hand-written rather than p-limit: the pool must also wait on
// dependencies and hand each check its dependencies' results.
import type { CheckContext, CheckOutcome, CheckResult } from '../check.js';
import type { PlannedCheck } from './plan.js';

/** How long a check may take, after its timeout, to report the cause itself. */
const TIMEOUT_GRACE_MS = 250;

export interface RunOptions {
  concurrency: number;
  /** Milliseconds from the start after which nothing more runs and running checks are cut. */
  deadlineMs: number;
  /** Aborted on Ctrl-C: running checks stop, the rest are skipped. */
  signal?: AbortSignal;
  onResult?: (result: CheckResult) => void;
  log?: (message: string) => void;
}

export async function runPlan(plan: PlannedCheck[], opts: RunOptions): Promise<CheckResult[]> {
  const unprepared = await prepareKinds(plan);
  const results = new Map<string, CheckResult>();
  const waiting = [...plan];
  const deadline = performance.now() + opts.deadlineMs;
  const globalDeadline = AbortSignal.timeout(Math.max(1, opts.deadlineMs));
  const stop = opts.signal ? AbortSignal.any([opts.signal, globalDeadline]) : globalDeadline;
  let running = 0;

  return new Promise((resolveAll) => {
    const finish = (result: CheckResult) => {
      results.set(result.id, result);
      opts.onResult?.(result);
    };
    const pump = () => {
      for (let i = 0; i < waiting.length; ) {
        const check = waiting[i]!;
        const deps = check.dependsOn.map((d) => results.get(d));
        if (deps.some((d) => d === undefined)) {
          i++;
          continue;
        }
        const blocker = deps.find((d) => d!.status === 'fail' || d!.status === 'skip');
        if (blocker) {
          waiting.splice(i, 1);
          finish(resultOf(check, { status: 'skip', message: `blocked by ${blocker.id}` }, 0));
          continue;
        }
        if (stop.aborted) {
          waiting.splice(i, 1);
          const why = opts.signal?.aborted
            ? { status: 'skip' as const, message: 'interrupted before it started' }
            : { status: 'fail' as const, message: `not run: the global deadline of ${opts.deadlineMs} ms passed` };
          finish(resultOf(check, why, 0));
          continue;
        }
        const loadError = unprepared.get(check.kind);
        if (loadError) {
          waiting.splice(i, 1);
          finish(resultOf(check, { status: 'fail', message: `cannot load the ${check.kind.kind} check: ${loadError}` }, 0));
          continue;
        }
        if (running >= opts.concurrency) break;
        waiting.splice(i, 1);
        running++;
        const dependencies = new Map(check.dependsOn.map((d) => [d, results.get(d)!]));
        runOne(check, dependencies, deadline, stop, opts).then((result) => {
          running--;
          finish(result);
          pump();
        });
      }
      if (running === 0 && waiting.length === 0) {
        resolveAll(plan.map((c) => results.get(c.id)!));
      }
    };
    pump();
  });
}

/** Load every kind's driver up front, concurrently; a kind that cannot load fails its checks. */
async function prepareKinds(plan: PlannedCheck[]): Promise<Map<PlannedCheck['kind'], string>> {
  const kinds = [...new Set(plan.map((c) => c.kind))];
  const settled = await Promise.allSettled(kinds.map((k) => k.prepare?.()));
  const failed = new Map<PlannedCheck['kind'], string>();
  settled.forEach((s, i) => {
    if (s.status === 'rejected') failed.set(kinds[i]!, (s.reason as Error)?.message ?? String(s.reason));
  });
  return failed;
}

async function runOne(
  check: PlannedCheck,
  dependencies: Map<string, CheckResult>,
  deadline: number,
  stop: AbortSignal,
  opts: RunOptions,
): Promise<CheckResult> {
  const remainingMs = Math.floor(deadline - performance.now());
  const timeoutMs = Math.max(1, Math.min(check.timeoutMs, remainingMs));
  // When the deadline is nearer than the check's own timeout, its timeout IS the deadline: say so
  // rather than "timed out after <a number the user never configured>".
  const cappedByDeadline = remainingMs < check.timeoutMs;
  const timedOut = AbortSignal.timeout(timeoutMs);
  const signal = AbortSignal.any([stop, timedOut]);
  const ctx: CheckContext = {
    signal,
    timeoutMs,
    dependencies,
    log: (message) => opts.log?.(`${check.id}: ${message}`),
  };
  const started = performance.now();
  // A check that ignores its signal still ends at its timeout: the race settles it, and the
  // process exit that follows the report reclaims whatever it left running.
  let onAbort = () => {};
  let grace: NodeJS.Timeout | undefined;
  const aborted = new Promise<CheckOutcome>((resolve) => {
    onAbort = () => {
      const interrupted = opts.signal?.aborted;
      const byDeadline = (!timedOut.aborted || cappedByDeadline) && !interrupted;
      if (interrupted) return resolve({ status: 'skip', message: 'interrupted' });
      if (byDeadline)
        return resolve({ status: 'fail', message: `cut by the global deadline after ${Math.round(performance.now() - started)} ms` });
      // The check's own timeout: a kind that honours its signal knows the cause ("no response
      // from host within 500 ms", "connect timed out") and says so at once; wait a moment for
      // that line before falling back to the generic one.
      grace = setTimeout(() => resolve({ status: 'fail', message: `timed out after ${timeoutMs} ms` }), TIMEOUT_GRACE_MS);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  let outcome: CheckOutcome;
  try {
    outcome = await Promise.race([check.kind.run(check.options, ctx), aborted]);
  } catch (err) {
    outcome = { status: 'fail', message: `check crashed: ${(err as Error)?.message ?? String(err)}` };
  } finally {
    clearTimeout(grace);
    signal.removeEventListener('abort', onAbort);
  }
  // A kind that answers after its own timeout is still late: say so rather than pass.
  if (timedOut.aborted && outcome.status === 'pass') {
    outcome = { status: 'fail', message: `timed out after ${timeoutMs} ms` };
  }
  return resultOf(check, outcome, performance.now() - started);
}

function resultOf(check: PlannedCheck, outcome: CheckOutcome, durationMs: number): CheckResult {
  return {
    id: check.id,
    kind: check.kind.kind,
    service: check.service,
    target: check.target,
    status: outcome.status,
    durationMs: Math.round(durationMs * 10) / 10,
    ...(outcome.latencyMs === undefined ? {} : { latencyMs: Math.round(outcome.latencyMs * 10) / 10 }),
    message: outcome.message.replace(/\s*\n\s*/g, ' '),
    details: outcome.details ?? {},
  };
}
