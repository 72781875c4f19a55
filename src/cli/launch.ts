// What bin/ runs (built as dist/bundle/cli/launch.cjs): soma-verify's --help and --version are
// answered before anything else loads; any other command line runs the CLI's bundle with a V8
// code cache (../code-cache.ts).
import { join } from 'node:path';
import { runCommonJs } from '../code-cache.js';
import { quickAnswer } from './quick-answer.js';
import { startHttpWorkerEarly } from '../clients/http-worker-early.js';

/** Each CLI's bundle, its file name content-hashed (set by esbuild.config.mjs). */
declare const CLI_BUNDLES: Record<'soma-verify' | 'soma-ports', string>;

export function launch(root: string, cli: keyof typeof CLI_BUNDLES = 'soma-verify', argv = process.argv.slice(2)): void {
  if (cli === 'soma-verify') {
    const quick = quickAnswer(argv, { help: join(root, 'dist/help/soma-verify.txt'), packageJson: join(root, 'package.json') });
    if (quick !== undefined) return void process.stdout.write(quick);
    // Booting the HTTP thread takes longer than loading the CLI and planning: start it first.
    if (!argv.includes('--list')) startHttpWorkerEarly(join(root, 'dist/bundle/cli/http-worker.cjs'));
  }
  runCommonJs(join(root, 'dist/bundle/cli', CLI_BUNDLES[cli]));
}
