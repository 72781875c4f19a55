// The verification pipeline: config -> environment -> plan -> run -> redact -> report.
import { dirname } from 'node:path';
import type { CheckResult } from '../check.js';
import { ConfigError, validate } from '../config/issues.js';
import { findConfigFile, loadConfig, type LoadedConfig } from '../config/load.js';
import { parseDuration } from '../config/duration.js';
import { SecretError } from '../config/secrets.js';
import { learnSecrets, Redactor } from '../redact.js';
import { EXIT } from './exit.js';

export interface VerifyArgs {
  env: string;
  config?: string;
  format: 'table' | 'json' | 'junit';
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
}

const DEFAULTS = { timeoutMs: 5000, deadlineMs: 60_000, concurrency: 16 };
/** After a second Ctrl-C, how long smoke scenarios may still spend removing their data. */
const SECOND_SIGNAL_GRACE_MS = 3000;

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
  } finally {
    process.off('uncaughtException', onStray);
    process.off('unhandledRejection', onStray);
  }
}

async function verifyOrThrow(
  args: VerifyArgs,
  cwd: string,
  env: NodeJS.ProcessEnv,
  redactor: Redactor,
  say: (line: string) => void,
): Promise<number> {
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
    await buildPlan(specsForEnvironment(environment, args.env, { smoke: args.smoke ?? environment.smoke !== false }), kinds, timeoutMs),
    args.only,
    args.skip,
  );
  if (plan.length === 0) throw new ConfigError([`environment "${args.env}" has no checks to run${args.only.length || args.skip.length ? ' after --only/--skip' : ''}`]);

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
  // >>> smoke: SIGTERM stops the run like Ctrl-C. While smoke scenarios clean up, a second signal
  // leaves their cleanup a few seconds more (bounded) instead of quitting at once.
  const cleanupGraceMs = Math.min(SECOND_SIGNAL_GRACE_MS, Math.max(0, ...plan.map((c) => c.kind.abortGraceMs ?? 0)));
  let quitting: NodeJS.Timeout | undefined;
  const onSigint = () => {
    if (interrupt.signal.aborted) {
      if (!cleanupGraceMs) process.exit(EXIT.interrupted);
      say(`soma-verify: quitting within ${cleanupGraceMs / 1000} s, once the smoke scenarios' cleanup is done`);
      quitting ??= setTimeout(() => process.exit(EXIT.interrupted), cleanupGraceMs);
      return;
    }
    say(
      `soma-verify: interrupted, stopping running checks (${cleanupGraceMs ? `smoke scenarios clean up first; Ctrl-C again quits within ${cleanupGraceMs / 1000} s` : 'Ctrl-C again to quit at once'})`,
    );
    interrupt.abort();
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  // <<< smoke
  const progress = args.verbose || process.stderr.isTTY;
  const { runPlan } = await import('../run/runner.js');
  const startedAt = new Date();
  const started = performance.now();
  if (progress) say(`soma-verify: running ${plan.length} checks on ${args.env}`);
  const results = await runPlan(plan, {
    concurrency,
    deadlineMs,
    signal: interrupt.signal,
    onResult: progress ? (r: CheckResult) => say(`  ${r.status.padEnd(4)} ${r.id} (${Math.round(r.durationMs)} ms) ${r.message}`) : undefined,
    log: args.verbose ? say : undefined,
  });
  process.off('SIGINT', onSigint);
  process.off('SIGTERM', onSigint);
  clearTimeout(quitting); // cleanup finished in time: the report follows

  const { buildReport } = await import('../report/report.js');
  const { rendererFor } = await import('../report/index.js');
  const report = redactor.value(buildReport(args.env, startedAt, performance.now() - started, results, args.strict));
  const color = args.format === 'table' && !args.output && !!process.stdout.isTTY && !process.env.NO_COLOR;
  const render = await rendererFor(args.format);
  await emit(render(report, { color, strict: args.strict }), args.output);
  if (interrupt.signal.aborted) return EXIT.interrupted;
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

function durationArg(flag: string, value: string | undefined): number | undefined {
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
