// The `metrics` kind against real HTTP servers on loopback serving SomaStack's /metrics bodies
// (contracts sections 1 and 2), and against peers that refuse, hang, reset or are not HTTP.
// Needs the compiled kind: `npx tsc -p tsconfig.build.json` first.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawServer, refusedPort, serveOnLoopback, silentServer, type TcpPeer } from '../../support/faults.js';
import { runCheck, expectNoSecret } from '../../support/run-check.js';

// SomaBrain gen1, as prometheus_client writes it: counters with _total and _created, histograms.
const SOMABRAIN_GEN1 = `# HELP somabrain_http_requests_total HTTP requests by method, path and status
# TYPE somabrain_http_requests_total counter
somabrain_http_requests_total{method="GET",path="/health",status="200"} 1200.0
somabrain_http_requests_total{method="POST",path="/remember",status="200"} 30.0
somabrain_http_requests_total{method="POST",path="/recall",status="500"} 4.0
# HELP somabrain_http_requests_created HTTP requests by method, path and status
# TYPE somabrain_http_requests_created gauge
somabrain_http_requests_created{method="GET",path="/health",status="200"} 1.7000000001e+09
# HELP somabrain_http_latency_seconds HTTP latency
# TYPE somabrain_http_latency_seconds histogram
somabrain_http_latency_seconds_bucket{le="0.1",method="GET",path="/health"} 1100.0
somabrain_http_latency_seconds_bucket{le="+Inf",method="GET",path="/health"} 1200.0
somabrain_http_latency_seconds_count{method="GET",path="/health"} 1200.0
somabrain_http_latency_seconds_sum{method="GET",path="/health"} 36.5
# HELP somabrain_opa_allow_total OPA allow decisions
# TYPE somabrain_opa_allow_total counter
somabrain_opa_allow_total 12.0
# HELP somabrain_recall_latency_seconds Recall latency
# TYPE somabrain_recall_latency_seconds histogram
somabrain_recall_latency_seconds_bucket{le="0.5"} 3.0
somabrain_recall_latency_seconds_bucket{le="+Inf"} 4.0
somabrain_recall_latency_seconds_count 4.0
somabrain_recall_latency_seconds_sum 1.25
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
`;
const SOMABRAIN_GEN1_SERIES = 14;

// SomaBrain gen2: a static stub, always up, zero counters.
const SOMABRAIN_GEN2 = `# HELP somabrain_up SomaBrain is up
# TYPE somabrain_up gauge
somabrain_up 1
# TYPE somabrain_http_requests_total counter
somabrain_http_requests_total 0
`;

const SFM_GEN1 = `# HELP api_requests_total Total API requests
# TYPE api_requests_total counter
api_requests_total{endpoint="/memories",method="POST"} 7.0
api_requests_total{endpoint="/healthz",method="GET"} 93.0
# HELP api_request_latency_seconds API request latency
# TYPE api_request_latency_seconds histogram
api_request_latency_seconds_bucket{endpoint="/memories",le="0.25"} 6.0
api_request_latency_seconds_bucket{endpoint="/memories",le="+Inf"} 7.0
api_request_latency_seconds_count{endpoint="/memories"} 7.0
api_request_latency_seconds_sum{endpoint="/memories"} 0.8
# HELP api_responses_total API responses by status
# TYPE api_responses_total counter
api_responses_total{status="200"} 98.0
api_responses_total{status="404"} 2.0
# HELP http_404_requests_total Requests answered 404
# TYPE http_404_requests_total counter
http_404_requests_total 2.0
# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 3514.0
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.2e+08
`;

const SFM_GEN2 = `# HELP python_info Python platform information
# TYPE python_info gauge
python_info{implementation="CPython",major="3",minor="12",patchlevel="3",version="3.12.3"} 1.0
# HELP process_open_fds Number of open file descriptors.
# TYPE process_open_fds gauge
process_open_fds 23.0
`;

const TOKEN = 's3cret-metrics-token';
const PROM = 'text/plain; version=0.0.4; charset=utf-8';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
const text = (body: string, type = PROM, status = 200): Handler => (_req, res) => {
  res.writeHead(status, { 'content-type': type });
  res.end(body);
};

const routes: Record<string, Handler> = {
  '/somabrain/gen1': text(SOMABRAIN_GEN1),
  '/somabrain/gen2': text(SOMABRAIN_GEN2),
  '/sfm/gen1': text(SFM_GEN1),
  '/sfm/gen2': text(SFM_GEN2),
  '/empty': text(''),
  '/malformed': text('# TYPE up gauge\nup 1\nrequests_total{path="/x} 3\n'),
  '/html': text('<!DOCTYPE html>\n<html><body>Grafana</body></html>\n', 'text/html'),
  '/json': text('{"detail":"Not Found"}', 'application/json', 200),
  '/error': text('Internal Server Error', 'text/plain', 500),
  '/nan': text('ratio NaN\nlimit +Inf\n'),
  '/protected': (req, res) => {
    if (req.headers.authorization === `Bearer ${TOKEN}`) return text(SFM_GEN1)(req, res);
    // A careless server that echoes what it was sent: the check must still not print the token.
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ detail: 'Unauthorized', got: req.headers.authorization ?? null }));
  },
  '/endless': (_req, res) => {
    // Streams metric lines until the client hangs up.
    res.writeHead(200, { 'content-type': PROM });
    const chunk = Buffer.from('filler_total{shard="0000000000000000000000000000"} 1\n'.repeat(1000));
    const pump = () => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', pump);
    };
    pump();
  },
  '/stall': (_req, res) => {
    // Headers and half a body, then nothing.
    res.writeHead(200, { 'content-type': PROM });
    res.write('up 1\nhalf');
  },
  '/reset': (req) => req.socket.destroy(),
};

let server: TcpPeer;
let base = '';
const url = (path: string) => `${base}${path}`;

beforeAll(async () => {
  server = await serveOnLoopback(
    createServer((req, res) => {
      const handler = routes[req.url?.split('?')[0] ?? ''];
      if (handler) handler(req, res);
      else text('not found', 'text/plain', 404)(req, res);
    }),
  );
  base = server.url();
});

afterAll(() => server.close());

describe('metrics: SomaStack bodies', () => {
  it('passes on SomaBrain gen1 with its request counter, reporting series count and sum', async () => {
    const out = await runCheck('metrics', {
      url: url('/somabrain/gen1'),
      series: [{ name: 'somabrain_http_requests_total' }],
    });
    expect(out.status).toBe('pass');
    expect(out.message).toBe(`${SOMABRAIN_GEN1_SERIES} series; somabrain_http_requests_total present (sum 1234)`);
    expect(out.details).toMatchObject({
      seriesCount: SOMABRAIN_GEN1_SERIES,
      familyCount: 6,
      series: [{ name: 'somabrain_http_requests_total', ok: true, found: 3, sum: 1234 }],
    });
    expect(out.target).toBe(url('/somabrain/gen1'));
  });

  it('matches a histogram by its family name across _bucket, _sum and _count', async () => {
    const out = await runCheck('metrics', {
      url: url('/somabrain/gen1'),
      series: [
        { name: 'somabrain_http_latency_seconds' },
        { name: 'somabrain_recall_latency_seconds_count', value: { op: '>=', value: 4 } },
      ],
    });
    expect(out.status).toBe('pass');
    expect(out.details?.series).toMatchObject([
      { name: 'somabrain_http_latency_seconds', found: 4 },
      { name: 'somabrain_recall_latency_seconds_count', found: 1, sum: 4 },
    ]);
  });

  it('passes on SFM gen1 with the contract series', async () => {
    const out = await runCheck('metrics', {
      url: url('/sfm/gen1'),
      series: [
        { name: 'api_requests_total', value: { op: '>', value: 0 } },
        { name: 'api_request_latency_seconds' },
        { name: 'api_responses_total', labels: { status: '200' } },
        { name: 'http_404_requests_total' },
      ],
    });
    expect(out.status).toBe('pass');
    expect(out.message).toBe(
      '11 series; api_requests_total present (sum 100); api_request_latency_seconds present (sum 20.8); ' +
        'api_responses_total{status="200"} present (sum 98); http_404_requests_total present (sum 2)',
    );
  });

  it('fails on SFM gen2 (process_* and python_* only) naming the missing gen1 series', async () => {
    const out = await runCheck('metrics', {
      url: url('/sfm/gen2'),
      series: [{ name: 'api_requests_total' }, { name: 'process_open_fds' }],
    });
    expect(out.status).toBe('fail');
    expect(out.message).toBe(`api_requests_total missing at ${url('/sfm/gen2')}`);
    expect(out.details).toMatchObject({ seriesCount: 2, familyCount: 2 });
  });

  it('passes on the SomaBrain gen2 stub with somabrain_up == 1', async () => {
    const out = await runCheck('metrics', {
      url: url('/somabrain/gen2'),
      series: [{ name: 'somabrain_up', value: { op: '==', value: 1 } }],
    });
    expect(out.status).toBe('pass');
    expect(out.message).toBe('2 series; somabrain_up present (sum 1)');
  });

  it('reports the series count with no assertions, and fails an empty body', async () => {
    const plain = await runCheck('metrics', { url: url('/sfm/gen2') });
    expect(plain).toMatchObject({ status: 'pass', message: '2 series in 2 families' });
    const empty = await runCheck('metrics', { url: url('/empty') });
    expect(empty.status).toBe('fail');
    expect(empty.message).toBe(`only 0 series, expected at least 1 at ${url('/empty')}`);
  });
});

describe('metrics: label matchers and comparisons', () => {
  it('matches labels exactly', async () => {
    const out = await runCheck('metrics', {
      url: url('/somabrain/gen1'),
      series: [{ name: 'somabrain_http_requests_total', labels: { method: 'POST', status: '200' } }],
    });
    expect(out.status).toBe('pass');
    expect(out.details?.series).toMatchObject([{ found: 1, sum: 30 }]);
  });

  it('matches labels by anchored regex written ~<regex>', async () => {
    const out = await runCheck('metrics', {
      url: url('/somabrain/gen1'),
      series: [
        { name: 'somabrain_http_requests_total', labels: { status: '~5..' } },
        { name: 'somabrain_http_requests_total', labels: { path: '~/re(member|call)' } },
      ],
    });
    expect(out.status).toBe('pass');
    expect(out.details?.series).toMatchObject([
      { found: 1, sum: 4 },
      { found: 2, sum: 34 },
    ]);
  });

  it('treats an exact "" as a missing label, like PromQL', async () => {
    const out = await runCheck('metrics', {
      url: url('/somabrain/gen2'),
      series: [{ name: 'somabrain_http_requests_total', labels: { method: '' }, value: { op: '==', value: 0 } }],
    });
    expect(out.status).toBe('pass');
    expect(out.details?.series).toMatchObject([{ found: 1, sum: 0 }]);
  });

  it('fails when no sample has the labels, saying the name exists (regex anchored: ~20 is not 200)', async () => {
    const out = await runCheck('metrics', {
      url: url('/somabrain/gen1'),
      series: [{ name: 'somabrain_http_requests_total', labels: { status: '~20', method: 'GET' } }],
    });
    expect(out.status).toBe('fail');
    expect(out.message).toBe(
      `somabrain_http_requests_total{status=~"20",method="GET"} missing ` +
        `(3 somabrain_http_requests_total series, none with those labels) at ${url('/somabrain/gen1')}`,
    );
  });

  it.each([
    ['>', 1000, 'pass'],
    ['>=', 1234, 'pass'],
    ['<', 1234, 'fail'],
    ['<=', 1233, 'fail'],
    ['==', 1234, 'pass'],
    ['!=', 1234, 'fail'],
  ] as const)('compares the sum with %s %d: %s', async (op, value, status) => {
    const out = await runCheck('metrics', {
      url: url('/somabrain/gen1'),
      series: [{ name: 'somabrain_http_requests_total', value: { op, value } }],
    });
    expect(out.status).toBe(status);
    if (status === 'fail')
      expect(out.message).toBe(
        `somabrain_http_requests_total sum 1234, expected ${op} ${value} at ${url('/somabrain/gen1')}`,
      );
  });

  it('never passes a comparison on NaN, and reports NaN and +Inf as the format writes them', async () => {
    const out = await runCheck('metrics', {
      url: url('/nan'),
      series: [
        { name: 'ratio', value: { op: '!=', value: 0 } },
        { name: 'limit', value: { op: '>', value: 0 } },
      ],
    });
    expect(out.status).toBe('fail');
    expect(out.message).toBe(`ratio sum NaN, expected != 0 at ${url('/nan')}`);
    expect(out.details?.series).toMatchObject([{ sum: 'NaN', ok: false }, { sum: '+Inf', ok: true }]);
  });

  it('rejects an invalid regex and an unknown option before running', async () => {
    const badRegex = await runCheck('metrics', {
      url: url('/sfm/gen1'),
      series: [{ name: 'api_requests_total', labels: { endpoint: '~(' } }],
    });
    expect(badRegex.invalid?.join()).toMatch(/not a valid regular expression/);
    const rangeInClass = await runCheck('metrics', {
      url: url('/somabrain/gen1'),
      series: [{ name: 'somabrain_http_requests_total', labels: { path: '~/re\\-?(member|call)' } }],
    });
    expect(rangeInClass.details?.series).toMatchObject([{ found: 2 }]);
    const typo = await runCheck('metrics', { url: url('/sfm/gen1'), serie: [] });
    expect(typo.invalid?.join()).toMatch(/serie/);
  });
});

describe('metrics: anyOf, when the generation is unknown', () => {
  // gen1 needs real request labels: the gen2 stub also has an (unlabelled, zero) request counter.
  const generations = [
    { name: 'gen1', series: [{ name: 'somabrain_http_requests_total', labels: { method: '~.+' } }] },
    { name: 'gen2', series: [{ name: 'somabrain_up', value: { op: '==', value: 1 } }] },
  ];

  it('reports gen1 when gen1 series are there', async () => {
    const out = await runCheck('metrics', { url: url('/somabrain/gen1'), anyOf: generations });
    expect(out.status).toBe('pass');
    expect(out.details?.matched).toBe('gen1');
    expect(out.message).toBe(
      `${SOMABRAIN_GEN1_SERIES} series; gen1 matched: somabrain_http_requests_total{method=~".+"} present (sum 1234)`,
    );
  });

  it('reports gen2 on the stub', async () => {
    const out = await runCheck('metrics', { url: url('/somabrain/gen2'), anyOf: generations });
    expect(out.status).toBe('pass');
    expect(out.details?.matched).toBe('gen2');
    expect(out.message).toBe('2 series; gen2 matched: somabrain_up present (sum 1)');
  });

  it('fails naming what each set lacked when none holds', async () => {
    const out = await runCheck('metrics', { url: url('/sfm/gen1'), anyOf: generations });
    expect(out.status).toBe('fail');
    expect(out.details?.matched).toBeNull();
    expect(out.message).toBe(
      'no set of series matched: gen1: somabrain_http_requests_total{method=~".+"} missing; ' +
        `gen2: somabrain_up missing at ${url('/sfm/gen1')}`,
    );
  });

  it('requires `series` as well when both are given', async () => {
    const out = await runCheck('metrics', {
      url: url('/somabrain/gen2'),
      anyOf: generations,
      series: [{ name: 'somabrain_opa_allow_total' }],
    });
    expect(out.status).toBe('fail');
    expect(out.message).toBe(`somabrain_opa_allow_total missing at ${url('/somabrain/gen2')}`);
    expect(out.details?.matched).toBe('gen2');
  });
});

describe('metrics: bodies that are not the text format', () => {
  it('fails malformed text naming the line', async () => {
    const out = await runCheck('metrics', { url: url('/malformed') });
    expect(out.status).toBe('fail');
    expect(out.message).toBe(
      `not Prometheus text format at ${url('/malformed')}: line 3: invalid label value of path: missing closing quote`,
    );
    expect(out.details).toMatchObject({ line: 3 });
  });

  it('fails an HTML page', async () => {
    const out = await runCheck('metrics', { url: url('/html') });
    expect(out.status).toBe('fail');
    expect(out.message).toBe(
      `not Prometheus text format at ${url('/html')}: line 1: invalid metric name at "<!DOCTYPE html>"`,
    );
    expect(out.details).toMatchObject({ http: { status: 200, contentType: 'text/html' } });
  });

  it('fails a JSON answer', async () => {
    const out = await runCheck('metrics', { url: url('/json') });
    expect(out.status).toBe('fail');
    expect(out.message).toMatch(/^not Prometheus text format at .*\/json: line 1: invalid metric name/);
  });
});

describe('metrics: HTTP failures and misbehaving peers', () => {
  it('fails a 500 with the status', async () => {
    const out = await runCheck('metrics', { url: url('/error') });
    expect(out).toMatchObject({ status: 'fail', message: `HTTP 500 from ${url('/error')}` });
  });

  it('fails a 404 with the status', async () => {
    const out = await runCheck('metrics', { url: url('/no-such-path') });
    expect(out).toMatchObject({ status: 'fail', message: `HTTP 404 from ${url('/no-such-path')}` });
  });

  it('sends the bearer token, and says when it is rejected without ever printing it', async () => {
    const good = await runCheck('metrics', { url: url('/protected'), token: TOKEN, series: [{ name: 'api_requests_total' }] });
    expect(good.status).toBe('pass');
    const wrong = await runCheck('metrics', { url: url('/protected'), token: 'wrong-token-value' });
    expect(wrong).toMatchObject({ status: 'fail', message: `HTTP 401 from ${url('/protected')} (token rejected)` });
    expectNoSecret(wrong.output, 'wrong-token-value');
    expectNoSecret(good.output, TOKEN);
    const none = await runCheck('metrics', { url: url('/protected') });
    expect(none.message).toBe(`HTTP 401 from ${url('/protected')} (no token set)`);
  });

  it('masks credentials of the URL in the target and the message', async () => {
    const withSecret = url('/error').replace('http://', 'http://scraper:hunter2pass@');
    const out = await runCheck('metrics', { url: withSecret });
    expect(out.status).toBe('fail');
    expectNoSecret(out.output, 'hunter2pass');
    expect(out.target).toBe(url('/error').replace('http://', 'http://scraper:***@'));
  });

  it('fails, without throwing, when the CA file cannot be read', async () => {
    const out = await runCheck('metrics', { url: 'https://127.0.0.1:9/metrics', tls: { caFile: '/nonexistent/ca.pem' } });
    expect(out.threw).toBeUndefined();
    expect(out.status).toBe('fail');
    expect(out.message).toMatch(/^cannot fetch https:\/\/127\.0\.0\.1:9\/metrics: ENOENT.*\/nonexistent\/ca\.pem/);
  });

  it('fails a refused connection', async () => {
    const port = await refusedPort();
    const out = await runCheck('metrics', { url: `http://127.0.0.1:${port}/metrics` });
    expect(out).toMatchObject({ status: 'fail', message: `connection refused on 127.0.0.1:${port}` });
  });

  it('fails a reset connection', async () => {
    const out = await runCheck('metrics', { url: url('/reset') });
    expect(out).toMatchObject({ status: 'fail' });
    expect(out.message).toMatch(/^connection reset by 127\.0\.0\.1:\d+$/);
  });

  it('fails a peer that is not HTTP', async () => {
    const peer: TcpPeer = await rawServer('SSH-2.0-OpenSSH_9.6\r\n');
    try {
      const out = await runCheck('metrics', { url: `${peer.url()}/metrics` });
      expect(out.status).toBe('fail');
      expect(out.message).toBe(`not an HTTP server on 127.0.0.1:${peer.port} (invalid response bytes)`);
    } finally {
      await peer.close();
    }
  });

  it('fails a silent peer within its timeout', async () => {
    const peer = await silentServer();
    try {
      const out = await runCheck('metrics', { url: `${peer.url()}/metrics` }, { timeoutMs: 1000 });
      expect(out.status).toBe('fail');
      expect(out.message).toBe(`no response from 127.0.0.1:${peer.port} within 1000 ms`);
      expect(out.durationMs).toBeLessThan(1000 + 2000);
    } finally {
      await peer.close();
    }
  });

  it('fails a body that stalls halfway within its timeout', async () => {
    const out = await runCheck('metrics', { url: url('/stall') }, { timeoutMs: 1000 });
    expect(out.status).toBe('fail');
    expect(out.message).toMatch(/^response body from 127\.0\.0\.1:\d+ incomplete after 1000 ms$/);
    expect(out.durationMs).toBeLessThan(1000 + 2000);
  });

  it('caps a huge body at 8 MiB by default, and at maxBodyBytes when set', async () => {
    const capped = await runCheck('metrics', { url: url('/endless') }, { timeoutMs: 15_000 });
    expect(capped).toMatchObject({
      status: 'fail',
      message: `${url('/endless')}: body larger than 8 MiB; raise maxBodyBytes if that is expected`,
    });
    const small = await runCheck('metrics', { url: url('/endless'), maxBodyBytes: 100_000 });
    expect(small.message).toBe(`${url('/endless')}: body larger than 100000 bytes; raise maxBodyBytes if that is expected`);
  });
});
