// `npm run bench`: runs each benchmark below in turn (each prints its details), then prints every
// figure with its goal in one table. `npm run bench -- scale` runs only the files matching.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCHMARKS = [
  'startup.bench.mjs', // --help, --version against bare node
  'stack.bench.mjs', // overhead, latency truth, shell tools through a delaying proxy
  'scale.bench.mjs', // 1000 and 10,000 endpoints in each format
  'ports.bench.mjs', // soma-ports assign against an lsof loop
  'wait.bench.mjs', // --wait against wait-on; serve mode's memory over runs
];

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv[2];
const dir = mkdtempSync(join(tmpdir(), 'soma-bench-rows-'));
const rowsFile = join(dir, 'rows.jsonl');
let failed = 0;
for (const file of BENCHMARKS) {
  if (only && !file.includes(only)) continue;
  console.log(`\n# ${file}`);
  const run = spawnSync(process.execPath, [join(here, file)], { stdio: 'inherit', timeout: 900_000, env: { ...process.env, BENCH_ROWS: rowsFile } });
  if (run.status !== 0) failed++;
}
let rows = [];
try {
  rows = readFileSync(rowsFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
} catch {}
rmSync(dir, { recursive: true, force: true });
if (rows.length) {
  const w = [Math.max(9, ...rows.map((r) => r.benchmark.length)), Math.max(6, ...rows.map((r) => r.figure.length)), Math.max(4, ...rows.map((r) => r.goal.length))];
  const line = (a, b, c, d) => `| ${a.padEnd(w[0])} | ${b.padEnd(w[1])} | ${c.padEnd(w[2])} | ${d} |`;
  console.log(`\n# all figures, one run (${new Date().toISOString().slice(0, 16)}Z, ${process.version})`);
  console.log(line('benchmark', 'figure', 'goal', 'met'));
  console.log(`|${'-'.repeat(w[0] + 2)}|${'-'.repeat(w[1] + 2)}|${'-'.repeat(w[2] + 2)}|-----|`);
  for (const r of rows) console.log(line(r.benchmark, r.figure, r.goal, r.met === undefined ? '' : r.met ? 'yes' : '**no**'));
}
process.exit(failed ? 1 : 0);
