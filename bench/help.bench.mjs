// `soma-verify --help` against a bare `node -e ""`: the CLI must start fast and load no driver.
// Goal (issue 2): under 1.6x.
import { fileURLToPath } from 'node:url';
import { compare, printTable, timeCommand } from './measure.mjs';

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
const ratio = results['soma-verify --help'].median / results['node -e ""'].median;
console.log(`help ratio: ${ratio.toFixed(2)}x (goal < 1.6x) ${ratio < 1.6 ? 'MET' : 'NOT MET'}`);
