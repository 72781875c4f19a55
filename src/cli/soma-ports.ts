// `soma-ports`: assign host ports to the SomaStack projects without conflicts.
//
// Start-up matters: `assign` must finish within 300 ms including Node's own start-up, and
// importing yargs alone costs ~150 ms here. So one table of commands below drives two parsers:
// node:util's parseArgs (built in, strict) reads well-formed command lines; yargs is imported
// only for what it does best, `--help` and the usage errors, and then runs the same handlers.
// cli-table3 is imported only when a table is printed.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Lock } from '../ports/lock.js';
import { assign, check, CommandError, release, show, type AssignResult, type CheckResult, type Expectation, type ReleaseResult, type ShowResult } from '../ports/commands.js';

type OptionSpec = { type: 'string' | 'boolean'; describe: string; choices?: readonly string[] };

const PROJECT: OptionSpec = { type: 'string', describe: 'project name (default: detected from the .env keys)' };
const ENV_FILE: OptionSpec = { type: 'string', describe: 'the .env file (default: ./.env)' };
const JSON_OUT: OptionSpec = { type: 'boolean', describe: 'print JSON instead of a table' };

const COMMANDS = {
  assign: {
    describe: 'give every service of the project a free port and write them into .env',
    options: {
      project: PROJECT,
      'env-file': ENV_FILE,
      'dry-run': { type: 'boolean', describe: 'print the diff of .env and write nothing' },
      json: JSON_OUT,
    },
  },
  check: {
    describe: 'check the ports of .env: free before `docker compose up`, listening after; exit 1 on any problem',
    options: {
      expect: { type: 'string', describe: 'what every port must be', choices: ['free', 'listening'] },
      project: PROJECT,
      'env-file': ENV_FILE,
      json: JSON_OUT,
    },
  },
  show: {
    describe: 'print the plan and the current assignments',
    options: { json: JSON_OUT },
  },
  release: {
    describe: "forget a project's registered ports (all its .env files with --project)",
    options: { project: PROJECT, 'env-file': ENV_FILE, json: JSON_OUT },
  },
} as const satisfies Record<string, { describe: string; options: Record<string, OptionSpec> }>;

type CommandName = keyof typeof COMMANDS;
type Args = Record<string, string | boolean | undefined>;

const useColour = process.stdout.isTTY === true && !process.env.NO_COLOR;
const paint = (code: number, text: string): string => (useColour ? `\x1b[${code}m${text}\x1b[0m` : text);

// `soma-ports show | head`: a closed pipe is the reader's choice, not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

let heldLock: Lock | undefined;
process.once('SIGINT', () => {
  // The atomic write means .env is old or new, never partial; only the lock needs cleaning.
  heldLock?.releaseSync();
  process.stderr.write('soma-ports: interrupted\n');
  process.exit(130);
});

function common(args: Args) {
  return {
    cwd: process.cwd(),
    env: process.env,
    ...(typeof args.project === 'string' ? { project: args.project } : {}),
    ...(typeof args['env-file'] === 'string' ? { envFile: args['env-file'] } : {}),
    onLock: (lock: Lock | undefined) => {
      heldLock = lock;
    },
  };
}

async function table(head: string[], rows: string[][]): Promise<string> {
  const { default: Table } = await import('cli-table3');
  const t = new Table({
    head,
    style: useColour ? { head: ['bold'] } : { head: [], border: [] },
    // Compact: no rule between body rows.
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
  });
  t.push(...rows);
  return t.toString();
}

function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** The changed lines of `.env`, with line numbers (no context: values only ever change in place). */
function envDiff(path: string, oldText: string, newText: string): string {
  const split = (t: string) => (t === '' ? [] : t.replace(/\r?\n$/, '').split(/\r?\n/));
  const before = split(oldText);
  const after = split(newText);
  const out = [`--- ${path}`, `+++ ${path} (soma-ports assign)`];
  const common = Math.min(before.length, after.length);
  for (let i = 0; i < common; i++) {
    if (before[i] === after[i]) continue;
    out.push(`@@ line ${i + 1} @@`, paint(31, `-${before[i]}`), paint(32, `+${after[i]}`));
  }
  if (after.length > before.length) {
    out.push(`@@ appended after line ${before.length} @@`);
    for (const line of after.slice(common)) out.push(paint(32, `+${line}`));
  }
  return out.join('\n');
}

/** Warnings go to stderr, once, whatever the format (JSON also carries them). */
function warn(warnings: string[]): void {
  for (const warning of warnings) process.stderr.write(`soma-ports: warning: ${warning}\n`);
}

async function renderAssign(result: AssignResult, args: Args): Promise<void> {
  warn(result.warnings);
  if (args.json) {
    const { oldText: _old, newText: _new, ...rest } = result;
    print(JSON.stringify(rest, null, 2));
    return;
  }
  const rows = result.assignments.map((a) => [
    a.service,
    a.key,
    a.old === String(a.port) ? String(a.port) : `${a.old ?? '(none)'} -> ${a.port}`,
    a.reason === 'moved' ? paint(33, a.why) : a.why,
  ]);
  print(`${result.project}: ${result.envFile}`);
  print(await table(['service', 'key', 'port', 'why'], rows));
  if (result.dryRun) {
    print(result.changed ? envDiff(result.envFile, result.oldText, result.newText) : 'dry run: .env would not change');
  } else {
    print(result.created ? `created ${result.envFile}` : result.changed ? `updated ${result.envFile}` : `${result.envFile} unchanged`);
  }
}

async function renderCheck(result: CheckResult, args: Args): Promise<void> {
  warn(result.warnings);
  if (args.json) {
    print(JSON.stringify(result, null, 2));
  } else {
    const rows = result.rows.map((r) => [
      r.service,
      r.key,
      r.port === undefined ? '-' : String(r.port),
      r.state + (r.holder ? ` (${r.holder})` : ''),
      r.ok ? paint(32, 'ok') : paint(31, r.problem ?? 'failed'),
    ]);
    print(`${result.project}: ${result.envFile}${result.expect ? ` (expect ${result.expect})` : ''}`);
    print(await table(['service', 'key', 'port', 'state', 'verdict'], rows));
    for (const conflict of result.conflicts) print(paint(31, `conflict: ${conflict}`));
    print(result.ok ? 'ok' : 'check failed');
  }
  if (!result.ok) process.exitCode = 1;
}

async function renderShow(result: ShowResult, args: Args): Promise<void> {
  if (args.json) {
    print(JSON.stringify(result, null, 2));
    return;
  }
  print(`plan: ${result.plan.sources.join(' + ')}`);
  const planRows: string[][] = [];
  for (const [name, project] of Object.entries(result.plan.projects)) {
    for (const [svc, s] of Object.entries(project.services)) {
      planRows.push([name, `${project.range[0]}-${project.range[1]}`, svc, s.key, String(s.preferred), s.note ?? '']);
    }
  }
  print(await table(['project', 'range', 'service', 'key', 'preferred', 'note'], planRows));
  print(`assignments: ${result.stateDir}`);
  if (result.registry.entries.length === 0) {
    print('(none)');
    return;
  }
  const rows = result.registry.entries.flatMap((e) => Object.entries(e.ports).map(([key, port]) => [e.project, e.envFile, key, String(port)]));
  print(await table(['project', '.env', 'key', 'port'], rows));
}

async function renderRelease(result: ReleaseResult, args: Args): Promise<void> {
  if (args.json) {
    print(JSON.stringify(result, null, 2));
    return;
  }
  if (result.released.length === 0) print('nothing registered: nothing to release');
  for (const e of result.released) print(`released ${e.project} (${e.envFile}): ${Object.values(e.ports).length} ports`);
}

async function run(command: CommandName, args: Args): Promise<void> {
  switch (command) {
    case 'assign':
      return renderAssign(await assign({ ...common(args), dryRun: args['dry-run'] === true }), args);
    case 'check':
      return renderCheck(await check({ ...common(args), ...(args.expect ? { expect: args.expect as Expectation } : {}) }), args);
    case 'show':
      return renderShow(await show({ cwd: process.cwd(), env: process.env }), args);
    case 'release':
      return renderRelease(await release(common(args)), args);
  }
}

/** The fast path: a well-formed command line, or undefined to let yargs explain. */
function fastParse(argv: string[]): { command: CommandName; args: Args } | undefined {
  const [command, ...rest] = argv;
  if (!command || !Object.hasOwn(COMMANDS, command)) return undefined;
  const spec = COMMANDS[command as CommandName];
  const options: ParseArgsConfig['options'] = {};
  for (const [name, option] of Object.entries(spec.options)) options[name] = { type: option.type };
  try {
    const { values, positionals } = parseArgs({ args: rest, options, strict: true, allowPositionals: true });
    if (positionals.length > 0) return undefined;
    for (const [name, option] of Object.entries(spec.options) as Array<[string, OptionSpec]>) {
      const value = values[name];
      if (option.choices && value !== undefined && !option.choices.includes(String(value))) return undefined;
    }
    return { command: command as CommandName, args: values as Args };
  } catch {
    return undefined; // unknown option, missing value, --help: yargs says it properly
  }
}

async function slowParse(argv: string[]): Promise<void> {
  const [{ default: yargs }] = await Promise.all([import('yargs')]);
  let cli = yargs(argv)
    .scriptName('soma-ports')
    .usage('$0 <command> [options]\n\nAssign host ports to the SomaStack projects without conflicts.')
    .strict()
    .demandCommand(1, 'name a command')
    .version(false)
    .help()
    .epilogue('Exit codes: 0 ok, 1 conflict / check failed / lock timeout, 2 usage or bad input, 130 interrupted.')
    .fail((message, error) => {
      throw error ?? new CommandError((message ?? 'invalid command line').replace(/\s*\n\s*/g, ' '), 2);
    });
  for (const [name, spec] of Object.entries(COMMANDS) as Array<[CommandName, (typeof COMMANDS)[CommandName]]>) {
    cli = cli.command(
      name,
      spec.describe,
      (y) => {
        for (const [option, o] of Object.entries(spec.options) as Array<[string, OptionSpec]>) {
          y.option(option, { type: o.type, describe: o.describe, ...(o.choices ? { choices: [...o.choices] } : {}) });
        }
        return y;
      },
      async (parsed) => run(name, parsed as unknown as Args),
    );
  }
  await cli.parseAsync();
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  // `node bin/soma-ports.js -- assign --env-file X`: the `--` that keeps Node 20 off the flag.
  if (argv[0] === '--') argv.shift();
  const fast = fastParse(argv);
  try {
    if (fast) await run(fast.command, fast.args);
    else await slowParse(argv);
  } catch (error) {
    if (error instanceof CommandError) {
      process.stderr.write(`soma-ports: ${error.message}\n`);
      process.exitCode = error.exitCode;
      return;
    }
    process.stderr.write(`soma-ports: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  }
}

// No top-level await: the built CLI is CommonJS (esbuild.config.mjs says why).
void main();
