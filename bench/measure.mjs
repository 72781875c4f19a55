// Shared by the benchmarks: time commands, interleaved so that machine load hits each alike.
import { spawn } from 'node:child_process';

/** Run a command to completion; resolve with its wall time in ms (rejects on a non-zero exit unless allowed). */
export function timeCommand(command, args, { env, cwd, allowExit = [0] } = {}) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { env: { ...process.env, ...env }, cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(killer);
      const ms = performance.now() - started;
      if (allowExit.includes(code)) resolve(ms);
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr.slice(0, 500)}`));
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
