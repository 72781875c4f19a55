// `soma-verify --help` and `--version`, answered before anything else loads: bin/soma-verify.js
// asks it first (./launch.ts), then soma-verify.ts for a command line the launcher did not see.
// Loading the CLI costs more than the answer itself (issue 11: within 1.1x of a bare `node -e ""`).
import { readFileSync } from 'node:fs';
import { HELP_FLAGS, VERSION_FLAGS } from './verify-options.js';

export interface QuickAnswerFiles {
  /** The help text rendered at build time (render-help.ts). */
  help: string | URL;
  packageJson: string | URL;
}

/** The text to print for a lone --help or --version, or undefined: run the command line. */
export function quickAnswer(argv: string[], files: QuickAnswerFiles): string | undefined {
  const only = argv.length === 1 ? argv[0]! : '';
  // Without its rendered text (an unbuilt checkout), yargs renders the help instead.
  if (HELP_FLAGS.has(only)) return readIfPresent(files.help);
  if (VERSION_FLAGS.has(only)) return `${versionOf(files.packageJson)}\n`;
  return undefined;
}

export function versionOf(packageJson: string | URL): string {
  return (JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string }).version;
}

function readIfPresent(file: string | URL): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}
