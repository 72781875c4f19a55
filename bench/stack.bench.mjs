// The whole local stack (Postgres, Redis, librdkafka's mock Kafka, six HTTP services; bench/peers.mjs)
// verified by soma-verify. Three figures (issue 11):
// - overhead: wall time beyond a bare `node -e ""` and the slowest check's own time (the exchange
//   its kind times, see ownTime). Goal: at most 50 ms.
// - latency truth: the latency reported for a loopback HTTP service that answers at once (in a
//   process of its own), in that full run. Goal: under 10 ms, and `maxLatencyMs: 20` on it never fails.
// - against the shell tools the stack's scripts use (curl, pg_isready, redis-cli, kcat -L), one
//   after another, with every peer behind a proxy that delays 20 ms each way (bench/delay-proxy.mjs):
//   on loopback that comparison measured Node's start-up against C tools answering in
//   microseconds; across a network it measures verification. Goal: at most 0.35x.
// Beside them, the floor under the overhead goal: the same exchanges made by a plain script
// (bench/plain-exchanges.cjs: raw sockets, no logic), timed in the same interleaved run.
// Loopback only; stops by itself.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compare, median, printTable, reportRow, timeCommand } from './measure.mjs';
import { requireTools, startInstantServer, startStack } from './peers.mjs';

const bin = fileURLToPath(new URL('../bin/soma-verify.js', import.meta.url));
const plainExchanges = fileURLToPath(new URL('./plain-exchanges.cjs', import.meta.url));
const runs = Number(process.env.BENCH_RUNS ?? 10);
requireTools(['curl', 'pg_isready', 'redis-cli', 'kcat']);

const verifyCase = (name, config, reports, env) => ({
  name,
  run: async () => {
    // Not spawnSync: the HTTP services live in this process and must keep answering.
    const r = await timeCommand(process.execPath, [bin, 'bench', '--config', config, '--format', 'json'], { stdout: true, allowExit: [0, 1], env });
    const report = JSON.parse(r.stdout);
    reports.push(report);
    return r.ms;
  },
});
// A check's own time is its exchange as its kind times it: the report's latencyMs (HTTP), else
// the timed round trip in its details (Postgres, Redis: latencyMs; Kafka: metadataMs), else its
// duration. Not the duration where a kind times its exchange: since the drivers load each in its
// turn, a check's duration holds the other drivers' loading, and subtracting it flattered the
// overhead.
const ownTime = (check) => check.latencyMs ?? check.details?.latencyMs ?? check.details?.metadataMs ?? check.durationMs;

// 1. Loopback: overhead and latency truth.
{
  // The loopback service has a process of its own: the stack's six services share one, where
  // an answer waits for the others' (that would measure the bench, not soma-verify).
  const instant = await startInstantServer();
  const stack = await startStack({
    extraChecks: () => [{ id: 'loopback.latency', kind: 'http', url: `${instant.url}/-/ready`, maxLatencyMs: 20 }],
  });
  try {
    const plan = join(stack.dir, 'plain-exchanges.json');
    writeFileSync(plan, JSON.stringify({ ...stack.exchanges, http: [...stack.exchanges.http, `${instant.url}/-/ready`] }));
    const reports = [];
    const threadOff = [];
    const results = await compare(
      [
        { name: 'node -e ""', run: () => timeCommand(process.execPath, ['-e', '']) },
        { name: 'the same exchanges, plain script', run: () => timeCommand(process.execPath, [plainExchanges, plan]) },
        verifyCase('soma-verify bench (all checks, loopback)', stack.config, reports),
        verifyCase('the same, HTTP thread off', stack.config, threadOff, { SOMA_VERIFY_HTTP_THREAD: 'off' }),
      ],
      runs,
    );
    printTable(results, 'node -e ""');
    const failedRuns = [...reports, ...threadOff].filter((r) => r.checks.some((c) => c.id !== 'loopback.latency' && c.status !== 'pass'));
    if (failedRuns.length) {
      console.error(`stack bench: the verification itself failed:\n${JSON.stringify(failedRuns[0].checks.filter((c) => c.status !== 'pass'), null, 2)}`);
      process.exitCode = 1;
    }
    const node = results['node -e ""'].median;
    const floor = results['the same exchanges, plain script'].median - node;
    const figures = (name, runReports) => {
      const slowest = median(runReports.map((r) => Math.max(...r.checks.map(ownTime))));
      const latencies = runReports.map((r) => r.checks.find((c) => c.id === 'loopback.latency'));
      const lat = latencies.map((c) => c.latencyMs);
      return {
        verify: results[name].median,
        slowest,
        slowestId: runReports.at(-1).checks.reduce((a, b) => (ownTime(b) > ownTime(a) ? b : a)).id,
        overhead: results[name].median - node - slowest,
        latency: `median ${median(lat).toFixed(1)} ms, max ${Math.max(...lat).toFixed(1)} ms; maxLatencyMs 20 failed ${latencies.filter((c) => c.status !== 'pass').length}/${lat.length}`,
        latencyMet: median(lat) < 10 && latencies.every((c) => c.status === 'pass'),
      };
    };
    const usual = figures('soma-verify bench (all checks, loopback)', reports);
    const off = figures('the same, HTTP thread off', threadOff);
    const overheadText = (f) => `${f.verify.toFixed(0)} - node ${node.toFixed(0)} - slowest check ${f.slowest.toFixed(0)} = ${f.overhead.toFixed(0)} ms`;
    console.log(`${reports[0].checks.length} checks; slowest own time ${usual.slowest.toFixed(1)} ms (last run: ${usual.slowestId})`);
    reportRow(`overhead: full stack, ${reports[0].checks.length} checks, loopback`, overheadText(usual), '<= 50 ms', usual.overhead <= 50);
    reportRow('latency truth: instant loopback answer in the full run', usual.latency, '< 10 ms, never fails', usual.latencyMet);
    // What the overhead goal is up against: the exchanges alone, and the run without the thread
    // that keeps latencies true (it trades latency truth for start-up).
    reportRow('floor: the same exchanges in a plain script (raw sockets, no logic)', `${floor.toFixed(0)} ms beyond node -e ""`);
    reportRow('HTTP thread off: overhead; latency truth', `${overheadText(off)}; ${off.latency}`);
  } finally {
    stack.stop();
    instant.stop();
  }
}

// 2. Through the delaying proxy: soma-verify against the shell tools.
{
  const stack = await startStack({ delayMs: 20 });
  try {
    const reports = [];
    const results = await compare(
      [
        { name: 'shell tools, one after another (20 ms each way)', run: () => timeCommand('bash', ['-c', stack.shellScript]) },
        verifyCase('soma-verify bench (20 ms each way)', stack.config, reports),
      ],
      Math.max(3, Math.ceil(runs / 2)),
    );
    printTable(results, 'shell tools, one after another (20 ms each way)');
    const bad = reports.find((r) => r.status === 'fail');
    if (bad) {
      console.error(`stack bench: the delayed verification failed:\n${JSON.stringify(bad.checks.filter((c) => c.status === 'fail'), null, 2)}`);
      process.exitCode = 1;
    }
    const shell = results['shell tools, one after another (20 ms each way)'].median;
    const verify = results['soma-verify bench (20 ms each way)'].median;
    reportRow(
      'full stack / shell tools, every peer 20 ms each way',
      `${verify.toFixed(0)} / ${shell.toFixed(0)} ms = ${(verify / shell).toFixed(2)}x`,
      '<= 0.35x',
      verify / shell <= 0.35,
    );
  } finally {
    stack.stop();
  }
}
