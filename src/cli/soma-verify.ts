// `soma-verify [env]`: arguments and exit codes only; the pipeline is in ./verify.ts, loaded
// once the command line is read, so that --help and --version load nothing else.
import { EXIT, holdExitFloor } from './exit.js';
import { quickAnswer, versionOf } from './quick-answer.js';
import { parseFast } from './verify-options.js';
import { startHttpThread } from '../clients/http-thread.js';

// No top-level await: the built CLI is CommonJS (esbuild.config.mjs says why).
void main(process.argv.slice(2));

async function main(argv: string[]): Promise<never> {
  // --- serve mode (issue 10): `soma-verify serve [env]`, its own options and help.
  if (argv[0] === 'serve') {
    const { serveMain } = await import('./serve.js');
    process.exit(await serveMain(argv.slice(1)));
  }
  // --- end serve mode

  // The help is rendered by yargs at build time (render-help.ts) from the same option table.
  const packageJson = new URL('../../../package.json', import.meta.url);
  const quick = quickAnswer(argv, { help: new URL('../../help/soma-verify.txt', import.meta.url), packageJson });
  if (quick !== undefined) await exit(quick, EXIT.ok);
  const version = versionOf(packageJson);

  const args = parseFast(argv) ?? (await explainWithYargs(argv, version));
  // Nearly every plan has HTTP checks: the HTTP thread the launcher started is adopted now (or,
  // run without the launcher, started now), to boot on the other core while the config is read.
  if (!args.list) void startHttpThread();
  const exitFloor = holdExitFloor();
  const { verify } = await import('./verify.js');
  const code = await verify(args);
  exitFloor.verdict(code);
  // The report is flushed; exit now rather than wait on a check that ignored its timeout.
  process.exit(code);
}

/** yargs prints the help or the usage error and exits; it never returns a command line. */
async function explainWithYargs(argv: string[], version: string): Promise<never> {
  const { default: yargs } = await import('yargs');
  const { describeWithYargs } = await import('./verify-options.js');
  await describeWithYargs(yargs(argv), version)
    .fail((message, error) => {
      process.stderr.write(`soma-verify: ${message ?? error?.message}\nRun soma-verify --help for usage.\n`);
      process.exit(EXIT.usage);
    })
    .parseAsync();
  // A command line parseArgs refused but yargs accepted (e.g. --no-strict): say so plainly.
  process.stderr.write(`soma-verify: cannot read the command line: ${argv.join(' ')}\nRun soma-verify --help for usage.\n`);
  process.exit(EXIT.usage);
}

async function exit(text: string, code: number): Promise<never> {
  await new Promise<void>((resolve) => process.stdout.write(text, () => resolve()));
  process.exit(code);
}
