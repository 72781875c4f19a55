// `soma-verify serve` over real HTTP: the compiled CLI as a child process, SomaStack doubles
// behind it, /metrics read with the project's own Prometheus parser. A stack that fails and
// recovers between scrapes, scrapes that overlap a slow run (and never start one), SIGTERM in the
// middle of a run, and a check that throws.
import { createServer } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePrometheusText, type Sample } from '../../src/prometheus.js';
import { buildReport } from '../../src/report/report.js';
import { startExporter } from '../../src/serve/exporter.js';
import { serveOnLoopback } from '../support/faults.js';
import { sfmDouble, type Double, type SfmDouble, type SfmState } from '../support/somastack.js';
import { startCli, tempProject, type RunningCli } from '../support/cli.js';

const TOKEN = 'serve-secret-token-0b7e4d21';
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const clean of cleanups.splice(0).reverse()) await clean();
});

const HEALTHY = { kv_store: true, vector_store: true, graph_store: true };
const DOWN = { kv_store: false, vector_store: true, graph_store: true }; // gen2 says unhealthy

async function sfm(patch: Partial<SfmState> = {}): Promise<SfmDouble> {
  const d = await sfmDouble({ generation: 'gen2', token: TOKEN, ...patch });
  cleanups.push(() => d.close());
  return d;
}

/** Start `soma-verify serve staging` on a free port; resolves with its base URL once it listens. */
async function serve(config: unknown, args: string[], files: Record<string, string> = {}): Promise<{ cli: RunningCli; url: string }> {
  const p = await tempProject({ 'soma-verify.config.yaml': JSON.stringify(config), ...files });
  cleanups.push(p.remove);
  const cli = startCli(['serve', 'staging', '--port', '0', ...args], { cwd: p.dir, env: { SFM_TOKEN: TOKEN }, timeoutMs: 60_000 });
  let stderr = ''; // attached before the first 'data' event, so nothing is missed
  cli.child.stderr!.on('data', (d: string) => (stderr += d));
  cleanups.push(async () => {
    if (cli.child.exitCode === null) cli.child.kill('SIGKILL');
    await cli.done.catch(() => {});
  });
  await cli.stderrMatches(/http:\/\/127\.0\.0\.1:\d+\/metrics/);
  const url = /(http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(stderr)![1]!;
  return { cli, url };
}

const sfmConfig = (double: Double<SfmState>) => ({
  environments: { staging: { services: { sfm: { url: double.url, token: '${SFM_TOKEN}', generation: 'gen2' } } } },
});

async function scrape(url: string) {
  const res = await fetch(`${url}/metrics`);
  const text = await res.text();
  return { res, text, metrics: parsePrometheusText(text) };
}
const value = (samples: Sample[], name: string, labels: Record<string, string>) =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

/** Poll `probe` until it returns true; fail naming `what` after `ms`. */
async function until(what: string, probe: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`not within ${ms} ms: ${what}`);
}

describe('soma-verify serve', () => {
  it('metrics and /healthz follow a stack that fails and recovers between scrapes', async () => {
    const double = await sfm({ stores: DOWN });
    const { url, cli } = await serve(sfmConfig(double), ['--interval', '150ms']);
    const health = { check: 'sfm.health', kind: 'health', service: 'sfm', env: 'staging' };

    await until('a first run', async () => (await fetch(`${url}/healthz`)).status === 503 && (await scrape(url)).text.includes('soma_check_success'));
    let m = await scrape(url);
    expect(m.res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(value(m.metrics.samples, 'soma_check_success', health)).toBe(0);
    expect(value(m.metrics.samples, 'soma_check_status', { ...health, status: 'fail' })).toBe(1);
    expect(value(m.metrics.samples, 'soma_check_status', { ...health, status: 'pass' })).toBe(0);
    expect(m.metrics.families.get('soma_check_duration_seconds')?.type).toBe('gauge');
    expect(m.metrics.families.get('process_resident_memory_bytes')?.type).toBe('gauge');
    expect(m.metrics.families.get('process_cpu_seconds_total')?.type).toBe('counter');
    const lastRun = value(m.metrics.samples, 'soma_verify_last_run_timestamp_seconds', { env: 'staging' })!;
    expect(Math.abs(lastRun - Date.now() / 1000)).toBeLessThan(60);
    expect(value(m.metrics.samples, 'soma_verify_run_duration_seconds', { env: 'staging' })).toBeGreaterThan(0);
    const failing = await fetch(`${url}/healthz`);
    expect(failing.status).toBe(503);
    expect(((await failing.json()) as { status: string }).status).toBe('fail');

    double.set({ stores: HEALTHY });
    await until('the recovery', async () => value((await scrape(url)).metrics.samples, 'soma_check_success', health) === 1);
    m = await scrape(url);
    expect(value(m.metrics.samples, 'soma_check_status', { ...health, status: 'pass' })).toBe(1);
    expect(value(m.metrics.samples, 'soma_check_status', { ...health, status: 'fail' })).toBe(0);
    const passing = await fetch(`${url}/healthz`);
    expect(passing.status).toBe(200);
    expect(((await passing.json()) as { status: string }).status).toBe('pass');

    double.set({ stores: DOWN });
    await until('the next failure', async () => (await fetch(`${url}/healthz`)).status === 503);

    const page = await fetch(url);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await page.text()).toMatch(/href="metrics".*href="healthz"/s);
    expect((await fetch(`${url}/nope`)).status).toBe(404);
    expect((await fetch(`${url}/metrics`, { method: 'POST' })).status).toBe(405);
    // The token reached the service, and never any output.
    expect(double.bearerTokens()).toContain(TOKEN);
    for (const text of [(await scrape(url)).text, await (await fetch(`${url}/healthz`)).text()]) expect(text).not.toContain(TOKEN);
    expect(double.writes()).toEqual([]);

    cli.child.kill('SIGTERM');
    const r = await cli.done;
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain(TOKEN);
  });

  it('a service that goes away (connection refused) and comes back on its port', async () => {
    const server = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    });
    const peer = await serveOnLoopback(server);
    let up = true;
    cleanups.push(async () => {
      if (up) await peer.close();
    });
    const config = { environments: { staging: { checks: [{ id: 'svc', kind: 'health', url: peer.url() }] } } };
    const { url, cli } = await serve(config, ['--interval', '100ms']);
    const success = async () => value((await scrape(url)).metrics.samples, 'soma_check_success', { check: 'svc' });
    await until('a passing run', async () => (await success()) === 1);
    await peer.close();
    up = false;
    await until('the outage in the metrics', async () => (await success()) === 0);
    // A run caught mid-request by the close says "reset"; the next ones find the port closed.
    await until('the outage in /healthz', async () => {
      const down = (await (await fetch(`${url}/healthz`)).json()) as { checks: Array<{ message: string }> };
      return /connection refused/.test(down.checks[0]!.message);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(peer.port, '127.0.0.1', () => resolve()));
    up = true;
    cleanups.push(() => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }));
    await until('the recovery in the metrics', async () => (await success()) === 1);
    cli.child.kill('SIGTERM');
    expect((await cli.done).code).toBe(0);
  });

  it('a scrape never starts a run, and scrapes during a slow run all answer with the last one', async () => {
    // One check whose endpoint takes 1.5 s; counts requests and how many are in flight at once.
    let inFlight = 0;
    let maxInFlight = 0;
    let requests = 0;
    const slow = await serveOnLoopback(
      createServer((req, res) => {
        requests++;
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        req.resume();
        setTimeout(() => {
          inFlight--;
          res.writeHead(200).end('ok');
        }, 1500);
      }),
    );
    cleanups.push(() => slow.close());
    const config = { environments: { staging: { checks: [{ id: 'slow', kind: 'http', url: slow.url(), timeout: '10s' }] } } };
    const { url, cli } = await serve(config, ['--interval', '100ms']);
    await until('a first run', async () => (await fetch(`${url}/healthz`)).status === 200);
    // Scrapes overlapping the second (slow) run: all answer at once, from the first run.
    const before = requests;
    const started = performance.now();
    const scrapes = await Promise.all(Array.from({ length: 20 }, () => scrape(url)));
    expect(performance.now() - started).toBeLessThan(1500);
    for (const s of scrapes) expect(value(s.metrics.samples, 'soma_check_success', { check: 'slow' })).toBe(1);
    expect(requests - before).toBeLessThanOrEqual(1); // the interval's own run, not one per scrape
    await new Promise((r) => setTimeout(r, 2000));
    expect(maxInFlight).toBe(1); // one run at a time, however short the interval
    cli.child.kill('SIGTERM');
    expect((await cli.done).code).toBe(0);
  });

  it('with a long interval, any number of scrapes sends nothing to the stack', async () => {
    const double = await sfm({ stores: HEALTHY });
    const { url, cli } = await serve(sfmConfig(double), ['--interval', '1m']);
    await until('a first run', async () => (await fetch(`${url}/healthz`)).status === 200);
    const seen = double.count();
    for (let i = 0; i < 30; i++) await Promise.all([scrape(url), fetch(`${url}/healthz`), fetch(url)]);
    expect(double.count()).toBe(seen);
    cli.child.kill('SIGINT');
    expect((await cli.done).code).toBe(0);
  });

  it('SIGTERM in the middle of a run stops it within 2 s, exit 0', async () => {
    const silent = await serveOnLoopback(createServer(() => {})); // never answers
    cleanups.push(() => silent.close());
    const config = { environments: { staging: { checks: [{ id: 'hangs', kind: 'http', url: silent.url(), timeout: '30s' }] } } };
    const { cli } = await serve(config, ['--deadline', '60s']);
    await new Promise((r) => setTimeout(r, 300)); // the run is under way, waiting on the silent peer
    const sent = performance.now();
    cli.child.kill('SIGTERM');
    const r = await cli.done;
    expect(r.code).toBe(0);
    expect(performance.now() - sent).toBeLessThan(2000 + 1000);
    expect(r.stderr).toMatch(/SIGTERM, stopping after 0 runs/);
  });

  // The exporter alone, over real HTTP: its runs are the input here, so one can end in an engine
  // fault (no report) on demand.
  it('a run that ends in an error leaves no pass standing: last run success 0, check metrics dropped, /healthz 503 until a run reports', async () => {
    const passed = buildReport('staging', new Date(), 5, [{ id: 'api', kind: 'http', target: 'http://x', status: 'pass', durationMs: 5, message: 'ok', details: {} }], false);
    let runs = 0;
    let faulty = false;
    const exporter = await startExporter({
      host: '127.0.0.1',
      port: 0,
      intervalMs: 30,
      env: 'staging',
      say: () => {},
      run: async () => {
        runs++;
        if (faulty) throw new Error('engine fault');
        return passed;
      },
    });
    cleanups.push(() => exporter.stop());
    await until('a passing run', async () => value((await scrape(exporter.url)).metrics.samples, 'soma_verify_last_run_success', { env: 'staging' }) === 1);
    faulty = true;
    await until('the fault counted', async () => value((await scrape(exporter.url)).metrics.samples, 'soma_verify_run_errors_total', {})! >= 1);
    const { metrics } = await scrape(exporter.url);
    expect(value(metrics.samples, 'soma_verify_last_run_success', { env: 'staging' })).toBe(0);
    expect(metrics.samples.filter((s) => s.name === 'soma_check_success')).toEqual([]);
    const health = await fetch(`${exporter.url}/healthz`);
    expect(health.status).toBe(503);
    expect(await health.json()).toEqual({ status: 'fail', message: 'the run failed: engine fault' });
    faulty = false;
    await until('a run that reports again', async () => (await fetch(`${exporter.url}/healthz`)).status === 200);
    expect(runs).toBeGreaterThan(2);
  });

  it('a check that calls process.exit(0) fails, and the exporter keeps running', async () => {
    const plugin = `export default {
  kind: 'quits',
  options: { '~standard': { version: 1, vendor: 'test', validate: (value) => ({ value }) } },
  target: () => 'nowhere',
  async run() { process.exit(0); },
};
`;
    const config = { plugins: ['./quits.mjs'], environments: { staging: { checks: [{ id: 'quits', kind: 'quits' }] } } };
    const { url, cli } = await serve(config, ['--interval', '50ms'], { 'quits.mjs': plugin });
    await until('three runs', async () => (await scrape(url)).metrics.samples.filter((s) => s.name === 'soma_verify_runs_total').reduce((a, s) => a + s.value, 0) >= 3);
    const { metrics } = await scrape(url);
    expect(value(metrics.samples, 'soma_check_success', { check: 'quits' })).toBe(0);
    expect(cli.child.exitCode).toBe(null);
    cli.child.kill('SIGTERM');
    expect((await cli.done).code).toBe(0);
  });

  it('survives a check that throws, and keeps serving its failures', async () => {
    const plugin = `let n = 0;
export default {
  kind: 'throws',
  options: { '~standard': { version: 1, vendor: 'test', validate: (value) => ({ value }) } },
  target: () => 'nowhere',
  async run() {
    n++;
    if (n % 2) throw new Error('boom ' + n);
    setTimeout(() => { throw new Error('stray ' + n); }, 1);
    return { status: 'pass', message: 'fine this time' };
  },
};
`;
    const config = { plugins: ['./throws.mjs'], environments: { staging: { checks: [{ id: 'throws', kind: 'throws' }] } } };
    const { url, cli } = await serve(config, ['--interval', '50ms'], { 'throws.mjs': plugin });
    await until('several runs', async () => {
      const m = await scrape(url);
      const runs = m.metrics.samples.filter((s) => s.name === 'soma_verify_runs_total').reduce((a, s) => a + s.value, 0);
      return runs >= 6;
    });
    const h = await fetch(`${url}/healthz`);
    expect([200, 503]).toContain(h.status);
    cli.child.kill('SIGTERM');
    const r = await cli.done;
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/check crashed: boom|stray/);
  });

  it('a configuration error or a bad flag exits 2 at once', async () => {
    const p = await tempProject({ 'soma-verify.config.yaml': JSON.stringify({ environments: { staging: { checks: [{ id: 'x', kind: 'http', url: 'ftp://x' }] } } }) });
    cleanups.push(p.remove);
    const bad = await startCli(['serve', 'staging', '--port', '0'], { cwd: p.dir }).done;
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('environments.staging.checks[0].url:');
    const flag = await startCli(['serve', '--port', '70000'], { cwd: p.dir }).done;
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('--port: expected a port number (0-65535), got "70000"');
    const empty = await startCli(['serve', '--port', ''], { cwd: p.dir }).done;
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('--port: expected a port number (0-65535), got ""');
    const interval = await startCli(['serve', '--interval', 'often'], { cwd: p.dir }).done;
    expect(interval.code).toBe(2);
    expect(interval.stderr).toContain('--interval: expected a duration');
  });
});

describe('the exporter in-process', () => {
  it('escapes label values as the text format requires, and parses back to them', async () => {
    const { startExporter } = await import('../../src/serve/exporter.js');
    const { buildReport } = await import('../../src/report/report.js');
    const env = 'we"ird\\env\nname';
    const exporter = await startExporter({
      host: '127.0.0.1',
      port: 0,
      intervalMs: 60_000,
      env,
      say: () => {},
      run: async () =>
        buildReport(env, new Date(), 5, [{ id: 'a.b:c/d-e', kind: 'http', service: 's"x', target: 't', status: 'warn', durationMs: 250, message: 'm', details: {} }], false),
    });
    cleanups.push(() => exporter.stop());
    await until('a run', async () => exporter.runs === 1);
    const { metrics, text } = await scrape(exporter.url);
    expect(text).toContain('env="we\\"ird\\\\env\\nname"');
    const labels = { check: 'a.b:c/d-e', service: 's"x', env };
    expect(value(metrics.samples, 'soma_check_success', labels)).toBe(1); // a warning passes
    expect(value(metrics.samples, 'soma_check_status', { ...labels, status: 'warn' })).toBe(1);
    expect(value(metrics.samples, 'soma_check_duration_seconds', labels)).toBe(0.25);
  });
  it('runs the smoke scenarios only with --smoke, on the interval, against the SFM double, and leaves nothing behind', async () => {
    const smokeOn = { environments: { staging: { smoke: true, services: sfmConfig(await sfm({ stores: HEALTHY })).environments.staging.services } } };
    // The environment asks for smoke, but serve writes only when told on its command line.
    const quiet = await serve(smokeOn, ['--interval', '150ms']);
    await until('a first run', async () => (await scrape(quiet.url)).text.includes('soma_check_success'));
    expect((await scrape(quiet.url)).text).not.toContain('sfm.smoke');

    const double = await sfm({ stores: HEALTHY });
    const { url, cli } = await serve(sfmConfig(double), ['--interval', '150ms', '--smoke']);
    const smoke = { check: 'sfm.smoke', kind: 'sfm.smoke', env: 'staging' };
    await until('two runs with the scenario', async () => {
      const m = await scrape(url);
      return value(m.metrics.samples, 'soma_check_success', smoke) === 1 && double.count('/memories') >= 2;
    });
    cli.child.kill('SIGTERM');
    expect((await cli.done).code).toBe(0);
    expect(double.writes().length).toBeGreaterThan(0); // it did write...
    expect(double.live()).toEqual([]); // ...and removed all it wrote
  });
});
