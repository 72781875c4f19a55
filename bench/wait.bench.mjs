// The post-deploy gate (issue 10), two measurements:
//
// 1. From the moment a stack becomes ready to `soma-verify staging --wait` exiting 0, against
//    wait-on (its default fixed 250 ms polling) watching the same three endpoints, and how many
//    requests each sent. Each tool gets its own copy of the endpoints (so the counts are its
//    own); the copies become ready at the same instant. Readiness comes after 1 to 12 s (ten
//    waits), as a deploy's services do, in two ways: endpoints that answer 503 until then, 200
//    after (the service is up, not ready), and ports that refuse connections until then, when a
//    server starts listening there and answers 200 (the service is not up yet). A refused
//    connection reaches no server: only requests to a listening endpoint are counted.
// 2. Serve mode's memory (resident set, and the V8 heap it keeps after a full collection) after
//    1,000 runs against after 10, with a 1 ms interval and the same three endpoints. Each run's
//    timeout and deadline timers live until they fire, whatever the run: --timeout 1s
//    --deadline 2s keep that tail short, so what is measured is what runs leave behind, not
//    timers still pending.
//
// Loopback only; stops by itself.
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, reportRow } from './measure.mjs';

const bin = fileURLToPath(new URL('../bin/soma-verify.js', import.meta.url));
const waitOn = fileURLToPath(new URL('../node_modules/.bin/wait-on', import.meta.url));
const gcOnSignal = fileURLToPath(new URL('./gc-on-signal.cjs', import.meta.url));
const ENDPOINTS = 3;
// Ten waits per scenario: with five, the noise of a busy 2-core machine decided which mean was the
// lower in about one run in three (one detection is up to a polling interval, 250 or 350 ms, late).
const READY_AFTER_MS = [1000, 1600, 2500, 3300, 4000, 5200, 7000, 8500, 10000, 12000];

/** A loopback port nobody listens on (a connection to it is refused). */
async function freePort() {
  const server = createTcpServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Endpoints that count requests and become ready when `ready()` is called: `503` ones listen
 * from the start and answer 503 until then, 200 after; `refused` ones start listening then.
 */
async function endpoints(scenario) {
  const state = { requests: 0, servers: [], urls: [] };
  let isReady = false;
  const listen = (port) =>
    new Promise((resolve, reject) => {
      const server = createServer((req, res) => {
        state.requests++;
        req.resume();
        res.writeHead(isReady ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: isReady ? 'ok' : 'starting' }));
      });
      state.servers.push(server);
      server.once('error', reject).listen(port, '127.0.0.1', () => resolve(server.address().port));
    });
  const ports = [];
  for (let i = 0; i < ENDPOINTS; i++) ports.push(scenario === 'refused' ? await freePort() : await listen(0));
  state.urls = ports.map((port) => `http://127.0.0.1:${port}/health`);
  state.ready = async () => {
    isReady = true;
    if (scenario === 'refused') await Promise.all(ports.map(listen));
  };
  state.close = () => Promise.all(state.servers.map((s) => new Promise((r) => { s.closeAllConnections(); s.close(r); })));
  return state;
}

/** Endpoints that answer 200 from the start (serve mode's memory). */
async function readyEndpoints() {
  const state = await endpoints('503');
  await state.ready();
  return state;
}

/** Start a command; resolves with the time (performance.now()) it exited 0. */
function exitTime(command, args, cwd) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const killer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('exit', (code) => {
      clearTimeout(killer);
      if (code === 0) resolve(performance.now());
      else reject(new Error(`${command} exited ${code}: ${stderr.slice(-500)}`));
    });
  });
}

async function noticeTrial(scenario, readyAfterMs) {
  const [mine, theirs] = [await endpoints(scenario), await endpoints(scenario)];
  const dir = mkdtempSync(join(tmpdir(), 'soma-verify-wait-bench-'));
  const checks = mine.urls.map((url, i) => ({ id: `service-${i}`, kind: 'http', url }));
  writeFileSync(join(dir, 'soma-verify.config.yaml'), JSON.stringify({ environments: { staging: { checks } } }));
  const soma = exitTime(process.execPath, [bin, 'staging', '--wait', '60s'], dir);
  const other = exitTime(waitOn, ['--timeout', '60000', ...theirs.urls.map((u) => u.replace(/^http:/, 'http-get:'))], dir);
  await new Promise((r) => setTimeout(r, readyAfterMs));
  const readyAt = performance.now();
  await Promise.all([mine.ready(), theirs.ready()]);
  const [somaAt, otherAt] = await Promise.all([soma, other]);
  await Promise.all([mine.close(), theirs.close()]);
  return { scenario, readyAfterMs, soma: somaAt - readyAt, waitOn: otherAt - readyAt, somaRequests: mine.requests, waitOnRequests: theirs.requests };
}

async function serveMemory() {
  const stack = await readyEndpoints();
  const dir = mkdtempSync(join(tmpdir(), 'soma-verify-serve-bench-'));
  const checks = stack.urls.map((url, i) => ({ id: `service-${i}`, kind: 'http', url }));
  writeFileSync(join(dir, 'soma-verify.config.yaml'), JSON.stringify({ environments: { staging: { checks } } }));
  const child = spawn(process.execPath, ['--expose-gc', '--require', gcOnSignal, bin, 'serve', 'staging', '--port', '0', '--interval', '1ms', '--timeout', '1s', '--deadline', '2s'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const url = await new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /(http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(stderr);
      if (m) { clearInterval(timer); resolve(m[1]); }
      if (child.exitCode !== null) { clearInterval(timer); reject(new Error(stderr)); }
    }, 20);
  });
  const sample = async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    const get = (name) => text.split('\n').filter((l) => l.startsWith(name)).reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
    // What the heap keeps: every space but the young generation, whose content is the run in
    // flight (it refills within milliseconds at a 1 ms interval, and grows with the load).
    const kept = [...text.matchAll(/^nodejs_heap_space_size_used_bytes\{space="(\w+)"\} (\d+)/gm)]
      .filter(([, space]) => !space.startsWith('new'))
      .reduce((sum, [, , bytes]) => sum + Number(bytes), 0);
    return { runs: get('soma_verify_runs_total'), rss: get('process_resident_memory_bytes'), heap: kept };
  };
  // The heap kept right after a full collection is what the runs leave behind: ask for one
  // (SIGUSR2, see gc-on-signal.cjs) and scrape just after it, five times (runs go on between),
  // and take the smallest. The resident set is the largest seen over those scrapes.
  const at = async (runs) => {
    for (;;) {
      const s = await sample();
      if (s.runs >= runs) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    const window = [];
    for (let i = 0; i < 5; i++) {
      child.kill('SIGUSR2');
      await new Promise((r) => setTimeout(r, 20));
      window.push(await sample());
    }
    return { runs, rss: Math.max(...window.map((w) => w.rss)), heap: Math.min(...window.map((w) => w.heap)) };
  };
  const started = performance.now();
  const ten = await at(10);
  const thousand = await at(1000);
  const more = await at(3000);
  const seconds = (performance.now() - started) / 1000;
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  await stack.close();
  return { ten, thousand, more, seconds };
}

const SCENARIOS = {
  '503': 'answering 503 until then',
  refused: 'ports refusing connections until then',
};
const mean = (xs) => xs.reduce((a, x) => a + x, 0) / xs.length;
const sum = (xs) => xs.reduce((a, x) => a + x, 0);
for (const [scenario, title] of Object.entries(process.env.BENCH_WAIT_SKIP_NOTICE ? {} : SCENARIOS)) {
  const trials = [];
  for (const readyAfterMs of READY_AFTER_MS) trials.push(await noticeTrial(scenario, readyAfterMs));
  console.log(`3 endpoints, ${title}:\nready after   soma-verify --wait      wait-on (250 ms poll)   requests soma-verify / wait-on`);
  for (const t of trials) {
    console.log(
      `${String(t.readyAfterMs / 1000).padStart(6)} s   ${t.soma.toFixed(0).padStart(8)} ms after ready   ${t.waitOn.toFixed(0).padStart(8)} ms after ready   ${String(t.somaRequests).padStart(6)} / ${t.waitOnRequests}`,
    );
  }
  const soma = trials.map((t) => t.soma);
  const other = trials.map((t) => t.waitOn);
  reportRow(
    `\`--wait\` / wait-on: exit 0 after ready, 3 endpoints ready after 1-12 s, ${title}`,
    `mean ${mean(soma).toFixed(0)} / ${mean(other).toFixed(0)} ms (median ${median(soma).toFixed(0)} / ${median(other).toFixed(0)})`,
    'sooner on average',
    mean(soma) < mean(other),
  );
  const [somaRequests, otherRequests] = [sum(trials.map((t) => t.somaRequests)), sum(trials.map((t) => t.waitOnRequests))];
  if (scenario === 'refused') {
    // Only requests to a listening port reach a server: the figure says nothing of the waits.
    reportRow(`\`--wait\` / wait-on: requests over those ${trials.length} waits, ${title}`, `${somaRequests} / ${otherRequests} (only those sent once the ports listen)`);
  } else {
    reportRow(`\`--wait\` / wait-on: requests over those ${trials.length} waits, ${title}`, `${somaRequests} / ${otherRequests}`, 'fewer', somaRequests < otherRequests);
  }
}

const memory = await serveMemory();
const mib = (b) => (b / 2 ** 20).toFixed(1);
for (const m of [memory.ten, memory.thousand, memory.more]) {
  console.log(`serve, ${ENDPOINTS} checks, 1 ms interval, after ${String(m.runs).padStart(4)} runs: rss ${mib(m.rss)} MiB, heap kept after a full collection (young generation aside) ${mib(m.heap)} MiB`);
}
console.log(`serve memory: ${memory.seconds.toFixed(1)} s for 3000 runs`);
const heapGrowth = memory.thousand.heap / memory.ten.heap;
reportRow(
  'serve, heap kept after a full collection, 1,000 runs / 10 (3,000 / 1,000)',
  `${mib(memory.thousand.heap)} / ${mib(memory.ten.heap)} MiB = ${heapGrowth.toFixed(2)}x (${(memory.more.heap / memory.thousand.heap).toFixed(2)}x); ` +
    `RSS ${(memory.thousand.rss / memory.ten.rss).toFixed(2)}x (${(memory.more.rss / memory.thousand.rss).toFixed(2)}x)`,
  'no growth (<= 1.5x)',
  heapGrowth <= 1.5,
);
