// The smoke-scenario engine. A scenario is a check kind (same contract, same runner, report,
// --only and dependsOn) whose `run` is a runbook: named steps that write the scenario's own marked
// data and check it, then cleanup steps that always run (after a pass, a failed step, a step
// timeout, the scenario's budget, the global deadline or an interrupt) with their own short
// budget, using whatever was captured before. Each step is a row of `details.steps`.
//
// Hand-written: retry libraries (p-retry and friends) neither stop at the step's budget nor tell
// an HTTP 401 from a 503, and the steps, captures and cleanup are this project's own shape.
import { randomBytes } from 'node:crypto';
import type { CheckContext, CheckKind, CheckOutcome, CheckResult, StandardSchemaV1 } from '../check.js';
import { fetchHttp, HttpError, type HttpRequest, type HttpResponse } from '../clients/http.js';
import { startHttpThread } from '../clients/http-thread.js';
import { excerpt, learnSecrets, Redactor } from '../redact.js';

export type StepStatus = 'pass' | 'warn' | 'fail' | 'skip';

/** One row of `details.steps`. */
export interface StepRecord {
  name: string;
  status: StepStatus;
  durationMs: number;
  message: string;
}

/** Cleanup gets this long after the main steps end, however they ended. */
export const CLEANUP_BUDGET_MS = 5000;
/** A request's own bound unless the service's `timeout` says otherwise. */
export const REQUEST_TIMEOUT_MS = 5000;
const BACKOFF = { firstMs: 150, capMs: 2000 };

/** One id per process run: markers and sentinels carry it, so concurrent runs never meet. */
export const RUN_ID = randomBytes(6).toString('hex');

/** Why a step did not pass. `retryable` failures are tried again within the step's retry bound. */
export class StepFailure extends Error {
  constructor(
    message: string,
    readonly retryable = false,
  ) {
    super(message);
    this.name = 'StepFailure';
  }
}

/** The step fails now; retrying would not help (a 401, a wrong payload). */
export function fail(message: string): never {
  throw new StepFailure(message, false);
}

/** Not there yet: a retrying step tries again after a backoff, others fail with this message. */
export function notYet(message: string): never {
  throw new StepFailure(message, true);
}

/** What a step's body gets. */
export interface Step {
  readonly signal: AbortSignal;
  readonly attempt: number;
  /** The project's HTTP client, bounded by the request timeout and what is left of the step. */
  http(req: Omit<HttpRequest, 'timeoutMs' | 'signal'>): Promise<HttpResponse>;
  /** The step passes, with a warning that the scenario's row carries. */
  warn(message: string): void;
  /** The step does not apply here (returns its message as the reason). */
  skip(message: string): void;
}

export interface StepSpec {
  name: string;
  /** Returns the step's message when it passes. */
  run(step: Step): Promise<string | void>;
  /** Try again on retryable failures, with capped exponential backoff and jitter, for this long. */
  retryForMs?: number;
  /** The step's own bound (default: what is left of the scenario's budget). */
  timeoutMs?: number;
}

export function step(name: string, run: StepSpec['run'], options: Omit<StepSpec, 'name' | 'run'> = {}): StepSpec {
  return { name, run, ...options };
}

/** Per-run facts and captures, handed to the runbook that builds the steps. */
export class ScenarioRun {
  /** Facts for `details` (generation, marker): shown as they are. */
  readonly details: Record<string, unknown> = {};
  private readonly captured = new Map<string, unknown>();

  constructor(
    readonly scenario: string,
    readonly ctx: CheckContext,
    private readonly redactor: Redactor,
    readonly requestTimeoutMs: number,
  ) {}

  /** A unique marker for this scenario in this run: `soma-verify-sfm-smoke-<run>-<random>`. */
  marker(): string {
    return `soma-verify-${this.scenario.replace(/\W+/g, '-')}-${RUN_ID}-${randomBytes(3).toString('hex')}`;
  }

  /** Remember a value a service returned (a coordinate, a key): usable by later steps and by
   *  cleanup, and masked in every output, since the scenario did not choose it. */
  capture<T>(name: string, value: T): T {
    this.captured.set(name, value);
    const text = Array.isArray(value) ? value.join(',') : typeof value === 'string' ? value : JSON.stringify(value);
    this.redactor.add(text);
    if (typeof value !== 'string') this.redactor.add(JSON.stringify(value));
    return value;
  }

  get<T>(name: string): T | undefined {
    return this.captured.get(name) as T | undefined;
  }

  has(name: string): boolean {
    return this.captured.has(name);
  }

  /** A health check this scenario depends on, when it is in the plan. */
  dependency(id: string): CheckResult | undefined {
    return this.ctx.dependencies.get(id);
  }
}

export interface ScenarioDefinition<Options> {
  kind: string;
  options: StandardSchemaV1<unknown, Options>;
  target(options: Options): string;
  /** The per-request bound from the options (a service's `timeout`). */
  requestTimeoutMs?(options: Options): number | undefined;
  /** The runbook: main steps, in order, and the cleanup that always runs after them. */
  runbook(options: Options, run: ScenarioRun): { steps: StepSpec[]; cleanup: StepSpec[]; summary(): string };
}

/** A scenario as a check kind, with the grace the runner leaves its cleanup after an abort. */
export function defineScenario<Options>(def: ScenarioDefinition<Options>): CheckKind<Options> {
  return {
    kind: def.kind,
    options: def.options,
    target: def.target,
    prepare: startHttpThread,
    abortGraceMs: CLEANUP_BUDGET_MS + 1000,
    // It writes: once per verification, never retried by --wait.
    once: true,
    run: (options, ctx) => runScenario(def, options, ctx),
  };
}

async function runScenario<Options>(def: ScenarioDefinition<Options>, options: Options, ctx: CheckContext): Promise<CheckOutcome> {
  const redactor = new Redactor();
  learnSecrets(redactor, options); // tokens, in any form a server might echo them
  const run = new ScenarioRun(def.kind, ctx, redactor, def.requestTimeoutMs?.(options) ?? REQUEST_TIMEOUT_MS);
  const budgetEnds = performance.now() + ctx.timeoutMs;
  const { steps, cleanup, summary } = def.runbook(options, run);
  const records: StepRecord[] = [];
  const log = (r: StepRecord) => ctx.log(redactor.text(`step '${r.name}' ${r.status}: ${r.message}`));

  let failed: StepRecord | undefined;
  /** The step the scenario's signal (budget, deadline, interrupt) stopped, or would have run. */
  let cutAt: string | undefined;
  for (const spec of steps) {
    if (failed || ctx.signal.aborted) {
      cutAt ??= failed ? undefined : spec.name;
      records.push({ name: spec.name, status: 'skip', durationMs: 0, message: failed ? `not run: '${failed.name}' failed` : `not run: ${abortCause(ctx)}` });
      continue;
    }
    const { record, stopped } = await runStep(spec, ctx.signal, budgetEnds, run.requestTimeoutMs, () => abortCause(ctx));
    records.push(record);
    log(record);
    if (record.status === 'fail') {
      failed = record;
      if (stopped) cutAt = spec.name;
    }
  }

  // Cleanup: its own budget, not the (maybe aborted) scenario signal, and every step runs even
  // when an earlier one failed.
  const cleanupEnds = performance.now() + CLEANUP_BUDGET_MS;
  const cleanupSignal = AbortSignal.timeout(CLEANUP_BUDGET_MS);
  const cleanupRecords: StepRecord[] = [];
  for (const spec of cleanup) {
    const { record } = await runStep(spec, cleanupSignal, cleanupEnds, run.requestTimeoutMs, () => `the cleanup budget of ${CLEANUP_BUDGET_MS} ms passed`);
    const named = { ...record, name: `cleanup: ${record.name}` };
    cleanupRecords.push(named);
    log(named);
  }
  const cleanupFailed = cleanupRecords.filter((r) => r.status === 'fail');
  const cleanupDone = cleanupRecords.filter((r) => r.status === 'pass' || r.status === 'warn');
  // What cleanup did, or why it had nothing to do ("nothing was written", "already removed").
  const cleanupMessage = cleanupFailed.length
    ? cleanupFailed.map((r) => `${r.name.replace(/^cleanup: /, '')}: ${r.message}`).join('; ')
    : (cleanupDone.length ? cleanupDone : cleanupRecords).map((r) => r.message).join('; ') || 'nothing to clean';

  const interrupted = ctx.signal.aborted && !isTimeout(ctx.signal.reason);
  const warned = records.filter((r) => r.status === 'warn');
  let status: CheckOutcome['status'];
  let message: string;
  if (cutAt) {
    // An interrupted run is a skip (exit 130 says why) unless its cleanup failed.
    status = interrupted && !cleanupFailed.length ? 'skip' : 'fail';
    message = interrupted ? `interrupted at step '${cutAt}'` : `ran out of time (${ctx.timeoutMs} ms) at step '${cutAt}'`;
  } else if (failed) {
    status = 'fail';
    message = `${failed.name}: ${failed.message}`;
  } else if (cleanupFailed.length) {
    status = 'fail';
    message = summary();
  } else if (warned.length) {
    status = 'warn';
    message = warned.map((r) => `${r.name}: ${r.message}`).join('; ');
  } else {
    status = 'pass';
    message = summary();
  }
  if (cleanupFailed.length) message += `; CLEANUP FAILED: ${cleanupMessage}`;
  else if (failed || cutAt) message += `; cleanup: ${cleanupMessage}`;
  const generation = generationNote(run.details.generation);
  if (generation) message += ` (${generation})`;

  return redactor.value({
    status,
    message,
    details: {
      ...run.details,
      steps: [...records, ...cleanupRecords],
      cleanup: { ok: cleanupFailed.length === 0, message: cleanupMessage },
    },
  });
}

async function runStep(
  spec: StepSpec,
  parent: AbortSignal,
  budgetEnds: number,
  requestTimeoutMs: number,
  parentCause: () => string,
): Promise<{ record: StepRecord; stopped?: boolean }> {
  const started = performance.now();
  const stepMs = Math.max(1, Math.floor(Math.min(spec.timeoutMs ?? Infinity, budgetEnds - started)));
  // Without a bound of its own a step ends with the budget, which `parent` already enforces: one
  // timer, so the report says "ran out of time", never a race between two.
  const signal = spec.timeoutMs ? AbortSignal.any([parent, AbortSignal.timeout(stepMs)]) : parent;
  const stepEnds = started + stepMs;
  let verdict: { status: 'warn' | 'skip'; message: string } | undefined;
  const record = (status: StepStatus, message: string) => ({
    record: {
      name: spec.name,
      status,
      durationMs: Math.round((performance.now() - started) * 10) / 10,
      message: message.replace(/\s*\n\s*/g, ' '),
    },
  });
  // The step's end is its own bound when it has one, else the budget (`parent`, whose timer may
  // fire a moment after the step noticed the time is up).
  const ownBound = !!spec.timeoutMs && stepMs === spec.timeoutMs;
  const stop = () => ({ ...record('fail', ownBound && !parent.aborted ? `step timed out after ${stepMs} ms` : parentCause()), stopped: !ownBound || parent.aborted });

  for (let attempt = 1; ; attempt++) {
    verdict = undefined;
    const handle: Step = {
      signal,
      attempt,
      http: (req) => {
        const left = Math.floor(stepEnds - performance.now());
        if (signal.aborted || left <= 0) return Promise.reject(new StepEnded());
        // A request cut by the step's end is reported by the step ("ran out of time"), not as a
        // slow server.
        const capped = left < requestTimeoutMs;
        return fetchHttp({ ...req, timeoutMs: capped ? left : requestTimeoutMs, signal }).catch((err: unknown) => {
          // (the request's own timeout, set to what was left of the step, may fire just before it)
          if (capped && err instanceof HttpError && /TIMEOUT/i.test(err.code)) throw new StepEnded();
          throw err;
        });
      },
      warn: (message) => (verdict = { status: 'warn', message }),
      skip: (message) => (verdict = { status: 'skip', message }),
    };
    let failure: StepFailure;
    try {
      const message = await spec.run(handle);
      // (set by handle.warn / handle.skip, which TypeScript does not follow into the closure)
      const said = verdict as { status: 'warn' | 'skip'; message: string } | undefined;
      if (signal.aborted && !said) return stop();
      return said ? record(said.status, said.message) : record('pass', message ?? 'ok');
    } catch (err) {
      if (signal.aborted || err instanceof StepEnded) return stop();
      failure = asFailure(err);
    }
    const elapsed = performance.now() - started;
    if (!spec.retryForMs || !failure.retryable) {
      return record('fail', attempt > 1 ? `${failure.message} (attempt ${attempt})` : failure.message);
    }
    // Capped exponential backoff with equal jitter: half fixed, half random.
    const ceiling = Math.min(BACKOFF.capMs, BACKOFF.firstMs * 2 ** (attempt - 1));
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    // The retry bound, or the step's budget when that is shorter: end with the real reason
    // ("recalled only from working memory") rather than "ran out of time".
    if (elapsed + delay > Math.min(spec.retryForMs, stepMs)) {
      return record('fail', `${failure.message} (still so after ${attempt} attempt${attempt === 1 ? '' : 's'} in ${Math.round(elapsed)} ms)`);
    }
    if (!(await sleep(delay, signal))) return stop();
  }
}

/** The step's time is up (thrown by `http`; the step reports why). */
class StepEnded extends Error {}

/** A transport failure may pass (a restarting server); anything else thrown is a bug: terminal. */
function asFailure(err: unknown): StepFailure {
  if (err instanceof StepFailure) return err;
  if (err instanceof HttpError) return new StepFailure(err.message, true);
  return new StepFailure(`step crashed: ${(err as Error)?.message ?? String(err)}`);
}

function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

const isTimeout = (reason: unknown) => (reason as { name?: string } | undefined)?.name === 'TimeoutError';

/** Why the scenario's signal stopped it; before that signal fires, only its budget can have. */
function abortCause(ctx: CheckContext): string {
  return !ctx.signal.aborted || isTimeout(ctx.signal.reason) ? `ran out of time: the scenario's budget of ${ctx.timeoutMs} ms passed` : 'interrupted';
}

function generationNote(generation: unknown): string | undefined {
  if (typeof generation === 'string') return generation;
  if (generation && typeof generation === 'object') {
    return Object.entries(generation).map(([service, g]) => `${service} ${g}`).join(', ');
  }
  return undefined;
}

/**
 * What an HTTP answer means for a step: the expected statuses pass; 401, 403, 422 and a 404 on
 * a route are terminal (retrying an auth failure only hides it); 404 of an item a step waits for,
 * 408, 425, 429 and 5xx may pass on a later try.
 */
export function expectStatus(
  res: HttpResponse,
  ok: number[],
  what: string,
  options: { absentIs404?: boolean; meaning?: Record<number, string> } = {},
): void {
  if (ok.includes(res.status)) return;
  const said = detailOf(res);
  const meaning = options.meaning?.[res.status];
  const message = `${what} answered ${res.status}${meaning ? ` (${meaning})` : said ? `: ${said}` : ''}`;
  if (res.status === 404) {
    if (options.absentIs404) notYet(message);
    fail(`${message}: the route is missing (wrong generation or URL?)`);
  }
  if ([408, 425, 429].includes(res.status) || res.status >= 500) notYet(message);
  fail(message);
}

/** The `detail` a FastAPI or Django answer gives, short. */
export function detailOf(res: HttpResponse): string {
  const body = res.json;
  if (body && typeof body === 'object' && typeof (body as { detail?: unknown }).detail === 'string') {
    return excerpt((body as { detail: string }).detail, 120);
  }
  return '';
}

/** A JSON object body, or a failure naming what came instead. */
export function objectBody(res: HttpResponse, what: string): Record<string, unknown> {
  const body = res.json;
  if (body && typeof body === 'object' && !Array.isArray(body)) return body as Record<string, unknown>;
  fail(`${what} answered ${res.status} without a JSON object: ${excerpt(res.text, 80)}`);
}
