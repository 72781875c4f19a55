// Shared by the benchmarks: time commands (interleaved, so that machine load hits each alike),
// read a child's peak memory, and hand result rows to bench/run.mjs, which prints them all in
// one table.
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RSS_PROBE = fileURLToPath(new URL('./rss-probe.cjs', import.meta.url));

/**
 * Run a command to completion; resolve with its wall time in ms (rejects on a non-zero exit
 * unless allowed). With `rss: true` (node commands only) resolve with { ms, rssMB, cpuMs, stdout }.
 */
export function timeCommand(command, args, { env, cwd, allowExit = [0], rss = false, stdout: keep = false } = {}) {
  return new Promise((resolve, reject) => {
    let probeDir;
    let childEnv = { ...process.env, ...env };
    if (rss) {
      probeDir = mkdtempSync(join(tmpdir(), 'soma-bench-rss-'));
      childEnv = { ...childEnv, BENCH_RSS_FILE: join(probeDir, 'rss'), NODE_OPTIONS: `${childEnv.NODE_OPTIONS ?? ''} --require ${RSS_PROBE}`.trim() };
    }
    const started = performance.now();
    const child = spawn(command, args, { env: childEnv, cwd, stdio: ['ignore', keep ? 'pipe' : 'ignore', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout?.on('data', (d) => (stdout += d));
    const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('exit', (code) => {
      clearTimeout(killer);
      const ms = performance.now() - started;
      if (!allowExit.includes(code)) return reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr.slice(0, 500)}`));
      if (!rss && !keep) return resolve(ms);
      let rssMB;
      let cpuMs;
      if (probeDir) {
        const probe = JSON.parse(readFileSync(join(probeDir, 'rss'), 'utf8'));
        rssMB = probe.maxRSS / 1024;
        cpuMs = probe.cpuMs;
        rmSync(probeDir, { recursive: true, force: true });
      }
      resolve({ ms, rssMB, cpuMs, stdout });
    });
  });
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Run each case `runs` times, round-robin, after one warm-up each; return medians by name. */
export async function compare(cases, runs) {
  const times = Object.fromEntries(cases.map((c) => [c.name, []]));
  for (const c of cases) await c.run();
  for (let i = 0; i < runs; i++) {
    for (const c of cases) times[c.name].push(await c.run());
  }
  return Object.fromEntries(Object.entries(times).map(([name, xs]) => [name, { median: median(xs), min: Math.min(...xs), runs: xs.length }]));
}

export function printTable(results, baseline) {
  const base = results[baseline].median;
  for (const [name, r] of Object.entries(results)) {
    console.log(`${name.padEnd(44)} median ${r.median.toFixed(1).padStart(8)} ms   min ${r.min.toFixed(1).padStart(8)} ms   ${(r.median / base).toFixed(2)}x ${baseline}`);
  }
}

/**
 * One line of the summary table: what was measured, the figure, the goal, and whether the
 * figure meets it (undefined: no goal). Printed here too, so a bench run alone shows it.
 */
export function reportRow(benchmark, figure, goal = '', met = undefined) {
  const row = { benchmark, figure, goal, met };
  console.log(`${benchmark}: ${figure}${goal ? ` (goal ${goal}: ${met ? 'met' : 'NOT met'})` : ''}`);
  if (process.env.BENCH_ROWS) appendFileSync(process.env.BENCH_ROWS, `${JSON.stringify(row)}\n`);
}
