// The verification pipeline: config -> environment -> plan -> run -> redact -> report.
import { dirname } from 'node:path';
import type { CheckResult } from '../check.js';
import { ConfigError, validate } from '../config/issues.js';
import { findConfigFile, loadConfig, type LoadedConfig } from '../config/load.js';
import { parseDuration } from '../config/duration.js';
import { SecretError } from '../config/secrets.js';
import { learnSecrets, Redactor } from '../redact.js';
import type { Format } from '../report/index.js';
import type { PlannedCheck } from '../run/plan.js';
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
  /** --wait DURATION: re-run what fails until everything passes (exit 3 when it runs out). */
  wait?: string;
  /** --consecutive N: under --wait, attempts in a row in which everything must pass. */
  consecutive?: number;
}

/** What a plan needs from the command line (verify and serve share it). */
export type PlanArgs = Pick<VerifyArgs, 'env' | 'config' | 'only' | 'skip' | 'concurrency' | 'timeout' | 'deadline' | 'verbose'>;

const DEFAULTS = { timeoutMs: 5000, deadlineMs: 60_000, concurrency: 16 };

export async function verify(args: VerifyArgs, cwd = process.cwd(), env = process.env): Promise<number> {
  const redactor = new Redactor();
  const say = (line: string) => process.stderr.write(`${redactor.text(line)}\n`);
  // A plugin or driver that throws outside its check's promise would have Node print the stack
  // unredacted and stop the run: report it through the redactor and let the run finish.
  const onStray = (err: unknown) => say(`soma-verify: error outside a check: ${(err as Error)?.stack ?? String(err)}`);
  process.on('uncaughtException', onStray);
  process.on('unhandledRejection', onStray);
  try {
    return await verifyOrThrow(args, cwd, env, redactor, say);
  } catch (err) {
    return setupFailed(err, say);
  } finally {
    process.off('uncaughtException', onStray);
    process.off('unhandledRejection', onStray);
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
): Promise<{ plan: PlannedCheck[]; concurrency: number; deadlineMs: number }> {
  const configPath = findConfigFile(cwd, args.config);
  const loaded = configPath ? await loadConfig(configPath, env) : undefined;
  for (const secret of loaded?.secrets ?? []) redactor.add(secret);
  const timeoutMs = durationArg('--timeout', args.timeout) ?? loaded?.config.defaults.timeout ?? DEFAULTS.timeoutMs;
  const deadlineMs = durationArg('--deadline', args.deadline) ?? loaded?.config.defaults.deadline ?? DEFAULTS.deadlineMs;
  const concurrency = args.concurrency ?? loaded?.config.defaults.concurrency ?? DEFAULTS.concurrency;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new ConfigError([`--concurrency: expected a whole number of at least 1`]);

  const environment = await environmentFor(args.env, loaded, cwd, env, redactor, say, args.verbose);
  learnSecrets(redactor, environment);

  const { KindRegistry } = await import('../run/kinds.js');
  const { buildPlan, selectChecks } = await import('../run/plan.js');
  const { specsForEnvironment } = await import('../stack/index.js');
  const kinds = await KindRegistry.create(loaded?.config.plugins ?? [], loaded ? dirname(loaded.path) : cwd);
  const plan = selectChecks(
    await buildPlan(specsForEnvironment(environment, args.env), kinds, timeoutMs),
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
): Promise<number> {
  const { plan, concurrency, deadlineMs } = await loadPlan(args, cwd, env, redactor, say);
  // --wait: read before anything runs, so that a bad value exits 2 at once.
  const waitMs = durationArg('--wait', args.wait);
  if (args.consecutive !== undefined && waitMs === undefined) throw new ConfigError([`--consecutive: only means something with --wait`]);
  const consecutive = args.consecutive ?? 1;
  if (!Number.isInteger(consecutive) || consecutive < 1) throw new ConfigError([`--consecutive: expected a whole number of at least 1`]);

  if (args.list) {
    // Redact values before rendering: a table may wrap a secret, JSON may escape it.
    const rows = redactor.value(
      plan.map((c) => ({ id: c.id, kind: c.kind.kind, service: c.service, target: c.target, timeoutMs: c.timeoutMs, dependsOn: c.dependsOn })),
    );
    const text = args.format === 'json' ? `${JSON.stringify({ env: args.env, checks: rows }, null, 2)}\n` : await listTable(rows);
    await emit(text, args.output);
    return EXIT.ok;
  }

  const interrupt = new AbortController();
  const onSigint = () => {
    if (interrupt.signal.aborted) process.exit(EXIT.interrupted);
    say('soma-verify: interrupted, stopping running checks (Ctrl-C again to quit at once)');
    interrupt.abort();
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint); // a CI job or a Kubernetes Job being stopped: end with the report
  const progress = args.verbose || process.stderr.isTTY;
  const { runPlan } = await import('../run/runner.js');
  const startedAt = new Date();
  const started = performance.now();
  if (progress) say(`soma-verify: running ${plan.length} checks on ${args.env}`);
  const runOptions = {
    concurrency,
    deadlineMs,
    signal: interrupt.signal,
    onResult: progress ? (r: CheckResult) => say(`  ${r.status.padEnd(4)} ${r.id} (${Math.round(r.durationMs)} ms) ${r.message}`) : undefined,
    log: args.verbose ? say : undefined,
  };
  let expired = false;
  let results: CheckResult[];
  if (waitMs === undefined) {
    results = await runPlan(plan, runOptions);
  } else {
    // --wait: progress always goes to stderr (a CI log is no terminal), the report once at the end.
    const { runUntilPassing } = await import('../run/wait.js');
    const waited = await runUntilPassing(plan, runOptions, {
      budgetMs: waitMs,
      consecutive,
      strict: args.strict,
      onAttempt: ({ attempt, notPassing, streak, nextInMs }) =>
        say(
          notPassing.length
            ? `soma-verify: attempt ${attempt}: ${notPassing.length} not passing (${notPassing.slice(0, 10).map((r) => `${r.id}: ${r.status} ${r.message}`).join('; ')}${notPassing.length > 10 ? `; and ${notPassing.length - 10} more` : ''}); next attempt in ${(nextInMs / 1000).toFixed(1)} s`
            : `soma-verify: attempt ${attempt}: all passing (${streak} of ${consecutive} in a row); next attempt in ${(nextInMs / 1000).toFixed(1)} s`,
        ),
    });
    results = waited.results;
    expired = waited.expired;
    if (expired) say(`soma-verify: --wait ${args.wait} ran out after ${waited.attempts} attempts`);
    else if (!interrupt.signal.aborted) say(`soma-verify: all passing after ${waited.attempts} attempts`);
  }
  process.off('SIGINT', onSigint);
  process.off('SIGTERM', onSigint);

  const { buildReport } = await import('../report/report.js');
  const { rendererFor } = await import('../report/index.js');
  const report = redactor.value(buildReport(args.env, startedAt, performance.now() - started, results, args.strict));
  const color = args.format === 'table' && !args.output && !!process.stdout.isTTY && !process.env.NO_COLOR;
  const render = await rendererFor(args.format);
  await emit(render(report, { color, strict: args.strict }), args.output);
  if (env.GITHUB_STEP_SUMMARY) {
    // Built from the same redacted report as every format: no secret reaches the summary.
    const { appendStepSummary } = await import('../report/github.js');
    await appendStepSummary(env.GITHUB_STEP_SUMMARY, report, args.strict).catch((err: Error) =>
      say(`soma-verify: cannot append to $GITHUB_STEP_SUMMARY: ${err.message}`),
    );
  }
  if (interrupt.signal.aborted) return EXIT.interrupted;
  if (expired) return EXIT.waitExpired;
  return report.status === 'fail' ? EXIT.failed : EXIT.ok;
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
  const configured = loaded?.config.environments[name];
  if (configured) return configured;
  if (name === 'local') {
    const { localTopology, localEnvironmentConfig } = await import('../stack/local.js');
    const topology = await localTopology(cwd, env);
    for (const secret of topology.secrets) redactor.add(secret);
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

export function durationArg(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === undefined) throw new ConfigError([`${flag}: expected a duration like 500ms, 5s or 1m, got "${value}"`]);
  return ms;
}

async function listTable(rows: Array<{ id: string; kind: string; target: string; timeoutMs: number; dependsOn: string[] }>) {
  const { default: Table } = await import('cli-table3');
  const table = new Table({ head: ['check', 'kind', 'target', 'timeout', 'depends on'], style: { head: [], border: [] } });
  for (const r of rows) table.push([r.id, r.kind, r.target, `${r.timeoutMs / 1000} s`, r.dependsOn.join(', ')]);
  return `${table.toString()}\n${rows.length} checks\n`;
}

/** Print to stdout, or write the file atomically (a failed write leaves the old file whole). */
async function emit(text: string, output: string | undefined): Promise<void> {
  if (!output) {
    await new Promise<void>((resolve, reject) => process.stdout.write(text, (err) => (err ? reject(err) : resolve())));
    return;
  }
  const { writeFileAtomic } = await import('../envfile.js');
  try {
    await writeFileAtomic(output, text);
  } catch (err) {
    throw new ConfigError([`--output ${output}: cannot write (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]);
  }
}
