// The whole local stack (Postgres, Redis, librdkafka's mock Kafka, six HTTP services) verified by
// soma-verify, against the same checks run one after another with the shell tools the stack's
// own scripts use (curl, pg_isready, redis-cli ping, kcat -L). Goal (issue 3): at most 0.5x the
// shell baseline, and within start-up + slowest check + 50 ms. Loopback only; stops by itself.
import { createServer } from 'node:http';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compare, printTable, timeCommand } from './measure.mjs';

const bin = fileURLToPath(new URL('../bin/soma-verify.js', import.meta.url));
const runs = Number(process.env.BENCH_RUNS ?? 10);

for (const tool of ['curl', 'pg_isready', 'redis-cli', 'kcat']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    console.error(`stack bench: ${tool} is missing`);
    process.exit(1);
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

const servers = [];
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
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  urls[name] = `http://127.0.0.1:${server.address().port}`;
}

const kcat = spawn('kcat', ['-X', 'test.mock.num.brokers=1', '-b', 'localhost:1', '-C', '-t', 'bench-anchor', '-q', '-d', 'mock'], { stdio: ['ignore', 'ignore', 'pipe'] });
const brokers = await new Promise((resolve, reject) => {
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

const dir = mkdtempSync(join(tmpdir(), 'soma-bench-'));
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
          postgres: { dsn: 'postgresql://postgres@127.0.0.1:5432/postgres' },
          redis: { url: 'redis://127.0.0.1:6379' },
          kafka: { brokers },
        },
        checks: [{ id: 'prometheus.ready', kind: 'http', url: `${urls.prometheus}/-/ready` }],
      },
    },
  }),
);

// The same observations, one after another, the way the stack's scripts make them.
const shellScript = [
  'set -e',
  `curl -fsS -o /dev/null ${urls.somabrain}/health`,
  `curl -fsS -o /dev/null ${urls.somabrain}/metrics`,
  `curl -fsS -o /dev/null ${urls.sfm}/healthz`,
  `curl -fsS -o /dev/null ${urls.sfm}/metrics`,
  `curl -fsS -o /dev/null ${urls.gateway}/healthz`,
  `curl -fsS -o /dev/null ${urls.qdrant}/readyz`,
  `curl -fsS -o /dev/null ${urls.qdrant}/collections`,
  `curl -fsS -o /dev/null ${urls.opa}/health`,
  `curl -fsS -o /dev/null -X POST -d '{"input":{}}' ${urls.opa}/v1/data/soma/policy/allow`,
  `curl -fsS -o /dev/null ${urls.prometheus}/-/ready`,
  'pg_isready -q -h 127.0.0.1 -p 5432',
  'redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null',
  `kcat -L -b ${brokers} -m 5 >/dev/null`,
].join('\n');

try {
  // Not spawnSync: the HTTP services live in this process and must keep answering.
  const check = await new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, 'bench', '--config', config, '--format', 'json']);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', () => resolve({ stdout, stderr }));
  });
  const report = JSON.parse(check.stdout);
  if (report.status !== 'pass') {
    console.error(`stack bench: the verification itself failed:\n${check.stdout}${check.stderr}`);
    process.exitCode = 1;
  } else {
    const results = await compare(
      [
        { name: 'shell tools, one after another', run: () => timeCommand('bash', ['-c', shellScript]) },
        { name: 'soma-verify bench (all checks)', run: () => timeCommand(process.execPath, [bin, 'bench', '--config', config, '--format', 'json']) },
        { name: 'soma-verify --version (start-up)', run: () => timeCommand(process.execPath, [bin, '--version']) },
      ],
      runs,
    );
    printTable(results, 'shell tools, one after another');
    const slowest = Math.max(...report.checks.map((c) => c.durationMs));
    const verify = results['soma-verify bench (all checks)'].median;
    const startup = results['soma-verify --version (start-up)'].median;
    const ratio = verify / results['shell tools, one after another'].median;
    console.log(`${report.checks.length} checks; slowest ${slowest.toFixed(1)} ms (${report.checks.find((c) => c.durationMs === slowest).id})`);
    console.log(`ratio to the shell baseline: ${ratio.toFixed(2)}x (goal <= 0.5x) ${ratio <= 0.5 ? 'MET' : 'NOT MET'}`);
    const overhead = verify - startup - slowest;
    console.log(`verify - (start-up + slowest check) = ${overhead.toFixed(1)} ms (goal <= 50 ms) ${overhead <= 50 ? 'MET' : 'NOT MET'}`);
  }
} finally {
  kcat.kill('SIGKILL');
  for (const s of servers) s.close();
}
