// `--wait`: the gate after a deploy, when services come up over minutes. Runs the plan, then
// re-runs what is not passing (and what it blocked) until everything passes, `consecutive`
// attempts in a row, or the budget is spent. Pauses grow from 250 ms, doubling to 5 s, with
// jitter: a service that comes up is noticed within about one capped pause, a dead one is not
// hammered, and a fleet of gates started together does not probe in lockstep.
//
// Kinds marked `once` (smoke scenarios, which write) and whatever depends on them run a single
// time, after everything else passed; they are never retried.
import { setTimeout as sleep } from 'node:timers/promises';
import type { CheckContext, CheckKind, CheckResult } from '../check.js';
import type { PlannedCheck } from './plan.js';
import { runPlan, type RunOptions } from './runner.js';

export const FIRST_PAUSE_MS = 250;
export const MAX_PAUSE_MS = 5000;

export interface WaitOptions {
  /** Milliseconds from the first attempt during which another may start. */
  budgetMs: number;
  /** Attempts in a row in which every check must pass (default 1). */
  consecutive: number;
  /** Warnings count as not passing, as they fail the report. */
  strict: boolean;
  /** After each attempt that does not end the wait: what still fails, and the pause before the next. */
  onAttempt?: (progress: AttemptProgress) => void;
  firstPauseMs?: number;
  maxPauseMs?: number;
  /** [0, 1), for the jitter; tests pass their own. */
  random?: () => number;
}

export interface AttemptProgress {
  attempt: number;
  /** The latest result of each check that is not passing, in plan order. */
  notPassing: CheckResult[];
  /** Attempts in a row, up to this one, in which everything passed. */
  streak: number;
  nextInMs: number;
}

export interface WaitResult {
  /** The latest result of every check, in plan order: the one report of the wait. */
  results: CheckResult[];
  attempts: number;
  /** The budget ran out before every check passed `consecutive` times in a row. */
  expired: boolean;
}

/** The pause after attempt `attempt` (1-based): doubling from `first`, capped, jittered to 50-100%. */
export function pauseAfter(attempt: number, first = FIRST_PAUSE_MS, max = MAX_PAUSE_MS, random = Math.random): number {
  const base = Math.min(max, first * 2 ** Math.min(attempt - 1, 30));
  return Math.round(base / 2 + (random() * base) / 2);
}

export async function runUntilPassing(plan: PlannedCheck[], run: RunOptions, wait: WaitOptions): Promise<WaitResult> {
  const started = performance.now();
  const remaining = () => wait.budgetMs - (performance.now() - started);
  const afterwards = onceAndDependents(plan);
  const retried = plan.filter((c) => !afterwards.has(c.id));
  const latest = new Map<string, CheckResult>();
  const interrupted = () => run.signal?.aborted ?? false;
  let attempts = 0;
  let streak = 0;

  for (;;) {
    const subset = attempts === 0 || wait.consecutive > 1 ? retried : toRerun(retried, latest, wait.strict);
    attempts++;
    // The wait bounds when attempts start, --deadline each attempt: an attempt begun just before
    // the end still gets its checks' own timeouts, so the last report holds what the stack said,
    // not "cut by the deadline after 8 ms". The whole takes at most --wait plus one --deadline.
    const results = await runPlan(withSettledDependencies(subset, latest), run);
    for (const r of results) {
      // A check cut by Ctrl-C says "interrupted"; what it said on the attempt before is worth more.
      if (interrupted() && r.status === 'skip' && latest.has(r.id)) continue;
      latest.set(r.id, r);
    }
    const notPassing = retried.map((c) => latest.get(c.id)!).filter((r) => !passing(r, wait.strict));
    streak = notPassing.length === 0 ? streak + 1 : 0;
    if (interrupted()) break;
    if (streak >= wait.consecutive) {
      if (afterwards.size) {
        const once = plan.filter((c) => afterwards.has(c.id));
        for (const r of await runPlan(withSettledDependencies(once, latest), run)) latest.set(r.id, r);
      }
      return { results: inPlanOrder(plan, latest, 'passed'), attempts, expired: false };
    }
    if (remaining() <= 0) break;
    const nextInMs = Math.min(pauseAfter(attempts, wait.firstPauseMs, wait.maxPauseMs, wait.random), Math.max(0, remaining()));
    wait.onAttempt?.({ attempt: attempts, notPassing, streak, nextInMs });
    try {
      await sleep(nextInMs, undefined, { signal: run.signal });
    } catch {
      break; // interrupted while pausing
    }
    if (remaining() <= 0) break;
  }
  const why = interrupted() ? 'interrupted' : 'expired';
  return { results: inPlanOrder(plan, latest, why), attempts, expired: why === 'expired' };
}

/**
 * Passing for the wait: what would not fail the report. A check skipped because a dependency
 * failed passes here too, since that dependency does not, and its re-run re-runs the check.
 */
function passing(r: CheckResult, strict: boolean): boolean {
  return r.status === 'pass' || r.status === 'skip' || (r.status === 'warn' && !strict);
}

/** The checks not passing, and every check that depends on one of them (it ran blocked). */
function toRerun(plan: PlannedCheck[], latest: Map<string, CheckResult>, strict: boolean): PlannedCheck[] {
  const rerun = new Set(plan.filter((c) => !passing(latest.get(c.id)!, strict)).map((c) => c.id));
  for (const id of dependentsClosure(plan, rerun)) rerun.add(id);
  return plan.filter((c) => rerun.has(c.id));
}

/** Kinds marked `once`, and every check that depends on one, directly or not. */
function onceAndDependents(plan: PlannedCheck[]): Set<string> {
  const once = new Set(plan.filter((c) => c.checkKind.once).map((c) => c.id));
  return new Set([...once, ...dependentsClosure(plan, once)]);
}

function dependentsClosure(plan: PlannedCheck[], roots: Set<string>): Set<string> {
  const dependents = new Map<string, string[]>();
  for (const c of plan) for (const d of c.dependsOn) dependents.set(d, [...(dependents.get(d) ?? []), c.id]);
  const found = new Set<string>();
  const queue = [...roots];
  while (queue.length) {
    for (const next of dependents.get(queue.pop()!) ?? []) {
      if (!found.has(next) && !roots.has(next)) {
        found.add(next);
        queue.push(next);
      }
    }
  }
  return found;
}

/**
 * The runner waits on every id in `dependsOn`: a dependency that passed on an earlier attempt
 * and is not re-run is dropped from the list, and its result handed to the check's `run` as if
 * it had just run, so a kind reads `ctx.dependencies` the same either way.
 */
function withSettledDependencies(subset: PlannedCheck[], latest: Map<string, CheckResult>): PlannedCheck[] {
  const ids = new Set(subset.map((c) => c.id));
  return subset.map((check) => {
    const settled = check.dependsOn.filter((d) => !ids.has(d) && latest.has(d)).map((d) => [d, latest.get(d)!] as const);
    if (settled.length === 0) return check;
    // Defined, not assigned: a plugin may export a frozen kind.
    const kind: CheckKind = Object.create(check.checkKind, {
      run: { value: (options: unknown, ctx: CheckContext) => check.checkKind.run(options, { ...ctx, dependencies: new Map([...settled, ...ctx.dependencies]) }) },
    });
    return { ...check, checkKind: kind, dependsOn: check.dependsOn.filter((d) => ids.has(d)) };
  });
}

function inPlanOrder(plan: PlannedCheck[], latest: Map<string, CheckResult>, why: 'passed' | 'interrupted' | 'expired'): CheckResult[] {
  return plan.map(
    (c) =>
      latest.get(c.id) ?? {
        id: c.id,
        kind: c.checkKind.kind,
        service: c.service,
        target: c.target,
        status: 'skip',
        durationMs: 0,
        message:
          why === 'interrupted'
            ? 'interrupted before it started'
            : 'not run: it runs once, after every other check passed, and the --wait time ran out first',
        details: {},
      },
  );
}
