// `soma-verify [env]`: argument parsing and exit codes only. The work is in ./verify.ts, loaded
// after parsing so that --help and --version load nothing else.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { readFileSync } from 'node:fs';
import { EXIT } from './exit.js';

const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const argv = await yargs(hideBin(process.argv))
  .scriptName('soma-verify')
  .usage('$0 [env]\n\nVerify that a SomaStack deployment really works. `local` needs no config.')
  .command('$0 [env]', false, (y) =>
    y.positional('env', { type: 'string', default: 'local', describe: 'environment to verify' }),
  )
  .options({
    config: { alias: 'c', type: 'string', describe: 'config file (default: soma-verify.config.yaml|yml|json here)' },
    format: { alias: 'f', choices: ['table', 'json', 'junit'] as const, default: 'table' as const, describe: 'report format' },
    output: { alias: 'o', type: 'string', describe: 'write the report to this file instead of stdout' },
    only: { type: 'string', array: true, describe: 'run only checks whose id matches (glob, repeatable or comma-separated)' },
    skip: { type: 'string', array: true, describe: 'leave out checks whose id matches (glob)' },
    list: { type: 'boolean', default: false, describe: 'print the plan without running it' },
    concurrency: { type: 'number', describe: 'checks running at once (default 16)' },
    timeout: { type: 'string', describe: 'default timeout of a check (default 5s)' },
    deadline: { type: 'string', describe: 'global deadline of the whole run (default 60s)' },
    strict: { type: 'boolean', default: false, describe: 'warnings fail the run' },
    verbose: { alias: 'v', type: 'boolean', default: false, describe: 'progress and address sources on stderr' },
  })
  .epilog(
    'Exit codes: 0 all passed (warnings pass unless --strict), 1 a check failed, 2 usage or\n' +
      'configuration error, 3 the --wait deadline passed, 130 interrupted.',
  )
  .version(version)
  .alias('h', 'help')
  .alias('V', 'version')
  .strict()
  .wrap(Math.min(100, process.stdout.columns || 100))
  .fail((message, error) => {
    process.stderr.write(`soma-verify: ${message ?? error?.message}\nRun soma-verify --help for usage.\n`);
    process.exit(EXIT.usage);
  })
  .parseAsync();

const { verify } = await import('./verify.js');
const code = await verify({
  env: argv.env as string,
  config: argv.config,
  format: argv.format,
  output: argv.output,
  only: splitList(argv.only),
  skip: splitList(argv.skip),
  list: argv.list,
  concurrency: argv.concurrency,
  timeout: argv.timeout,
  deadline: argv.deadline,
  strict: argv.strict,
  verbose: argv.verbose,
});

function splitList(values: string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
}

// The report is flushed; exit now rather than wait on a check that ignored its timeout.
process.exit(code);
