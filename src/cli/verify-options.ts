// The options of `soma-verify`, in one table that drives two parsers: node:util's parseArgs
// (built in, costs nothing) reads well-formed command lines, and yargs renders --help (at build
// time, see render-help.ts) and the usage errors. yargs alone costs more to import than Node
// takes to start, and the run must start fast.
import { parseArgs } from 'node:util';
import type { Argv } from 'yargs';
import { FORMATS, defaultFormat, type Format } from '../report/index.js';
import type { VerifyArgs } from './verify.js';

interface OptionSpec {
  /** parseArgs reads strings and booleans; `number` is a string to it and a number to the help. */
  type: 'string' | 'boolean' | 'number';
  short?: string;
  multiple?: boolean;
  choices?: readonly string[];
  describe: string;
}

export const OPTIONS = {
  config: { type: 'string', short: 'c', describe: 'config file (default: soma-verify.config.yaml|yml|json here)' },
  format: { type: 'string', short: 'f', choices: FORMATS, describe: 'report format (default: github when GITHUB_ACTIONS=true, else table)' },
  output: { type: 'string', short: 'o', describe: 'write the report to this file (atomically) instead of stdout' },
  only: { type: 'string', multiple: true, describe: 'run only checks whose id matches (glob, repeatable or comma-separated)' },
  skip: { type: 'string', multiple: true, describe: 'leave out checks whose id matches (glob)' },
  list: { type: 'boolean', describe: 'print the plan without running it' },
  concurrency: { type: 'number', describe: 'checks running at once (default 16)' },
  timeout: { type: 'string', describe: 'default timeout of a check (default 5s)' },
  deadline: { type: 'string', describe: 'global deadline of the whole run (default 60s)' },
  strict: { type: 'boolean', describe: 'warnings fail the run' },
  smoke: { type: 'boolean', describe: 'also run the smoke scenarios: they write marked data and remove it (--no-smoke: never)' },
  verbose: { type: 'boolean', short: 'v', describe: 'progress and address sources on stderr' },
  wait: { type: 'string', describe: 're-run what fails until all pass or DURATION is spent (then exit 3)' },
  consecutive: { type: 'number', describe: 'with --wait: attempts in a row in which all must pass (default 1)' },
} as const satisfies Record<string, OptionSpec>;

const PARSE_ARGS_OPTIONS = Object.fromEntries(
  Object.entries(OPTIONS).map(([name, spec]) => [name, { ...spec, type: spec.type === 'number' ? 'string' : spec.type }]),
) as { [K in keyof typeof OPTIONS]: Omit<(typeof OPTIONS)[K], 'type'> & { type: (typeof OPTIONS)[K]['type'] extends 'boolean' ? 'boolean' : 'string' } };

export const USAGE =
  '$0 [env]\n\nVerify that a SomaStack deployment really works. `local` needs no config.\n' +
  '`soma-verify serve [env]` runs the checks on an interval for Prometheus (see serve --help).';
export const EPILOG =
  'Exit codes: 0 all passed (warnings pass unless --strict), 1 a check failed, 2 usage or\n' +
  'configuration error, 3 --wait ran out before all passed (the last report is printed),\n' +
  '128+n stopped by signal n (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP), with the report of what ran.';

export const HELP_FLAGS = new Set(['--help', '-h']);
export const VERSION_FLAGS = new Set(['--version', '-V']);

/** The arguments of a well-formed command line, or undefined to let yargs explain what is wrong. */
export function parseFast(argv: string[], env: NodeJS.ProcessEnv = process.env): VerifyArgs | undefined {
  let parsed;
  try {
    // allowNegative: --no-smoke (Node >= 20.16).
    // (@types/node 20 does not know the flag yet.)
    parsed = parseArgs({ args: joinNegativeValues(argv), options: PARSE_ARGS_OPTIONS, allowPositionals: true, strict: true, ...({ allowNegative: true } as object) });
  } catch {
    return undefined;
  }
  const { values, positionals } = parsed;
  if (positionals.length > 1) return undefined;
  if (values.format !== undefined && !FORMATS.includes(values.format as Format)) return undefined;
  // A bad number is verify's to explain (--concurrency: expected a whole number of at least 1).
  const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency);
  const consecutive = values.consecutive === undefined ? undefined : Number(values.consecutive);
  return {
    env: positionals[0] ?? 'local',
    config: values.config,
    format: (values.format as Format | undefined) ?? defaultFormat(env),
    output: values.output,
    only: splitList(values.only),
    skip: splitList(values.skip),
    list: values.list ?? false,
    concurrency,
    timeout: values.timeout,
    deadline: values.deadline,
    strict: values.strict ?? false,
    verbose: values.verbose ?? false,
    smoke: values.smoke,
    wait: values.wait,
    consecutive,
  };
}

/** The same options as a yargs parser, for --help and usage errors. */
export function describeWithYargs(y: Argv, version: string): Argv {
  let parser = y
    .scriptName('soma-verify')
    .usage(USAGE)
    .command('$0 [env]', false, (c) => c.positional('env', { type: 'string', default: 'local', describe: 'environment to verify' }));
  for (const [name, spec] of Object.entries(OPTIONS) as Array<[string, OptionSpec]>) {
    parser = parser.option(name, {
      type: spec.type === 'string' && spec.multiple ? 'array' : spec.type,
      ...(spec.short ? { alias: spec.short } : {}),
      ...(spec.choices ? { choices: spec.choices } : {}),
      describe: spec.describe,
    });
  }
  return parser.epilog(EPILOG).version(version).alias('h', 'help').alias('V', 'version').strict().wrap(100);
}

/**
 * `--timeout -5s` as `--timeout=-5s`: parseArgs (and yargs) read a value starting with `-` as an
 * option, and the user would hear about unknown options 5 and s instead of a negative timeout.
 */
function joinNegativeValues(argv: string[]): string[] {
  const takesValue = new Set<string>();
  for (const [name, spec] of Object.entries(OPTIONS) as Array<[string, OptionSpec]>) {
    if (spec.type !== 'boolean') takesValue.add(`--${name}`);
  }
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (arg === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (takesValue.has(arg) && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** --only a,b --only c -> [a, b, c] (serve reads its lists the same way). */
export function splitList(values: string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
}
