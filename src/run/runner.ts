// Runs a plan: checks concurrently up to a limit, each under its own timeout and the global
// deadline, in dependency order; a check whose dependency failed is skipped as blocked, so the
// root cause stands out. Hand-written rather than p-limit: the pool must also wait on
// dependencies and hand each check its dependencies' results.
//
// A check kind may be a user's plugin, so nothing it returns is trusted: an outcome that breaks
// the contract of src/check.ts, a promise that never settles, an answer that comes after the
// timeout (an event loop blocked past it) all end as a failed check that says so.
import { setMaxListeners } from 'node:events';
import type { CheckContext, CheckOutcome, CheckResult, Status, Unanswered } from '../check.js';
import type { PlannedCheck } from './plan.js';
import { excerpt } from '../redact.js';

/** How long a check may take, after its timeout, to report the cause itself. */
const TIMEOUT_GRACE_MS = 250;
/** The longest message kept; a longer one is cut with the mark the redactor knows. */
const MAX_MESSAGE_CHARS = 8192;
const STATUSES: ReadonlySet<string> = new Set<Status>(['pass', 'warn', 'fail', 'skip']);

export interface RunOptions {
  concurrency: number;
  /** Milliseconds from the start after which nothing more runs and running checks are cut. */
  deadlineMs: number;
  /**
   * Aborted on a signal (its reason names it, e.g. "SIGTERM"): running checks stop and fail,
   * the rest fail as not run. An interrupted run never reads as a pass.
   */
  signal?: AbortSignal;
  onResult?: (result: CheckResult) => void;
  log?: (message: string) => void;
}

export async function runPlan(plan: PlannedCheck[], opts: RunOptions): Promise<CheckResult[]> {
  const deadline = performance.now() + opts.deadlineMs;
  // A referenced timer, unlike AbortSignal.timeout: it keeps the process alive while a plugin's
  // promise hangs with nothing else pending, so the deadline ends the run with a report.
  const deadlineController = new AbortController();
  // A TimeoutError, like a check's own timeout: a kind tells "out of time" from "interrupted" by it.
  const deadlineTimer = setTimeout(
    () => deadlineController.abort(new DOMException('the global deadline passed', 'TimeoutError')),
    Math.max(1, opts.deadlineMs),
  );
  const stop = opts.signal ? AbortSignal.any([opts.signal, deadlineController.signal]) : deadlineController.signal;
  // Every running check listens to it: that is no leak, whatever the concurrency.
  setMaxListeners(0, stop);
  const unprepared = await prepareKinds(plan, deadline, stop);
  const results = new Map<string, CheckResult>();
  const waiting = [...plan];
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
            ? `not run: interrupted by ${reasonOf(opts.signal)}`
            : `not run: the global deadline of ${opts.deadlineMs} ms passed`;
          const result = resultOf(check, { status: 'fail', message: why }, 0);
          if (opts.signal?.aborted) cutResults.add(result);
          finish(result);
          continue;
        }
        const problem = check.problem ?? unprepared.get(check.checkKind);
        if (problem) {
          waiting.splice(i, 1);
          finish(resultOf(check, { status: 'fail', message: problem }, 0));
          continue;
        }
        if (running >= opts.concurrency) break;
        waiting.splice(i, 1);
        running++;
        const dependencies = new Map(check.dependsOn.map((d) => [d, results.get(d)!]));
        // runOne catches what a check throws; a failure of its own must still end as a result,
        // or the pool would never finish and the process would end without a report.
        runOne(check, dependencies, deadline, stop, opts)
          .catch((err: unknown) => resultOf(check, { status: 'fail', message: `the runner failed on this check: ${errorText(err)}` }, 0))
          .then((result) => {
            running--;
            finish(result);
            pump();
          });
      }
      if (running === 0 && waiting.length === 0) {
        clearTimeout(deadlineTimer);
        resolveAll(plan.map((c) => results.get(c.id)!));
      }
    };
    pump();
  });
}

function reasonOf(signal: AbortSignal): string {
  return typeof signal.reason === 'string' ? signal.reason : 'an interrupt';
}

/**
 * Load every kind's driver up front, concurrently; a kind that cannot load fails its checks.
 * A `prepare` that never settles is bounded by the longest timeout of its checks (and the
 * deadline, and an interrupt).
 */
async function prepareKinds(plan: PlannedCheck[], deadline: number, stop: AbortSignal): Promise<Map<PlannedCheck['checkKind'], string>> {
  // Per kind: the longest timeout of its checks, and the options of those that will run.
  const kinds = new Map<PlannedCheck['checkKind'], { timeoutMs: number; options: unknown[] }>();
  for (const c of plan) {
    const entry = kinds.get(c.checkKind) ?? { timeoutMs: 0, options: [] };
    kinds.set(c.checkKind, entry);
    entry.timeoutMs = Math.max(entry.timeoutMs, c.timeoutMs);
    if (!c.problem) entry.options.push(c.options); // a check that cannot run has no options
  }
  const failed = new Map<PlannedCheck['checkKind'], string>();
  await Promise.all(
    [...kinds].map(async ([kind, { timeoutMs, options }]) => {
      if (!kind.prepare || options.length === 0) return;
      const ms = Math.max(1, Math.min(timeoutMs, deadline - performance.now()));
      const problem = await settleWithin(() => kind.prepare!(options), ms, stop).then(
        (settled) => (settled.done ? undefined : `prepare() did not settle within ${Math.round(ms)} ms`),
        (err) => errorText(err),
      );
      if (problem) failed.set(kind, `cannot load the ${kind.kind} check: ${problem}`);
    }),
  );
  return failed;
}

/**
 * Call `start` and wait at most `ms` (or until `stop`) for it to settle, with a referenced timer.
 * Resolves { done: true, value } or { done: false }; rejects with what `start` threw or rejected.
 */
export function settleWithin<T>(start: () => T | Promise<T>, ms: number, stop?: AbortSignal): Promise<{ done: true; value: T } | { done: false }> {
  let started: T | Promise<T>;
  try {
    started = start();
  } catch (err) {
    return Promise.reject(err ?? new Error(String(err)));
  }
  // A synchronous answer (most schema libraries give one) needs no timer.
  if (!(started instanceof Promise) && typeof (started as { then?: unknown })?.then !== 'function')
    return Promise.resolve({ done: true, value: started as T });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => end({ done: false }), ms);
    const onStop = () => end({ done: false });
    stop?.addEventListener('abort', onStop, { once: true });
    const end = (value: { done: true; value: T } | { done: false }, err?: unknown) => {
      clearTimeout(timer);
      stop?.removeEventListener('abort', onStop);
      if (err !== undefined) reject(err);
      else resolve(value);
    };
    if (stop?.aborted) return end({ done: false });
    Promise.resolve(started).then((value) => end({ done: true, value }), (err) => end({ done: false }, err ?? new Error(String(err))));
  });
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
  // The check's signal aborts at its timeout or when the run stops. Composed by hand, not with
  // AbortSignal.any: that ties a signal per check to the run's until a collection, which at
  // 1000 checks cost megabytes and milliseconds.
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new DOMException('The operation timed out.', 'TimeoutError'));
  }, timeoutMs);
  const onStop = () => controller.abort(stop.reason);
  if (stop.aborted) onStop();
  else stop.addEventListener('abort', onStop, { once: true });
  const signal = controller.signal;
  const ctx: CheckContext = {
    signal,
    timeoutMs,
    dependencies,
    // One line, CR alone included: a CI runner reads a line starting with "::" as a command.
    log: (message) => opts.log?.(`${check.id}: ${String(message).replace(/\s*[\r\n\u2028\u2029]\s*/g, ' ')}`),
  };
  const started = performance.now();
  // A check that ignores its signal still ends at its timeout: the race settles it, and the
  // process exit that follows the report reclaims whatever it left running.
  let onAbort = () => {};
  let grace: NodeJS.Timeout | undefined;
  let settledByAbort = false;
  const aborted = new Promise<CheckOutcome>((resolve) => {
    onAbort = () => {
      const interrupted = opts.signal?.aborted;
      const byDeadline = (!timedOut || cappedByDeadline) && !interrupted;
      const elapsed = () => Math.round(performance.now() - started);
      const cause: CheckOutcome = interrupted
        ? { status: 'fail', message: `interrupted by ${reasonOf(opts.signal!)} after ${elapsed()} ms` }
        : byDeadline
          ? { status: 'fail', message: `cut by the global deadline after ${elapsed()} ms` }
          : { status: 'fail', message: `timed out after ${timeoutMs} ms` };
      // >>> abortGraceMs (smoke scenarios): timeout, deadline and interrupt all leave the kind
      // that long to finish its cleanup and report; only if it overruns is the abort reported.
      const graceMs = check.checkKind.abortGraceMs ?? 0;
      if (graceMs > 0) {
        grace = setTimeout(() => {
          settledByAbort = true;
          resolve({ status: 'fail', message: `${cause.message}; its cleanup did not finish within ${graceMs} ms` });
        }, graceMs);
        return;
      }
      // <<< abortGraceMs
      if (interrupted || byDeadline) return resolve(cause);
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
    const answer = await Promise.race([Promise.resolve().then(() => check.checkKind.run(check.options, ctx)), aborted]);
    outcome = checkedOutcome(check, answer);
  } catch (err) {
    outcome = { status: 'fail', message: `check crashed: ${errorText(err)}` };
  } finally {
    clearTimeout(timer);
    clearTimeout(grace);
    signal.removeEventListener('abort', onAbort);
    stop.removeEventListener('abort', onStop);
  }
  // >>> abortGraceMs: a kind that reported within its grace keeps its message (which step ran
  // out of time, what cleanup did); an interrupt is a skip unless something failed, a cut is a fail.
  if (check.checkKind.abortGraceMs && signal.aborted && !settledByAbort && outcome.status !== 'fail') {
    outcome = opts.signal?.aborted ? { ...outcome, status: 'skip' } : { ...outcome, status: 'fail' };
  }
  // <<< abortGraceMs
  const durationMs = performance.now() - started;
  // An answer that comes after the timeout is late, even when the timer could not fire in time
  // (a check that blocked the event loop past it): a late pass or warning is a failure.
  if ((outcome.status === 'pass' || outcome.status === 'warn') && (timedOut || durationMs > timeoutMs)) {
    outcome = { status: 'fail', message: `timed out after ${timeoutMs} ms (its ${outcome.status} came after ${Math.round(durationMs)} ms)` };
  }
  const result = resultOf(check, outcome, durationMs);
  // The check's signal was aborted (it stays so) by the interrupt before the check ended.
  if (signal.aborted && opts.signal?.aborted) cutResults.add(result);
  return result;
}

/** The results an interrupt decided: the check was stopped, or never started, by it. */
const cutResults = new WeakSet<CheckResult>();

/** Whether an interrupt (Ctrl-C, SIGTERM) decided this result, rather than what the check saw. */
export function cutByInterrupt(result: CheckResult): boolean {
  return cutResults.has(result);
}

/** An outcome as the contract of src/check.ts defines it, or a failure naming the breach. */
function checkedOutcome(check: PlannedCheck, answer: unknown): CheckOutcome {
  const breach = (what: string): CheckOutcome => ({
    status: 'fail',
    message: `the ${check.checkKind.kind} check broke the check contract: ${what}`,
  });
  if (!answer || typeof answer !== 'object') return breach(`run() resolved to ${describe(answer)}, not { status, message }`);
  const { status, message, details, latencyMs, unanswered } = answer as Record<string, unknown>;
  if (typeof status !== 'string' || !STATUSES.has(status)) return breach(`status ${describe(status)} is not one of pass, warn, fail, skip`);
  if (typeof message !== 'string') return breach(`message is ${describe(message)}, not a string (status was ${status})`);
  if (details !== undefined && (details === null || typeof details !== 'object' || Array.isArray(details)))
    return breach(`details is ${describe(details)}, not an object (status was ${status})`);
  if (latencyMs !== undefined && !(typeof latencyMs === 'number' && Number.isFinite(latencyMs) && latencyMs >= 0))
    return breach(`latencyMs is ${describe(latencyMs)}, not a number of milliseconds (status was ${status})`);
  const peer = unanswered === undefined ? undefined : unansweredPeer(unanswered);
  if (typeof peer === 'string') return breach(`${peer} (status was ${status})`);
  return {
    status: status as Status,
    // One line a person reads: a kind that returns megabytes would make every report slow and huge.
    message: excerpt(message, MAX_MESSAGE_CHARS),
    details: details === undefined ? undefined : (jsonSafe(details, []) as Record<string, unknown>),
    ...(latencyMs === undefined ? {} : { latencyMs }),
    ...(peer === undefined ? {} : { unanswered: peer }),
  };
}

/** A copy of a well-formed `unanswered` (host, port, refused and nothing else read), or what is wrong with it. */
function unansweredPeer(value: unknown): Unanswered | string {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return `unanswered is ${describe(value)}, not { host, port, refused }`;
  const { host, port, refused } = value as Record<string, unknown>;
  // A host name or address never holds a space or a control character (it is printed in progress lines).
  if (typeof host !== 'string' || !/^[^\s\x00-\x1f\x7f]{1,255}$/.test(host)) return `unanswered.host is ${describe(host)}, not a host name`;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return `unanswered.port is ${describe(port)}, not a TCP port`;
  if (typeof refused !== 'boolean') return `unanswered.refused is ${describe(refused)}, not true or false`;
  return { host, port, refused };
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : typeof value === 'bigint' ? 'a BigInt' : String(value);
}

/** A copy every renderer can print: BigInt as text, cycles cut, functions and symbols left out. */
function jsonSafe(value: unknown, ancestors: object[]): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'function' || typeof value === 'symbol') return undefined;
  if (!value || typeof value !== 'object') return value;
  if (ancestors.includes(value)) return '[circular]';
  if (ancestors.length >= 32) return '[too deep]';
  const inner = [...ancestors, value];
  try {
    if (Array.isArray(value)) return value.map((v) => jsonSafe(v, inner) ?? null);
    if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return jsonSafe((value as { toJSON(): unknown }).toJSON(), inner);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const safe = jsonSafe(v, inner);
      if (safe !== undefined) out[k] = safe;
    }
    return out;
  } catch (err) {
    return `[unreadable: ${errorText(err)}]`;
  }
}

function errorText(err: unknown): string {
  try {
    return (err as Error)?.message ?? String(err);
  } catch {
    return 'an error that cannot be printed';
  }
}

/**
 * The result of a check. The one place a duration is rounded (0.1 ms); the message is kept as
 * the check wrote it, new lines included: the redactor masks it before making it one line.
 */
function resultOf(check: PlannedCheck, outcome: CheckOutcome, durationMs: number): CheckResult {
  return {
    id: check.id,
    kind: check.checkKind.kind,
    service: check.service,
    target: check.target,
    status: outcome.status,
    durationMs: Math.round(durationMs * 10) / 10,
    ...(outcome.latencyMs === undefined ? {} : { latencyMs: Math.round(outcome.latencyMs * 10) / 10 }),
    message: outcome.message,
    details: outcome.details ?? {},
    ...(outcome.unanswered === undefined ? {} : { unanswered: outcome.unanswered }),
  };
}
