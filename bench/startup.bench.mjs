// Start-up: `soma-verify --help` and `--version` against a bare `node -e ""`. Goal (issue 11):
// within 1.1x. Neither loads a library: --help prints text rendered at build time.
import { fileURLToPath } from 'node:url';
import { compare, printTable, reportRow, timeCommand } from './measure.mjs';

const bin = fileURLToPath(new URL('../bin/soma-verify.js', import.meta.url));
const runs = Number(process.env.BENCH_RUNS ?? 30);
const results = await compare(
  [
    { name: 'node -e ""', run: () => timeCommand(process.execPath, ['-e', '']) },
    { name: 'soma-verify --help', run: () => timeCommand(process.execPath, [bin, '--help']) },
    { name: 'soma-verify --version', run: () => timeCommand(process.execPath, [bin, '--version']) },
  ],
  runs,
);
printTable(results, 'node -e ""');
const node = results['node -e ""'].median;
for (const flag of ['--help', '--version']) {
  const ms = results[`soma-verify ${flag}`].median;
  const ratio = ms / node;
  reportRow(`start-up: ${flag} / node -e ""`, `${ms.toFixed(0)} / ${node.toFixed(0)} ms = ${ratio.toFixed(2)}x`, '<= 1.1x', ratio <= 1.1);
}
