// The local stack the benchmarks verify: six HTTP services that answer at once, Postgres and
// Redis on their usual loopback ports, librdkafka's mock Kafka (kcat), optionally each behind a
// delaying proxy; plus a soma-verify config for all of it and the shell script that makes the
// same observations one after another with curl, pg_isready, redis-cli and kcat -L.
import { createServer } from 'node:http';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDelayProxy } from './delay-proxy.mjs';

/**
 * An HTTP server that answers every request at once with a small JSON body, in a process of its
 * own: its answers then wait neither for the other peers' work nor for this process's event loop.
 * Returns { url, stop }.
 */
export async function startInstantServer() {
  const source = `
    const { createServer } = require('node:http');
    const s = createServer((req, res) => { req.resume(); res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"status":"ok"}'); });
    s.listen(0, '127.0.0.1', () => process.stdout.write(String(s.address().port) + '\\n'));
    process.stdin.on('end', () => process.exit(0)); process.stdin.resume();
  `;
  const server = spawn(process.execPath, ['-e', source], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise((resolve) => server.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
  return { url: `http://127.0.0.1:${port}`, stop: () => server.stdin.end() };
}

export function requireTools(tools) {
  for (const tool of tools) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`bench: ${tool} is missing`);
  }
}

const json = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};
const text = (res, body) => {
  res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
  res.end(body);
};
const ROUTES = {
  somabrain: {
    'GET /health': (res) => json(res, 200, { status: 'healthy', infrastructure: { postgresql: { name: 'postgresql', status: 'healthy', response_time_ms: 1.2 }, redis: { name: 'redis', status: 'healthy', response_time_ms: 0.4 } }, internal_services: { cognitive: { name: 'cognitive', status: 'healthy', response_time_ms: 0.1 } } }),
    'GET /metrics': (res) => text(res, '# TYPE somabrain_up gauge\nsomabrain_up 1\n'),
  },
  sfm: {
    'GET /health': (res) => json(res, 200, { kv_store: true, vector_store: true, graph_store: true }),
    'GET /healthz': (res) => json(res, 200, { kv_store: true, vector_store: true, graph_store: true }),
    'GET /metrics': (res) => text(res, '# TYPE api_requests_total counter\napi_requests_total{endpoint="/healthz",method="GET"} 42\n'),
  },
  gateway: {
    'GET /healthz': (res) => json(res, 200, { status: 'ok', components: { postgres: { status: 'ok' }, redis: { status: 'ok' }, kafka: { status: 'ok' }, somabrain_http: { status: 'ok' } } }),
  },
  qdrant: {
    'GET /readyz': (res) => text(res, 'all shards are ready'),
    'GET /collections': (res) => json(res, 200, { result: { collections: [] }, status: 'ok', time: 0.0001 }),
  },
  opa: {
    'GET /health': (res) => json(res, 200, {}),
    'POST /v1/data/soma/policy/allow': (res) => json(res, 200, { result: false }),
  },
  prometheus: {
    'GET /-/ready': (res) => text(res, 'Prometheus Server is Ready.\n'),
  },
};

async function listen(server) {
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return server.address().port;
}

/**
 * Start the peers. `delayMs` > 0 puts a delaying proxy in front of each (Kafka: in front of the
 * bootstrap address, which is all `kcat -L` and the kafka check's metadata request use first).
 * `extraChecks(urls)` returns checks to add to the environment's. Returns { config, dir, urls, exchanges, shellScript, stop }.
 */
export async function startStack({ delayMs = 0, extraChecks = () => [] } = {}) {
  const closers = [];
  const via = async (port) => {
    if (!delayMs) return port;
    const proxy = await startDelayProxy(port, delayMs);
    closers.push(() => proxy.close());
    return proxy.port;
  };
  const urls = {};
  for (const [name, routes] of Object.entries(ROUTES)) {
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const route = routes[`${req.method} ${new URL(req.url, 'http://x').pathname}`];
        if (route) route(res);
        else json(res, 404, { detail: 'Not Found' });
      });
    });
    const port = await listen(server);
    closers.push(() => server.close());
    urls[name] = `http://127.0.0.1:${await via(port)}`;
  }

  const kcat = spawn('kcat', ['-X', 'test.mock.num.brokers=1', '-b', 'localhost:1', '-C', '-t', 'bench-anchor', '-q', '-d', 'mock'], { stdio: ['ignore', 'ignore', 'pipe'] });
  closers.push(() => kcat.kill('SIGKILL'));
  const mockBrokers = await new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`kcat mock cluster did not start: ${seen.slice(0, 300)}`)), 10_000);
    kcat.stderr.on('data', (d) => {
      seen += d;
      const match = /bootstrap\.servers=([0-9.:,]+)/.exec(seen);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
  });
  const brokerPort = Number(mockBrokers.split(',')[0].split(':').pop());
  const brokers = `127.0.0.1:${await via(brokerPort)}`;
  const pgPort = await via(5432);
  const redisPort = await via(6379);

  const dir = mkdtempSync(join(tmpdir(), 'soma-bench-'));
  closers.push(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'soma-verify.config.json');
  writeFileSync(
    config,
    JSON.stringify({
      environments: {
        bench: {
          services: {
            somabrain: { url: urls.somabrain, generation: 'gen2' },
            sfm: { url: urls.sfm, generation: 'gen1' },
            gateway: { url: urls.gateway, generation: 'gen1' },
            qdrant: { url: urls.qdrant },
            opa: { url: urls.opa },
            postgres: { dsn: `postgresql://postgres@127.0.0.1:${pgPort}/postgres` },
            redis: { url: `redis://127.0.0.1:${redisPort}` },
            kafka: { brokers },
          },
          checks: [{ id: 'prometheus.ready', kind: 'http', url: `${urls.prometheus}/-/ready` }, ...extraChecks(urls)],
        },
      },
    }),
  );
  // What the verification requests over HTTP, besides the extra checks.
  const httpGets = [
    `${urls.somabrain}/health`,
    `${urls.somabrain}/metrics`,
    `${urls.sfm}/healthz`,
    `${urls.sfm}/metrics`,
    `${urls.gateway}/healthz`,
    `${urls.qdrant}/readyz`,
    `${urls.qdrant}/collections`,
    `${urls.opa}/health`,
    `${urls.prometheus}/-/ready`,
  ];
  const opaDecision = `${urls.opa}/v1/data/soma/policy/allow`;
  const shellScript = [
    'set -e',
    ...httpGets.map((url) => `curl -fsS -o /dev/null ${url}`),
    `curl -fsS -o /dev/null -X POST -d '{"input":{}}' ${opaDecision}`,
    `pg_isready -q -h 127.0.0.1 -p ${pgPort}`,
    `redis-cli -h 127.0.0.1 -p ${redisPort} ping >/dev/null`,
    `kcat -L -b ${brokers} -m 5 >/dev/null`,
  ].join('\n');
  return {
    config,
    dir,
    urls,
    // The same exchanges for bench/plain-exchanges.cjs (extra checks' URLs are the caller's to add).
    exchanges: { http: httpGets, post: [opaDecision], postgres: pgPort, redis: redisPort, kafka: Number(brokers.split(':')[1]) },
    shellScript,
    stop() {
      for (const close of closers.reverse()) close();
    },
  };
}
