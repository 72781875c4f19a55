// A check's latency is its own network exchange (README, "JSON report"): from the first byte of
// its request written on the socket to the last byte of the answer read. These tests run the
// compiled CLI on a full plan, with checks that load drivers (pg, kafkajs), speak RESP and parse a
// large metrics body beside a loopback HTTP check, and assert what that definition implies; they
// never assert speed.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkOf, reportOf, runCli, tempProject } from '../support/cli.js';
import { startKafkaPeer, type KafkaPeer } from '../support/peers/kafka.js';
import { startPostgresPeer, type PostgresPeer } from '../support/peers/postgres.js';
import { startRedisPeer, type RedisPeer } from '../support/peers/redis.js';
import { sfmDouble, type Double, type SfmState } from '../support/somastack.js';

/** An HTTP server on loopback whose every answer is `body`, sent after `delayMs`. */
async function server(body: string, contentType: string, delayMs = 0): Promise<{ url: string; server: Server }> {
  const s = createServer((req, res) => {
    req.resume();
    setTimeout(() => {
      res.writeHead(200, { 'content-type': contentType });
      res.end(body);
    }, delayMs);
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(s.address() as { port: number }).port}`, server: s };
}

/** About 900 KB of Prometheus text: 12,000 series the metrics check must parse. */
function largeMetricsBody(): string {
  const lines = ['# TYPE soma_big_total counter'];
  for (let i = 0; i < 12_000; i++) lines.push(`soma_big_total{route="/api/v1/route/${i}",method="GET",status="200"} ${i * 7}`);
  return `${lines.join('\n')}\n`;
}

/** A plugin kind whose check blocks the event loop for `ms` (standing in for another check's parsing or a driver's loading). */
const BUSY_PLUGIN = `export default {
  kind: 'busy',
  options: { '~standard': { version: 1, vendor: 'test', validate: (v) => ({ value: v }) } },
  target: (o) => \`\${o.ms} ms of CPU\`,
  async run(o) {
    // Let the checks started before this one issue their requests (microtasks only: no socket
    // event can come in between), then hold the CPU while their connections are being made;
    // with afterMs, once they have been waiting for their answers that long.
    for (let i = 0; i < 1000; i++) await null;
    if (o.afterMs) await new Promise((resolve) => setTimeout(resolve, o.afterMs));
    const until = performance.now() + o.ms;
    while (performance.now() < until);
    return { status: 'pass', message: 'done' };
  },
};
`;

let postgres: PostgresPeer, redis: RedisPeer, kafka: KafkaPeer, sfm: Double<SfmState>;
let quick: { url: string; server: Server }, slow: { url: string; server: Server }, metrics: { url: string; server: Server };
let project: { dir: string; remove(): Promise<void> };

beforeAll(async () => {
  [postgres, redis, kafka, sfm, quick, slow, metrics] = await Promise.all([
    startPostgresPeer(),
    startRedisPeer(),
    startKafkaPeer(),
    sfmDouble({ generation: 'gen1' }),
    server('{"ok":true}', 'application/json'),
    server('{"ok":true}', 'application/json', 300),
    server(largeMetricsBody(), 'text/plain; version=0.0.4'),
  ]);
  expect(metrics.url).toBeTruthy();
  const config = {
    environments: {
      full: {
        services: {
          sfm: { url: sfm.url, generation: 'gen1' },
          postgres: { dsn: postgres.dsn() },
          redis: { url: redis.url() },
          kafka: { brokers: kafka.brokers.join(',') },
        },
        checks: [
          { id: 'big.metrics', kind: 'metrics', url: `${metrics.url}/metrics`, maxBodyBytes: 2_000_000, minSeries: 12_000 },
          { id: 'loopback', kind: 'http', url: `${quick.url}/ping` },
          { id: 'slow', kind: 'http', url: `${slow.url}/ping` },
        ],
      },
      // An HTTP check started first, then a check that holds the CPU for 300 ms once the HTTP
      // check has asked for its request: the request goes out after those 300 ms, so they are
      // in its durationMs only.
      busy: {
        checks: [
          { id: 'instant', kind: 'http', url: `${quick.url}/ping`, maxLatencyMs: 250 },
          { id: 'cpu', kind: 'busy', ms: 300 },
        ],
      },
      // The request is out and the server takes 300 ms; 50 ms in, another check holds the CPU
      // for 600 ms, so the answer arrives while this process's checks cannot run.
      busyWhileWaiting: {
        checks: [
          { id: 'waiting', kind: 'http', url: `${slow.url}/ping` },
          { id: 'cpu-later', kind: 'busy', ms: 600, afterMs: 50 },
        ],
      },
    },
    plugins: ['./busy.mjs'],
  };
  project = await tempProject({ 'soma-verify.config.json': JSON.stringify(config), 'busy.mjs': BUSY_PLUGIN });
}, 120_000);

afterAll(async () => {
  await Promise.all([postgres?.close(), redis?.close(), kafka?.close(), sfm?.close()]);
  for (const s of [quick, slow, metrics]) s?.server.close();
  await project?.remove();
});

describe('latency is the check\'s own network exchange', () => {
  it('a loopback check in a full plan (pg, Redis, kafkajs, a 900 KB metrics parse) passes and reports a latency within its duration', async () => {
    const r = await runCli(['full', '--format', 'json'], { cwd: project.dir, timeoutMs: 30_000 });
    const report = reportOf(r);
    for (const id of ['postgres', 'redis', 'kafka', 'big.metrics', 'sfm.health']) expect(checkOf(report, id).status, id).toBe('pass');
    const loopback = checkOf(report, 'loopback') as ReturnType<typeof checkOf> & { latencyMs?: number };
    expect(loopback.status, loopback.message).toBe('pass');
    // (maxLatencyMs: 50 on it is met on a quiet machine; not asserted: tests never assert speed,
    // and on a loaded machine other checks' work still delays when its answer is read.)
    expect(loopback.latencyMs).toBeTypeOf('number');
    expect(loopback.latencyMs!).toBeLessThanOrEqual(loopback.durationMs);
    expect(loopback.details.latencyMs).toBe(loopback.latencyMs);
  });

  it('300 ms of another check\'s CPU while the request is being sent count in durationMs, not in latencyMs, and maxLatencyMs: 250 judges the latency', async () => {
    const r = await runCli(['busy', '--format', 'json'], { cwd: project.dir, timeoutMs: 30_000 });
    const report = reportOf(r);
    const instant = checkOf(report, 'instant') as ReturnType<typeof checkOf> & { latencyMs?: number };
    expect(checkOf(report, 'cpu').status).toBe('pass');
    expect(instant.durationMs).toBeGreaterThanOrEqual(300);
    expect(instant.status, instant.message).toBe('pass');
    expect(instant.latencyMs!).toBeLessThan(instant.durationMs - 250);
  });

  it('an answer that arrives while another check holds the CPU is timed when it arrived: the server\'s 300 ms, not the 600 ms of CPU', async () => {
    const report = reportOf(await runCli(['busyWhileWaiting', '--format', 'json'], { cwd: project.dir, timeoutMs: 30_000 }));
    const waiting = checkOf(report, 'waiting') as ReturnType<typeof checkOf> & { latencyMs?: number };
    expect(checkOf(report, 'cpu-later').status).toBe('pass');
    expect(waiting.status, waiting.message).toBe('pass');
    // Judged once the CPU was free again...
    expect(waiting.durationMs).toBeGreaterThanOrEqual(600);
    // ...but timed by the HTTP thread, whose event loop the busy check does not hold.
    expect(waiting.latencyMs!).toBeGreaterThanOrEqual(299);
    expect(waiting.latencyMs!).toBeLessThan(550);
  });

  it('the latency holds the server\'s own wait: an answer sent after 300 ms reports at least 300 ms, and no more than the whole check', async () => {
    const r = await runCli(['full', '--format', 'json', '--only', 'slow', '--only', 'big.metrics'], { cwd: project.dir, timeoutMs: 30_000 });
    const report = reportOf(r);
    const slowCheck = checkOf(report, 'slow') as ReturnType<typeof checkOf> & { latencyMs?: number };
    expect(slowCheck.status).toBe('pass');
    expect(slowCheck.latencyMs!).toBeGreaterThanOrEqual(299);
    expect(slowCheck.latencyMs!).toBeLessThanOrEqual(slowCheck.durationMs);
    const big = checkOf(report, 'big.metrics') as ReturnType<typeof checkOf> & { latencyMs?: number };
    expect(big.latencyMs!).toBeLessThanOrEqual(big.durationMs);
  });

  it('kinds without a network exchange of their own measured leave latencyMs out, and the table shows each check\'s latency', async () => {
    const json = reportOf(await runCli(['full', '--format', 'json', '--only', 'postgres', '--only', 'slow'], { cwd: project.dir, timeoutMs: 30_000 }));
    expect('latencyMs' in checkOf(json, 'postgres')).toBe(false);
    const table = await runCli(['full', '--only', 'slow'], { cwd: project.dir, timeoutMs: 30_000, env: { NO_COLOR: '1' } });
    const slowLatency = Math.round((checkOf(json, 'slow') as { latencyMs?: number }).latencyMs!);
    expect(table.code).toBe(0);
    // The row shows a latency of at least the server's 300 ms wait.
    const row = table.stdout.split('\n').find((l) => l.includes(' slow '))!;
    const shown = Number(/│\s*(\d+) ms\s*│/.exec(row)?.[1]);
    expect(shown).toBeGreaterThanOrEqual(300);
    expect(Math.abs(shown - slowLatency)).toBeLessThan(100);
  });
});
