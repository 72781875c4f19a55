// What bin/soma-verify.js runs (built as dist/bundle/cli/launch.cjs): --help and --version are
// answered before anything else loads; any other command line runs the CLI bundle with a V8 code
// cache (../code-cache.ts).
import { join } from 'node:path';
import { runCommonJs } from '../code-cache.js';
import { quickAnswer } from './quick-answer.js';

/** The CLI bundle's file name, content-hashed (set by esbuild.config.mjs). */
declare const CLI_BUNDLE: string;

export function launch(root: string, argv = process.argv.slice(2)): void {
  const quick = quickAnswer(argv, { help: join(root, 'dist/help/soma-verify.txt'), packageJson: join(root, 'package.json') });
  if (quick !== undefined) process.stdout.write(quick);
  else runCommonJs(join(root, 'dist/bundle/cli', CLI_BUNDLE));
}
