// Scale: 1000 and 10,000 `health` checks against one local HTTP server, in each output format,
// Node start-up included; wall time beyond a bare `node -e ""` and peak memory (RSS) of the
// soma-verify process, and its CPU time. Goals (issue 11): 1000 under 1 s beyond start-up and
// 100 MB; 10,000 under 10 s and 300 MB; time and memory growing linearly (10x the checks, at
// most about 10x the time).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, reportRow, timeCommand } from './measure.mjs';
import { startInstantServer } from './peers.mjs';

const bin = fileURLToPath(new URL('../bin/soma-verify.js', import.meta.url));
const runs = Math.max(1, Math.ceil(Number(process.env.BENCH_RUNS ?? 10) / 5));
const COUNTS = [1000, 10_000];
const FORMATS = ['table', 'json', 'junit'];
const GOALS = { 1000: { ms: 1000, mb: 100 }, 10000: { ms: 10_000, mb: 300 } };

// A server that answers at once, as SomaStack's health routes do, in its own process so that
// its work does not share this process's event loop with the children's measurements.
const server = await startInstantServer();

const dir = mkdtempSync(join(tmpdir(), 'soma-bench-scale-'));
try {
  const configs = {};
  for (const n of COUNTS) {
    const checks = Array.from({ length: n }, (_, i) => ({ id: `endpoint.${i}`, kind: 'health', url: `${server.url}/health/${i}` }));
    configs[n] = join(dir, `scale-${n}.json`);
    writeFileSync(configs[n], JSON.stringify({ environments: { scale: { checks } } }));
  }
  const nodeRuns = [];
  for (let i = 0; i < 5; i++) nodeRuns.push(await timeCommand(process.execPath, ['-e', '']));
  const node = median(nodeRuns);
  const measured = {};
  for (const n of COUNTS) {
    for (const format of FORMATS) {
      const samples = [];
      for (let i = 0; i < runs; i++) {
        samples.push(await timeCommand(process.execPath, [bin, 'scale', '--config', configs[n], '--format', format, '--output', join(dir, `out.${format}`)], { rss: true }));
      }
      const ms = median(samples.map((s) => s.ms)) - node;
      const cpu = median(samples.map((s) => s.cpuMs));
      const mb = Math.max(...samples.map((s) => s.rssMB));
      measured[`${n} ${format}`] = { ms, cpu, mb };
      const goal = GOALS[n];
      reportRow(
        `scale: ${n} endpoints, --format ${format}`,
        `${(ms / 1000).toFixed(2)} s beyond node start-up (CPU ${(cpu / 1000).toFixed(2)} s), ${mb.toFixed(0)} MB`,
        `< ${goal.ms / 1000} s, < ${goal.mb} MB`,
        ms < goal.ms && mb < goal.mb,
      );
    }
  }
  for (const format of FORMATS) {
    const small = measured[`1000 ${format}`];
    const large = measured[`10000 ${format}`];
    // Judged on CPU time: on a busy machine wall time also counts the wait for a core.
    const growth = large.cpu / small.cpu;
    reportRow(
      `scale: 10x the endpoints, --format ${format}`,
      `${growth.toFixed(1)}x the CPU time (${(large.ms / small.ms).toFixed(1)}x the wall time), ${(large.mb / small.mb).toFixed(1)}x the memory`,
      'linear (<= 12x)',
      growth <= 12,
    );
  }
} finally {
  server.stop();
  rmSync(dir, { recursive: true, force: true });
}
