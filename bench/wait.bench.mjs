// The post-deploy gate (issue 10), two measurements:
//
// 1. From the moment a stack becomes ready to `soma-verify staging --wait` exiting 0, against
//    wait-on (its default fixed 250 ms polling) watching the same three endpoints, and how many
//    requests each sent. Each tool gets its own copy of the endpoints (so the counts are its
//    own); the copies answer 503 until the same instant, then 200. Readiness comes after
//    1, 2.5, 4, 7 and 12 s, as a deploy's services do.
// 2. Serve mode's memory (resident set, V8 heap used) after 1,000 runs against after 10, with a
//    1 ms interval and the same three endpoints. Each run's timeout and deadline timers live
//    until they fire, whatever the run: --timeout 1s --deadline 2s keep that tail short, so what
//    is measured is what runs leave behind, not timers still pending.
//
// Loopback only; stops by itself.
import { createServer } from 'node:http';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from './measure.mjs';

const bin = fileURLToPath(new URL('../bin/soma-verify.js', import.meta.url));
const waitOn = fileURLToPath(new URL('../node_modules/.bin/wait-on', import.meta.url));
const ENDPOINTS = 3;

/** Endpoints that answer 503 until `ready()` is called, then 200; they count requests. */
async function endpoints() {
  const state = { ready: false, requests: 0, servers: [], urls: [] };
  for (let i = 0; i < ENDPOINTS; i++) {
    const server = createServer((req, res) => {
      state.requests++;
      req.resume();
      res.writeHead(state.ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: state.ready ? 'ok' : 'starting' }));
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    state.servers.push(server);
    state.urls.push(`http://127.0.0.1:${server.address().port}/health`);
  }
  state.close = () => Promise.all(state.servers.map((s) => new Promise((r) => { s.closeAllConnections(); s.close(r); })));
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

async function noticeTrial(readyAfterMs) {
  const [mine, theirs] = [await endpoints(), await endpoints()];
  const dir = mkdtempSync(join(tmpdir(), 'soma-verify-wait-bench-'));
  const checks = mine.urls.map((url, i) => ({ id: `service-${i}`, kind: 'http', url }));
  writeFileSync(join(dir, 'soma-verify.config.yaml'), JSON.stringify({ environments: { staging: { checks } } }));
  const soma = exitTime(process.execPath, [bin, 'staging', '--wait', '60s'], dir);
  const other = exitTime(waitOn, ['--timeout', '60000', ...theirs.urls.map((u) => u.replace(/^http:/, 'http-get:'))], dir);
  await new Promise((r) => setTimeout(r, readyAfterMs));
  const readyAt = performance.now();
  mine.ready = theirs.ready = true;
  const [somaAt, otherAt] = await Promise.all([soma, other]);
  await Promise.all([mine.close(), theirs.close()]);
  return { readyAfterMs, soma: somaAt - readyAt, waitOn: otherAt - readyAt, somaRequests: mine.requests, waitOnRequests: theirs.requests };
}

async function serveMemory() {
  const stack = await endpoints();
  stack.ready = true;
  const dir = mkdtempSync(join(tmpdir(), 'soma-verify-serve-bench-'));
  const checks = stack.urls.map((url, i) => ({ id: `service-${i}`, kind: 'http', url }));
  writeFileSync(join(dir, 'soma-verify.config.yaml'), JSON.stringify({ environments: { staging: { checks } } }));
  const child = spawn(process.execPath, [bin, 'serve', 'staging', '--port', '0', '--interval', '1ms', '--timeout', '1s', '--deadline', '2s'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
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
    return { runs: get('soma_verify_runs_total'), rss: get('process_resident_memory_bytes'), heap: get('nodejs_heap_size_used_bytes') };
  };
  // The heap used right after a collection is what a run leaves behind; a scrape lands anywhere
  // between collections, so take the smallest of 40 scrapes over two seconds (runs go on).
  const at = async (runs) => {
    for (;;) {
      const s = await sample();
      if (s.runs >= runs) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    const window = [];
    for (let i = 0; i < 40; i++) {
      window.push(await sample());
      await new Promise((r) => setTimeout(r, 50));
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

const trials = [];
for (const readyAfterMs of process.env.BENCH_WAIT_SKIP_NOTICE ? [] : [1000, 2500, 4000, 7000, 12000]) trials.push(await noticeTrial(readyAfterMs));
if (trials.length) console.log('ready after   soma-verify --wait      wait-on (250 ms poll)   requests soma-verify / wait-on');
for (const t of trials) {
  console.log(
    `${String(t.readyAfterMs / 1000).padStart(6)} s   ${t.soma.toFixed(0).padStart(8)} ms after ready   ${t.waitOn.toFixed(0).padStart(8)} ms after ready   ${String(t.somaRequests).padStart(6)} / ${t.waitOnRequests}`,
  );
}
const med = (key) => median(trials.map((t) => t[key]));
const mean = (key) => trials.reduce((a, t) => a + t[key], 0) / trials.length;
if (trials.length) console.log(
  `noticed after ready: soma-verify median ${med('soma').toFixed(0)} ms (mean ${mean('soma').toFixed(0)}), wait-on median ${med('waitOn').toFixed(0)} ms (mean ${mean('waitOn').toFixed(0)}); ` +
    `requests: soma-verify ${trials.reduce((a, t) => a + t.somaRequests, 0)}, wait-on ${trials.reduce((a, t) => a + t.waitOnRequests, 0)}`,
);

const memory = await serveMemory();
const mib = (b) => (b / 2 ** 20).toFixed(1);
for (const m of [memory.ten, memory.thousand, memory.more]) {
  console.log(`serve, ${ENDPOINTS} checks, 1 ms interval, after ${String(m.runs).padStart(4)} runs: rss ${mib(m.rss)} MiB, heap used after a collection ${mib(m.heap)} MiB`);
}
console.log(
  `serve memory, 1000 runs / 10 runs: heap ${(memory.thousand.heap / memory.ten.heap).toFixed(2)}x, rss ${(memory.thousand.rss / memory.ten.rss).toFixed(2)}x; ` +
    `3000 / 1000: heap ${(memory.more.heap / memory.thousand.heap).toFixed(2)}x, rss ${(memory.more.rss / memory.thousand.rss).toFixed(2)}x (${memory.seconds.toFixed(1)} s)`,
);
