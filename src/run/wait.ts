// `--wait`: the gate after a deploy, when services come up over minutes. Runs the plan, then
// re-runs what is not passing (and what it blocked) until everything passes, `consecutive`
// attempts in a row, or the budget is spent.
//
// Each failing check is asked again by what its peer said on its last run (a result's
// `unanswered`, see src/check.ts), on its own clock:
// - its peer answered, "not ready" or something wrong: the peer is up and coming. It is asked
//   again every STEADY_PAUSE_MS (jittered), like wait-on's fixed poll but a little slower;
// - its peer gave no answer (refused, unresolved, unreachable, timed out): a pause that grows
//   from 250 ms, doubling to 5 s, jittered, so a dead peer is not hammered. While it waits, a
//   port that refused is watched with bare TCP connects (see PortWatch); once it accepts one,
//   every failing check is re-run at once.
// Checks that fail together on answers are spread over the steady pause instead of being asked
// all at once: the checks of one service come up together, and whichever is asked first after
// that notices it. When a check comes up, every check still failing is re-run at once, for the
// same reason. So the gate notices readiness sooner than a poll of every endpoint at once, with
// fewer requests (bench/wait.bench.mjs). Under --consecutive every attempt re-runs every check,
// after the shortest of their pauses.
//
// Kinds marked `once` (smoke scenarios, which write) and whatever depends on them run a single
// time, after everything else passed; they are never retried.
import { setTimeout as sleep } from 'node:timers/promises';
import type { CheckContext, CheckKind, CheckResult, Unanswered } from '../check.js';
import { connectTcp } from '../clients/tcp.js';
import type { PlannedCheck } from './plan.js';
import { cutByInterrupt, runPlan, type RunOptions } from './runner.js';

export const FIRST_PAUSE_MS = 250;
export const MAX_PAUSE_MS = 5000;
// A check whose peer answered is asked again every 350 ms, give or take 50 (the jitter keeps a
// fleet of gates out of lockstep). wait-on polls every 250 ms: this sends about a quarter fewer
// requests, and the spreading above more than makes up for the longer pause when checks come
// up together. At 300 ms the bench's request count came within 5% of wait-on's.
export const STEADY_PAUSE_MS = 350;
export const STEADY_JITTER_MS = 50;
/** Checks due within this long of each other run in one attempt. */
const BATCH_MS = 20;
// A refused port is tried every 100 ms. A refusal is the host's kernel answering the connect:
// nothing in the service sees it, so watching often costs the service nothing, and a port that
// opens is noticed within about 100 ms.
export const WATCH_INTERVAL_MS = 100;
// A refusal comes back within a round trip; a connect that takes longer is given up.
const WATCH_CONNECT_TIMEOUT_MS = 1000;

export interface WaitOptions {
  /** Milliseconds from the first attempt during which another may start. */
  budgetMs: number;
  /** Attempts in a row in which every check must pass (default 1). */
  consecutive: number;
  /** Warnings count as not passing, as they fail the report. */
  strict: boolean;
  /** After each attempt that does not end the wait: what still fails, and the pause before the next. */
  onAttempt?: (progress: AttemptProgress) => void;
  /** A watched port accepted a connection: attempt `attempt` starts now. */
  onAccepting?: (address: string, attempt: number) => void;
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
  /** `host:port` of each refused port being watched: the next attempt starts once one accepts. */
  watching: string[];
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

/** How one check ended an attempt, for Pacing. */
export interface Ran {
  id: string;
  passing: boolean;
  /** Its peer gave no answer (the result's `unanswered`). */
  unanswered: boolean;
}

/** When each failing check is due again; times are performance.now() milliseconds. */
export class Pacing {
  private readonly due = new Map<string, { at: number; silentFor: number }>();

  constructor(
    private readonly options: {
      /** Spread checks that failed on answers in one attempt over the steady pause (off under --consecutive, which re-runs all). */
      spread: boolean;
      firstPauseMs?: number;
      maxPauseMs?: number;
      random?: () => number;
    },
  ) {}

  /** Record the checks an attempt ran, in plan order, and how each ended, at `now`. */
  record(ran: Ran[], now: number): void {
    const { firstPauseMs, maxPauseMs, random = Math.random } = this.options;
    const answered: string[] = [];
    for (const check of ran) {
      if (check.passing) this.due.delete(check.id);
      else if (check.unanswered) {
        const silentFor = (this.due.get(check.id)?.silentFor ?? 0) + 1;
        this.due.set(check.id, { at: now + pauseAfter(silentFor, firstPauseMs, maxPauseMs, random), silentFor });
      } else answered.push(check.id);
    }
    const spread = this.options.spread ? answered.length : 1;
    answered.forEach((id, i) => {
      const steady = STEADY_PAUSE_MS - STEADY_JITTER_MS + random() * 2 * STEADY_JITTER_MS;
      this.due.set(id, { at: now + Math.round((steady * Math.min(i + 1, spread)) / spread), silentFor: 0 });
    });
  }

  /** Every failing check is due at `now`: one came up, or a refused port accepts. */
  allDue(now: number): void {
    for (const pace of this.due.values()) pace.at = Math.min(pace.at, now);
  }

  /** When the first failing check is due; undefined when none fails. */
  next(): number | undefined {
    let first: number | undefined;
    for (const { at } of this.due.values()) first = first === undefined ? at : Math.min(first, at);
    return first;
  }

  /** The failing checks due by `now` (or within BATCH_MS of it). */
  dueBy(now: number): Set<string> {
    return new Set([...this.due].filter(([, pace]) => pace.at <= now + BATCH_MS).map(([id]) => id));
  }

  /** When `id` is due, and on how many attempts in a row its peer gave no answer; undefined when it passes. */
  of(id: string): { at: number; silentFor: number } | undefined {
    const pace = this.due.get(id);
    return pace && { ...pace };
  }
}

export async function runUntilPassing(plan: PlannedCheck[], run: RunOptions, wait: WaitOptions): Promise<WaitResult> {
  const started = performance.now();
  const remaining = () => wait.budgetMs - (performance.now() - started);
  const afterwards = onceAndDependents(plan);
  const retried = plan.filter((c) => !afterwards.has(c.id));
  const latest = new Map<string, CheckResult>();
  const interrupted = () => run.signal?.aborted ?? false;
  const everyTime = wait.consecutive > 1;
  const pacing = new Pacing({ spread: !everyTime, firstPauseMs: wait.firstPauseMs, maxPauseMs: wait.maxPauseMs, random: wait.random });
  const watch = new PortWatch(run.signal, wait.random);
  let attempts = 0;
  let streak = 0;
  let subset = retried;
  // A check coming up re-runs the rest at once, but at most once per steady pause: checks that
  // flap out of step would otherwise come up on every attempt, and the gate would never pause.
  let wokeAt = -Infinity;

  try {
    for (;;) {
      attempts++;
      // The wait bounds when attempts start, --deadline each attempt: an attempt begun just before
      // the end still gets its checks' own timeouts, so the last report holds what the stack said,
      // not "cut by the deadline after 8 ms". The whole takes at most --wait plus one --deadline.
      const results = await runPlan(withSettledDependencies(subset, latest), run);
      const ran: Ran[] = [];
      let cameUp = false;
      for (const r of results) {
        // A check cut by Ctrl-C or SIGTERM (mid-exchange, or never started) says nothing of the
        // stack; what it said on the attempt before is worth more.
        if (cutByInterrupt(r) && latest.has(r.id)) continue;
        const before = latest.get(r.id);
        latest.set(r.id, r);
        const nowPassing = passing(r, wait.strict);
        if (nowPassing && r.status !== 'skip' && before && !passing(before, wait.strict)) cameUp = true;
        ran.push({ id: r.id, passing: nowPassing, unanswered: !!r.unanswered });
      }
      const now = performance.now();
      pacing.record(ran, now);
      if (cameUp && now - wokeAt >= STEADY_PAUSE_MS) {
        pacing.allDue(now);
        wokeAt = now;
      }
      const notPassing = retried.map((c) => latest.get(c.id)!).filter((r) => !passing(r, wait.strict));
      streak = notPassing.length === 0 ? streak + 1 : 0;
      if (interrupted()) break;
      if (streak >= wait.consecutive) {
        if (afterwards.size) {
          const once = plan.filter((c) => afterwards.has(c.id));
          // Within the whole's bound, --wait plus one --deadline, not a fresh deadline of its own.
          const left = wait.budgetMs + run.deadlineMs - (performance.now() - started);
          for (const r of await runPlan(withSettledDependencies(once, latest), { ...run, deadlineMs: Math.max(1, Math.min(run.deadlineMs, left)) })) latest.set(r.id, r);
        }
        return { results: inPlanOrder(plan, latest, 'passed'), attempts, expired: false };
      }
      if (remaining() <= 0) break;
      // Nothing failing: a --consecutive streak is being confirmed. Its attempts are spread
      // out as before, by the attempt number: a streak over seconds says more about a flapping
      // service than one within a second.
      const nextAt = pacing.next() ?? now + pauseAfter(attempts, wait.firstPauseMs, wait.maxPauseMs, wait.random);
      // A pause cut short by the end of the budget is followed by one last attempt: the report is
      // then what the stack says at the end, not up to a pause ago.
      const nextInMs = Math.round(Math.min(Math.max(0, nextAt - performance.now()), Math.max(0, remaining())));
      watch.set(notPassing.flatMap((r) => (r.unanswered?.refused ? [r.unanswered] : [])));
      wait.onAttempt?.({ attempt: attempts, notPassing, streak, nextInMs, watching: watch.addresses() });
      try {
        const accepting = await watch.sleep(nextInMs);
        if (accepting) {
          pacing.allDue(performance.now());
          if (remaining() > 0) wait.onAccepting?.(address(accepting), attempts + 1);
        }
      } catch {
        break; // interrupted while pausing
      }
      const due = pacing.dueBy(performance.now());
      // Nothing due can only mean the timer fired a hair early: take the failing checks due first.
      subset = everyTime || notPassing.length === 0 ? retried : withDependents(retried, due.size ? due : pacing.dueBy(pacing.next()!));
    }
  } finally {
    watch.stop();
  }
  const why = interrupted() ? 'interrupted' : 'expired';
  return { results: inPlanOrder(plan, latest, why), attempts, expired: why === 'expired' };
}

/**
 * Watches refused ports while the wait pauses: connects to each every WATCH_INTERVAL_MS and
 * closes at once, sending nothing. A port seen refusing and then accepting wakes the wait.
 */
class PortWatch {
  private readonly watchers = new Map<string, AbortController>();
  private readonly accepted: Unanswered[] = [];
  private wake: (() => void) | undefined;

  constructor(
    private readonly signal: AbortSignal | undefined,
    private readonly random = Math.random,
  ) {}

  /** Watch these ports, and only these: the refused ports of the checks failing now. */
  set(peers: Unanswered[]): void {
    const wanted = new Map(peers.map((p) => [address(p), p]));
    this.accepted.splice(0, Infinity, ...this.accepted.filter((p) => wanted.has(address(p))));
    for (const [key, watcher] of this.watchers) {
      if (!wanted.has(key)) {
        watcher.abort();
        this.watchers.delete(key);
      }
    }
    for (const [key, peer] of wanted) {
      if (this.watchers.has(key)) continue;
      const watcher = new AbortController();
      this.watchers.set(key, watcher);
      void this.watchOne(peer, this.signal ? AbortSignal.any([this.signal, watcher.signal]) : watcher.signal).then((accepts) => {
        if (this.watchers.get(key) === watcher) this.watchers.delete(key);
        if (!accepts) return;
        this.accepted.push(peer);
        this.wake?.();
      });
    }
  }

  addresses(): string[] {
    return [...this.watchers.keys()];
  }

  /** Pause `ms`, or until a watched port accepts: resolves with it, or undefined. Rejects on an interrupt. */
  async sleep(ms: number): Promise<Unanswered | undefined> {
    if (this.accepted.length) return this.accepted.shift();
    const woken = new AbortController();
    this.wake = () => woken.abort();
    try {
      await sleep(ms, undefined, { signal: this.signal ? AbortSignal.any([this.signal, woken.signal]) : woken.signal });
      return undefined;
    } catch (err) {
      if (this.signal?.aborted || !woken.signal.aborted) throw err;
      return this.accepted.shift();
    } finally {
      this.wake = undefined;
    }
  }

  stop(): void {
    for (const watcher of this.watchers.values()) watcher.abort();
    this.watchers.clear();
  }

  /**
   * True when `peer` accepts a connection after this watch saw it refuse one. False when the first
   * connection is accepted: the check failed on something else (the port accepts already, or the
   * refusal came from another address, say after a redirect), and waking the wait would re-run
   * it at once, again and again. The first connect is made at once, the second after a random
   * part of the interval, so that the watches of several ports do not connect in step.
   */
  private async watchOne(peer: Unanswered, stop: AbortSignal): Promise<boolean> {
    let refusedSeen = false;
    let pauseMs = this.random() * WATCH_INTERVAL_MS;
    while (!stop.aborted) {
      const started = performance.now();
      const facts = await connectTcp(peer.host, peer.port, WATCH_CONNECT_TIMEOUT_MS, stop);
      if (stop.aborted) return false;
      if (facts.connectMs !== undefined) return refusedSeen;
      if (facts.unanswered?.refused) refusedSeen = true;
      await sleep(Math.max(0, pauseMs - (performance.now() - started)), undefined, { signal: stop }).catch(() => {});
      pauseMs = WATCH_INTERVAL_MS;
    }
    return false;
  }
}

/** `host:port`, an IPv6 address in brackets. */
function address(peer: Unanswered): string {
  return `${peer.host.includes(':') ? `[${peer.host}]` : peer.host}:${peer.port}`;
}

/**
 * Passing for the wait: what would not fail the report. A check skipped because a dependency
 * failed passes here too, since that dependency does not, and its re-run re-runs the check.
 */
export function passing(r: CheckResult, strict: boolean): boolean {
  return r.status === 'pass' || r.status === 'skip' || (r.status === 'warn' && !strict);
}

/** The checks named in `ids`, and every check that depends on one of them (it ran blocked). */
function withDependents(plan: PlannedCheck[], ids: Set<string>): PlannedCheck[] {
  const rerun = new Set(ids);
  for (const id of dependentsClosure(plan, ids)) rerun.add(id);
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
