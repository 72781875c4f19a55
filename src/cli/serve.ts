// `soma-verify serve [env]`: the exporter (src/serve/exporter.ts) from the command line. The
// plan is read once, at start (a configuration error exits 2 at once); then it runs until
// SIGTERM or SIGINT, and exits 0 after stopping cleanly, also in the middle of a run.
import { parseArgs } from 'node:util';
import { ConfigError } from '../config/issues.js';
import { Redactor } from '../redact.js';
import { EXIT } from './exit.js';
import { OPTIONS, splitList } from './verify-options.js';
import { durationArg, guardProcessExit, loadPlan, reportStrayErrors, setupFailed, type PlanArgs } from './verify.js';

export const SERVE_DEFAULTS = { port: 9465, interval: '30s', host: '127.0.0.1' } as const;

/** The options a verification and serve share, from verify's own table, and serve's own. */
export const SERVE_OPTIONS = {
  port: { type: 'string', describe: `port to listen on (default ${SERVE_DEFAULTS.port}; 0 picks a free one)` },
  host: { type: 'string', describe: `address to listen on (default ${SERVE_DEFAULTS.host}; in a container give 0.0.0.0)` },
  interval: { type: 'string', describe: `pause between the starts of two runs (default ${SERVE_DEFAULTS.interval})` },
  config: OPTIONS.config,
  only: OPTIONS.only,
  skip: OPTIONS.skip,
  concurrency: { ...OPTIONS.concurrency, type: 'string' },
  timeout: OPTIONS.timeout,
  deadline: OPTIONS.deadline,
  strict: OPTIONS.strict,
  verbose: OPTIONS.verbose,
  smoke: { type: 'boolean', describe: 'also run the smoke scenarios on the interval (they write marked data and remove it)' },
  help: { type: 'boolean', short: 'h', describe: 'show this help' },
} as const;

export interface ServeArgs extends PlanArgs {
  port: number;
  host: string;
  intervalMs: number;
  strict: boolean;
}

export const SERVE_HELP = [
  'soma-verify serve [env]',
  '',
  'Run the checks of an environment (default: local) on an interval and serve the last run:',
  'GET /metrics (Prometheus), GET /healthz (200 passed, 503 failed, with the JSON report), GET /.',
  '',
  'Options:',
  ...Object.entries(SERVE_OPTIONS).map(([name, spec]) => {
    const flag = `${'short' in spec ? `-${spec.short}, ` : '    '}--${name}`;
    return `  ${flag.padEnd(22)}${spec.describe}`;
  }),
  '',
  'Exit codes: 0 stopped by SIGTERM or SIGINT, 2 usage or configuration error.',
  '',
].join('\n');

/** The arguments of `serve`, 'help', or a sentence saying what is wrong with the command line. */
export function parseServeArgs(argv: string[]): ServeArgs | 'help' | string {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: SERVE_OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    return (err as Error).message;
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  if (positionals.length > 1) return `one environment at a time, got ${positionals.join(' ')}`;
  const port = Number(values.port ?? SERVE_DEFAULTS.port);
  // (Number('') is 0: an empty --port must not quietly pick a random port)
  if (values.port?.trim() === '' || !Number.isInteger(port) || port < 0 || port > 65535) return `--port: expected a port number (0-65535), got "${values.port}"`;
  let intervalMs: number;
  try {
    intervalMs = durationArg('--interval', values.interval ?? SERVE_DEFAULTS.interval)!;
  } catch (err) {
    return (err as ConfigError).problems.join('; ');
  }
  return {
    env: positionals[0] ?? 'local',
    config: values.config,
    only: splitList(values.only),
    skip: splitList(values.skip),
    concurrency: values.concurrency === undefined ? undefined : Number(values.concurrency),
    timeout: values.timeout,
    deadline: values.deadline,
    strict: values.strict ?? false,
    verbose: values.verbose ?? false,
    // Only an explicit --smoke writes from serve mode, whatever the environment says.
    smoke: values.smoke ?? false,
    port,
    host: values.host ?? SERVE_DEFAULTS.host,
    intervalMs,
  };
}

export async function serveMain(argv: string[], cwd = process.cwd(), env = process.env): Promise<number> {
  const args = parseServeArgs(argv);
  if (args === 'help') {
    process.stdout.write(SERVE_HELP);
    return EXIT.ok;
  }
  if (typeof args === 'string') {
    process.stderr.write(`soma-verify serve: ${args}\nRun soma-verify serve --help for usage.\n`);
    return EXIT.usage;
  }
  const redactor = new Redactor();
  const say = (line: string) => process.stderr.write(`${redactor.text(line)}\n`);
  // A plugin or driver that throws outside its check's promise must not stop a days-long exporter.
  reportStrayErrors(say, 'soma-verify serve');
  // As in a verification: a plugin's process.exit throws in its check, which fails.
  const exitGuard = guardProcessExit();

  let exporter;
  try {
    const { plan, concurrency, deadlineMs } = await loadPlan(args, cwd, env, redactor, say);
    const { runPlan } = await import('../run/runner.js');
    const { buildReport } = await import('../report/report.js');
    const { startExporter } = await import('../serve/exporter.js');
    exporter = await startExporter({
      host: args.host,
      port: args.port,
      intervalMs: args.intervalMs,
      env: args.env,
      verbose: args.verbose,
      say,
      async run(signal) {
        const startedAt = new Date();
        const started = performance.now();
        try {
          const results = await runPlan(plan, { concurrency, deadlineMs, signal, log: args.verbose ? say : undefined });
          return redactor.value(buildReport(args.env, startedAt, performance.now() - started, results, args.strict));
        } catch (err) {
          // What an engine fault says is served on /healthz: masked like every output.
          throw new Error(redactor.text((err as Error)?.message ?? String(err)));
        }
      },
    }).catch((err: NodeJS.ErrnoException) => {
      throw new ConfigError([`cannot listen on ${args.host}:${args.port} (${err.code ?? err.message})`]);
    });
  } catch (err) {
    exitGuard.restore();
    return setupFailed(err, say);
  }
  say(`soma-verify serve: ${args.env}, ${exporter.url}/metrics, every ${args.intervalMs / 1000} s`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  say(`soma-verify serve: ${signal}, stopping after ${exporter.runs} runs`);
  await exporter.stop();
  exitGuard.restore();
  return EXIT.ok;
}
