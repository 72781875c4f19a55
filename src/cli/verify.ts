// The verification pipeline: config -> environment -> plan -> run -> redact -> report.
import { dirname, resolve } from 'node:path';
import { constants } from 'node:os';
import type { CheckResult } from '../check.js';
import { ConfigError, validate } from '../config/issues.js';
import { findConfigFile, loadConfig, type LoadedConfig } from '../config/load.js';
import { checkDuration } from '../config/duration.js';
import { keepCodeCaches } from '../code-cache.js';
import { SecretError } from '../config/secrets.js';
import { learnSecrets, MIN_SECRET_LENGTH, Redactor } from '../redact.js';
import type { Format } from '../report/index.js';
import type { PlannedCheck } from '../run/plan.js';
import { checksCount } from '../report/report.js';
import { EXIT } from './exit.js';

export interface VerifyArgs {
  env: string;
  config?: string;
  format: Format;
  output?: string;
  only: string[];
  skip: string[];
  list: boolean;
  concurrency?: number;
  timeout?: string;
  deadline?: string;
  strict: boolean;
  verbose: boolean;
  /** --smoke / --no-smoke; unset: the environment's `smoke` setting. */
  smoke?: boolean;
  /** --wait DURATION: re-run what fails until everything passes (exit 3 when it runs out). */
  wait?: string;
  /** --consecutive N: under --wait, attempts in a row in which everything must pass. */
  consecutive?: number;
}

/** What a plan needs from the command line (verify and serve share it). */
export type PlanArgs = Pick<VerifyArgs, 'env' | 'config' | 'only' | 'skip' | 'concurrency' | 'timeout' | 'deadline' | 'verbose' | 'smoke'>;

const DEFAULTS = { timeoutMs: 5000, deadlineMs: 60_000, concurrency: 16 };
/** After a second Ctrl-C, how long smoke scenarios may still spend removing their data. */
const SECOND_SIGNAL_GRACE_MS = 3000;
/**
 * A verification of hundreds of checks goes without V8's optimizing compiler, as soon as the
 * config says so: in a run this short it cost more than it saved (1000 checks: 0.95 s of CPU and
 * 86 MB without it, 1.17 s and 100 MB with it). For fewer it saves more than it costs (100 checks:
 * 0.43 s with it, 0.50 s without), as for the stack's dozen; serve mode, which runs for days,
 * keeps it. Flags are the process's, the HTTP thread's too; V8 checks a code cache against them,
 * so nothing this run compiles is kept in the cache.
 */
function sizeCompilerFor(checks: number) {
  if (checks < 500) return;
  process.getBuiltinModule('node:v8').setFlagsFromString('--no-turbofan');
  keepCodeCaches();
}
/** Under --wait, how often a progress line is printed while what fails stays the same. */
const PROGRESS_EVERY_MS = 5000;

export async function verify(args: VerifyArgs, cwd = process.cwd(), env = process.env): Promise<number> {
  const redactor = new Redactor();
  const say = (line: string) => process.stderr.write(`${redactor.text(line)}\n`);
  const stopReporting = reportStrayErrors(say, 'soma-verify');
  const exitGuard = guardProcessExit();
  divertStdout(say);
  try {
    return await verifyOrThrow(args, cwd, env, redactor, say, exitGuard);
  } catch (err) {
    return setupFailed(err, say);
  } finally {
    stopReporting();
    exitGuard.restore();
    stopDivertingStdout();
  }
}

/** What stops a run before it starts: one clear message per problem, exit code 2 (serve shares it). */
export function setupFailed(err: unknown, say: (line: string) => void): number {
  if (err instanceof ConfigError) {
    for (const problem of err.problems) say(`soma-verify: ${problem}`);
    return EXIT.usage;
  }
  if (err instanceof SecretError) {
    say(`soma-verify: ${err.message}`);
    return EXIT.usage;
  }
  say(`soma-verify: internal error: ${(err as Error)?.stack ?? String(err)}`);
  return EXIT.usage;
}

/** Config -> environment -> plan, with the run's limits; shared by a verification and serve mode. */
export async function loadPlan(
  args: PlanArgs,
  cwd: string,
  env: NodeJS.ProcessEnv,
  redactor: Redactor,
  say: (line: string) => void,
  /** The number of checks the config lists, once read (before it is validated). */
  sized: (checks: number) => void = () => {},
): Promise<{ plan: PlannedCheck[]; concurrency: number; deadlineMs: number }> {
  const configPath = findConfigFile(cwd, args.config);
  const loaded = configPath ? await loadConfig(configPath, env, (config) => sized(checksIn(config, args.env))) : undefined;
  for (const secret of loaded?.secrets ?? []) redactor.add(secret.value, `\${${secret.name}}`);
  const timeoutMs = durationArg('--timeout', args.timeout) ?? loaded?.config.defaults.timeout ?? DEFAULTS.timeoutMs;
  const deadlineMs = durationArg('--deadline', args.deadline) ?? loaded?.config.defaults.deadline ?? DEFAULTS.deadlineMs;
  const concurrency = args.concurrency ?? loaded?.config.defaults.concurrency ?? DEFAULTS.concurrency;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new ConfigError([`--concurrency: expected a whole number of at least 1`]);

  const environment = await environmentFor(args.env, loaded, cwd, env, redactor, say, args.verbose);
  learnSecrets(redactor, environment, '', `environments.${args.env}`);
  // The PostgreSQL client falls back on libpq's PGPASSWORD for a DSN without a password.
  redactor.add(env.PGPASSWORD, 'PGPASSWORD');
  // Named, never shown: the user must know a secret of theirs cannot be masked.
  for (const name of redactor.tooShort)
    say(`soma-verify: warning: the secret in ${name} is shorter than ${MIN_SECRET_LENGTH} characters, too short to mask: it may appear in the output`);

  const { KindRegistry } = await import('../run/kinds.js');
  const { buildPlan, selectChecks } = await import('../run/plan.js');
  const { specsForEnvironment } = await import('../stack/index.js');
  const kinds = await KindRegistry.create(loaded?.config.plugins ?? [], loaded ? dirname(loaded.path) : cwd, timeoutMs);
  const plan = await selectChecks(
    await buildPlan(specsForEnvironment(environment, args.env, { smoke: args.smoke ?? environment.smoke !== false }), kinds, timeoutMs),
    args.only,
    args.skip,
  );
  if (plan.length === 0) throw new ConfigError([`environment "${args.env}" has no checks to run${args.only.length || args.skip.length ? ' after --only/--skip' : ''}`]);
  return { plan, concurrency, deadlineMs };
}

async function verifyOrThrow(
  args: VerifyArgs,
  cwd: string,
  env: NodeJS.ProcessEnv,
  redactor: Redactor,
  say: (line: string) => void,
  exitGuard: ProcessExitGuard,
): Promise<number> {
  const { plan, concurrency, deadlineMs } = await loadPlan(args, cwd, env, redactor, say, sizeCompilerFor);
  // --wait: read before anything runs, so that a bad value exits 2 at once.
  const waitMs = durationArg('--wait', args.wait);
  if (args.consecutive !== undefined && waitMs === undefined) throw new ConfigError([`--consecutive: only means something with --wait`]);
  const consecutive = args.consecutive ?? 1;
  if (!Number.isInteger(consecutive) || consecutive < 1) throw new ConfigError([`--consecutive: expected a whole number of at least 1`]);
  // A report that cannot be written is a usage error now, not after a whole --wait.
  if (args.output) await assertOutputWritable(args.output, cwd);

  if (args.list) {
    // Redact before rendering (a table may wrap a secret, JSON may escape it), and only the
    // target: ids and kinds are the plan's structure.
    const rows = plan.map((c) => ({ id: c.id, kind: c.checkKind.kind, service: c.service, target: redactor.text(c.target), timeoutMs: c.timeoutMs, dependsOn: c.dependsOn }));
    const { renderPlan } = await import('../report/plan.js');
    await emit(renderPlan(args.env, rows, args.format === 'json' ? 'json' : 'table'), args.output);
    return EXIT.ok;
  }

  // While smoke scenarios clean up, a second signal leaves their cleanup a few seconds more
  // (bounded) instead of quitting at once.
  const cleanupGraceMs = Math.min(SECOND_SIGNAL_GRACE_MS, Math.max(0, ...plan.map((c) => c.checkKind.abortGraceMs ?? 0)));
  const stopper = stopOnSignals(say, exitGuard, cleanupGraceMs);
  const progress = args.verbose || process.stderr.isTTY;
  const { runPlan } = await import('../run/runner.js');
  sizeCompilerFor(plan.length);
  const startedAt = new Date();
  const started = performance.now();
  if (progress) say(`soma-verify: running ${checksCount(plan.length)} on ${args.env}`);
  const runOptions = {
    concurrency,
    deadlineMs,
    signal: stopper.signal,
    onResult: progress ? (r: CheckResult) => process.stderr.write(`  ${r.status.padEnd(4)} ${r.id} (${Math.round(r.durationMs)} ms) ${redactor.result(r).message}\n`) : undefined,
    log: args.verbose ? say : undefined,
  };
  let expired = false;
  let expiry = '';
  let results: CheckResult[];
  if (waitMs === undefined) {
    results = await runPlan(plan, runOptions);
  } else {
    // --wait: progress always goes to stderr (a CI log is no terminal), the report once at the end.
    const { runUntilPassing, passing } = await import('../run/wait.js');
    let lastProgress = { key: '', at: -Infinity };
    const waited = await runUntilPassing(plan, runOptions, {
      budgetMs: waitMs,
      consecutive,
      strict: args.strict,
      onAttempt: ({ attempt, notPassing, streak, nextInMs, watching }) => {
        // A gate asks a service that is coming up a few times a second: a line per attempt would
        // flood the CI log. A line when what fails (or is watched) changes, else one every 5 s.
        const key = `${notPassing.map((r) => `${r.id} ${r.status}`).join(',')}|${streak}|${watching.join(',')}`;
        const now = performance.now();
        if (key === lastProgress.key && now - lastProgress.at < PROGRESS_EVERY_MS) return;
        lastProgress = { key, at: now };
        const next = `next attempt in ${(nextInMs / 1000).toFixed(1)} s${
          watching.length === 1 ? `, or once ${watching[0]} accepts connections` : watching.length > 1 ? `, or once one of ${watching.length} refused ports accepts connections` : ''
        }`;
        say(
          notPassing.length
            ? `soma-verify: attempt ${attempt}: ${notPassing.length} not passing (${notPassing.slice(0, 10).map((r) => `${r.id}: ${r.status} ${redactor.result(r).message}`).join('; ')}${notPassing.length > 10 ? `; and ${notPassing.length - 10} more` : ''}); ${next}`
            : `soma-verify: attempt ${attempt}: all passing (${streak} of ${consecutive} in a row); ${next}`,
        );
      },
      onAccepting: (address, attempt) => say(`soma-verify: ${address} accepts connections now; attempt ${attempt} starts`),
    });
    results = waited.results;
    expired = waited.expired;
    const failing = results.filter((r) => !passing(r, args.strict)).length;
    expiry = `--wait ${args.wait} ran out after ${waited.attempts} attempts: ${failing ? `${checksCount(failing)} not passing` : `${consecutive} passing attempts in a row were needed`}`;
    if (expired) say(`soma-verify: ${expiry}`);
    else if (!stopper.received && failing === 0) say(`soma-verify: all passing after ${waited.attempts} attempts`);
    else if (!stopper.received) say(`soma-verify: all retried checks passing after ${waited.attempts} attempts; ${checksCount(failing)} run once did not pass`);
  }

  const { buildReport } = await import('../report/report.js');
  const { rendererFor } = await import('../report/index.js');
  // The exit status comes from the results as the checks gave them; masking touches only the
  // free text of what is printed.
  const report = buildReport(args.env, startedAt, performance.now() - started, results, args.strict, {
    interrupted: stopper.received,
    waitExpired: expired ? expiry : undefined,
  });
  const printed = { ...report, checks: report.checks.map((c) => redactor.result(c)) };
  const color = args.format === 'table' && !args.output && !!process.stdout.isTTY && !process.env.NO_COLOR;
  const render = await rendererFor(args.format);
  await emit(render(printed, { color, strict: args.strict }), args.output);
  if (env.GITHUB_STEP_SUMMARY) {
    // Built from the same masked report as every format: no secret reaches the summary.
    const { appendStepSummary } = await import('../report/github.js');
    await appendStepSummary(env.GITHUB_STEP_SUMMARY, printed, args.strict).catch((err: Error) =>
      say(`soma-verify: cannot append to $GITHUB_STEP_SUMMARY: ${err.message}`),
    );
  }
  stopper.dispose();
  if (stopper.received) return 128 + constants.signals[stopper.received];
  if (exitGuard.attempts.length) {
    say(`soma-verify: a check called ${exitGuard.attempts.join(', ')} while the checks ran: the run fails`);
    return EXIT.failed;
  }
  if (expired) return EXIT.waitExpired;
  return report.status === 'fail' ? EXIT.failed : EXIT.ok;
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * SIGINT (Ctrl-C), SIGTERM (how CI cancels a job) and SIGHUP (a closed terminal) stop the run:
 * running checks are cut and fail, the report is still printed, and the exit status is 128+n.
 * A second signal quits at once.
 */
function stopOnSignals(say: (line: string) => void, exitGuard: ProcessExitGuard, cleanupGraceMs: number) {
  const controller = new AbortController();
  let quitting: NodeJS.Timeout | undefined;
  const state = {
    signal: controller.signal,
    received: undefined as (typeof STOP_SIGNALS)[number] | undefined,
    dispose: () => {
      for (const name of STOP_SIGNALS) process.off(name, handlers[name]);
      clearTimeout(quitting); // cleanup finished in time: the report follows
    },
  };
  const handlers = Object.fromEntries(
    STOP_SIGNALS.map((name) => [
      name,
      () => {
        if (state.received) {
          const code = 128 + constants.signals[state.received];
          if (!cleanupGraceMs) exitGuard.exit(code);
          say(`soma-verify: quitting within ${cleanupGraceMs / 1000} s, once the smoke scenarios' cleanup is done`);
          quitting ??= setTimeout(() => exitGuard.exit(code), cleanupGraceMs);
          return;
        }
        state.received = name;
        const again = cleanupGraceMs
          ? `smoke scenarios clean up first; ${name === 'SIGINT' ? 'Ctrl-C' : name} again quits within ${cleanupGraceMs / 1000} s`
          : 'again to quit at once';
        say(`soma-verify: ${name === 'SIGINT' ? 'interrupted' : `${name} received`}, stopping running checks (${again})`);
        controller.abort(name);
      },
    ]),
  ) as Record<(typeof STOP_SIGNALS)[number], () => void>;
  for (const name of STOP_SIGNALS) process.on(name, handlers[name]);
  return state;
}

export interface ProcessExitGuard {
  /** What the checks tried, e.g. "process.exit(0)". */
  attempts: string[];
  /** The real process.exit, for the engine itself. */
  exit(code: number): never;
  restore(): void;
}

/**
 * While soma-verify verifies (plugins load, checks run), process.exit belongs to the engine: a
 * plugin calling process.exit(0) would end the gate green with an empty report. The call throws
 * inside the plugin instead (its check then fails, naming it) and is remembered, so the run
 * cannot pass. Chosen over isolating plugins in a worker or child process: a kind shares the
 * engine's contract objects (schemas, AbortSignal, dependency results), which do not cross a
 * thread boundary, and isolation would cost every check a start-up.
 */
export function guardProcessExit(): ProcessExitGuard {
  const original = process.exit;
  const attempts: string[] = [];
  process.exit = ((code?: number | string | null) => {
    const call = `process.exit(${code ?? ''})`;
    attempts.push(call);
    throw new Error(`${call} called while checks run: a check must return its outcome, not end the process`);
  }) as typeof process.exit;
  return {
    attempts,
    exit: (code) => original.call(process, code),
    restore: () => void (process.exit = original),
  };
}

async function environmentFor(
  name: string,
  loaded: LoadedConfig | undefined,
  cwd: string,
  env: NodeJS.ProcessEnv,
  redactor: Redactor,
  say: (line: string) => void,
  verbose: boolean,
) {
  const { environment } = await import('../config/schema.js');
  // Own keys only: an environment named toString or __proto__ must not find Object.prototype's.
  const configured = loaded && Object.hasOwn(loaded.config.environments, name) ? loaded.config.environments[name] : undefined;
  if (configured) return configured;
  if (name === 'local') {
    const { localTopology, localEnvironmentConfig } = await import('../stack/local.js');
    const topology = await localTopology(cwd, env);
    for (const secret of topology.secrets) redactor.add(secret, 'a secret of the local stack (.env or environment)');
    if (verbose) {
      say(`soma-verify: local stack${topology.project ? ` of ${topology.project} (from .env)` : ''}`);
      for (const [service, from] of Object.entries(topology.sources)) say(`  ${service}: ${from}`);
    }
    return validate(environment, localEnvironmentConfig(topology), 'local');
  }
  if (!loaded) {
    throw new ConfigError([
      `no config file for environment "${name}": looked for soma-verify.config.yaml|yml|json in ${cwd} (or pass --config FILE); only "local" works without one`,
    ]);
  }
  const known = [...new Set([...Object.keys(loaded.config.environments), 'local'])];
  throw new ConfigError([`unknown environment "${name}" in ${loaded.path} (known: ${known.join(', ')})`]);
}

/** How many checks an environment lists, as the file has it (before it is validated). */
function checksIn(config: unknown, envName: string): number {
  const checks = (config as { environments?: Record<string, { checks?: unknown } | undefined> } | undefined)?.environments?.[envName]?.checks;
  return Array.isArray(checks) ? checks.length : 0;
}

export function durationArg(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const checked = checkDuration(value);
  if ('problem' in checked) throw new ConfigError([`${flag}: ${checked.problem}`]);
  return checked.ms;
}

/**
 * A plugin or driver that throws outside its check's promise would have Node print the stack
 * unredacted and stop the run: it is said through `say` (which masks) and the run goes on. A
 * reader that goes away (`| head`) closes stdout or stderr: what was not written is lost, the
 * exit code still comes from the results, and the EPIPE is not said (to a closed stderr that
 * would fail again, without end). Returns what undoes it.
 */
export function reportStrayErrors(say: (line: string) => void, who: string): () => void {
  for (const stream of [process.stdout, process.stderr]) if (stream.listenerCount('error') === 0) stream.on('error', () => {});
  const onStray = (err: unknown) => {
    if ((err as NodeJS.ErrnoException)?.code === 'EPIPE') return;
    say(`${who}: error outside a check: ${(err as Error)?.stack ?? String(err)}`);
  };
  process.on('uncaughtException', onStray);
  process.on('unhandledRejection', onStray);
  return () => {
    process.off('uncaughtException', onStray);
    process.off('unhandledRejection', onStray);
  };
}

/** Set while the report itself is written: only then does stdout take what it is given. */
let writingReport = false;
let restoreStdout: (() => void) | undefined;

/**
 * What a plugin prints to stdout would land inside the report (a JSON document no longer one, a
 * workflow command in --format github): from plugin loading to the exit, a check that ignored
 * its abort included, each line of it goes to stderr instead, masked and prefixed, so that none
 * starts with "::". The report passes (emit, and -o /dev/stdout through writeFileAtomic).
 */
function divertStdout(say: (line: string) => void): void {
  const original = process.stdout.write;
  restoreStdout = () => void (process.stdout.write = original);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    if (writingReport) return (original as (...args: unknown[]) => boolean).call(process.stdout, chunk, ...rest);
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    for (const line of text.split(/\r?\n|\r/)) if (line) say(`soma-verify: printed by a check: ${line}`);
    const done = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
    if (done) process.nextTick(done);
    return true;
  }) as typeof process.stdout.write;
}

/** Back to Node's own stdout (an in-process caller of verify() gets it back). */
function stopDivertingStdout(): void {
  restoreStdout?.();
  restoreStdout = undefined;
}

/**
 * `--output` can be written, checked before the run: a descriptor (-o /dev/stdout), a FIFO or a
 * device is written in place and must itself be writable; a regular file is written beside
 * itself, then renamed, so its folder must be.
 */
async function assertOutputWritable(output: string, cwd: string): Promise<void> {
  const { access, stat, constants: fs } = process.getBuiltinModule('node:fs/promises');
  const target = resolve(cwd, output);
  try {
    const existing = await stat(target).catch(() => undefined);
    await access(existing && !existing.isFile() ? target : dirname(target), fs.W_OK);
  } catch (err) {
    throw new ConfigError([`--output ${output}: cannot write (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]);
  }
}

/** Print to stdout, or write the file atomically (a failed write leaves the old file whole). */
async function emit(text: string, output: string | undefined): Promise<void> {
  writingReport = true;
  try {
    if (!output) {
      await new Promise<void>((resolve, reject) =>
        process.stdout.write(text, (err) => (!err || (err as NodeJS.ErrnoException).code === 'EPIPE' ? resolve() : reject(err))),
      );
      return;
    }
    await writeOutput(text, output);
  } finally {
    writingReport = false;
  }
}

async function writeOutput(text: string, output: string): Promise<void> {
  const { writeFileAtomic } = await import('../write-file.js');
  try {
    await writeFileAtomic(output, text);
  } catch (err) {
    throw new ConfigError([`--output ${output}: cannot write (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]);
  }
}
