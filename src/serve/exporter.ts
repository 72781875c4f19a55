// `soma-verify serve`: a long-running exporter, the role blackbox_exporter plays. Runs the plan on
// an interval, one run at a time (a run that outlasts the interval delays the next, never
// overlaps it), and serves the last finished run: GET /metrics (Prometheus text 0.0.4), GET
// /healthz (the last report as JSON; 200 when it passed, 503 otherwise), GET / (a page linking
// both). A scrape only reads what the last run left: it never starts a run, so it never writes.
//
// Metrics through prom-client (the maintained Prometheus client for Node: exposition, label
// escaping, process metrics). The check metrics are rendered to text once per run: a scrape
// then always sees one run whole, never half of one and half of the next.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Status } from '../check.js';
import { checksCount, type Report } from '../report/report.js';

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
const STATUSES: Status[] = ['pass', 'warn', 'fail', 'skip'];
/** After a stop is asked for, how long a run may take to wind down before the exporter lets go. */
const STOP_GRACE_MS = 1500;

export interface ExporterOptions {
  host: string;
  port: number;
  intervalMs: number;
  env: string;
  /** One run of the plan, already redacted; aborted when the exporter stops. */
  run(signal: AbortSignal): Promise<Report>;
  /** A line for stderr (the caller redacts it). */
  say(line: string): void;
  verbose?: boolean;
}

export interface Exporter {
  url: string;
  port: number;
  /** Finished runs so far. */
  readonly runs: number;
  /** Stop the loop (aborting a run under way) and the server; resolves within about 1.5 s. */
  stop(): Promise<void>;
}

export async function startExporter(opts: ExporterOptions): Promise<Exporter> {
  const metrics = new CheckMetrics(opts.env);
  const processMetrics = new Registry();
  collectDefaultMetrics({ register: processMetrics });

  let last: Report | undefined;
  /** Why the latest run gave no report; /healthz answers 503 with it until a run reports again. */
  let failure: string | undefined;
  let runs = 0;
  const stopping = new AbortController();

  const server = createServer((req, res) => {
    respond(req, res).catch((err: Error) => {
      opts.say(`soma-verify serve: cannot answer ${req.url}: ${err.message}`);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  // A scraper that stalls cannot hold a socket for ever.
  server.headersTimeout = 5000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5000;

  async function respond(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (path === '/metrics') {
      const body = metrics.text + (await processMetrics.metrics());
      send(res, req, 200, CONTENT_TYPE, body);
    } else if (path === '/healthz') {
      const passed = last !== undefined && last.status !== 'fail' && failure === undefined;
      const body = failure
        ? JSON.stringify({ status: 'fail', message: failure }, null, 2)
        : last
          ? JSON.stringify(last, null, 2)
          : JSON.stringify({ status: 'starting', message: 'no run has finished yet' });
      send(res, req, passed ? 200 : 503, 'application/json', `${body}\n`);
    } else if (path === '/') {
      send(res, req, 200, 'text/html; charset=utf-8', PAGE);
    } else {
      send(res, req, 404, 'text/plain', 'not found: try /metrics or /healthz\n');
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  const loop = (async () => {
    let lastStatus: Report['status'] | undefined;
    while (!stopping.signal.aborted) {
      const started = performance.now();
      // A signal per run, linked to the stop: the runner derives signals from the one it gets
      // (AbortSignal.any), and a source that lives for days would keep every run's alive.
      const run = new AbortController();
      const onStop = () => run.abort();
      stopping.signal.addEventListener('abort', onStop, { once: true });
      try {
        const report = await opts.run(run.signal);
        // A run cut short by the stop is not a verdict on the stack: keep the last whole one.
        if (stopping.signal.aborted) break;
        last = report;
        failure = undefined;
        runs++;
        await metrics.record(report);
        if (opts.verbose || report.status !== lastStatus) opts.say(`soma-verify serve: run ${runs}: ${summaryOf(report)}`);
        lastStatus = report.status;
      } catch (err) {
        // An engine fault, not a check's (the runner turns those into results): count it, carry
        // on. The last report no longer stands for the stack: a scrape must not read a pass.
        failure = `the run failed: ${(err as Error)?.message ?? String(err)}`;
        await metrics.recordError();
        opts.say(`soma-verify serve: run failed: ${(err as Error)?.stack ?? String(err)}`);
      } finally {
        stopping.signal.removeEventListener('abort', onStop);
      }
      const pause = Math.max(0, opts.intervalMs - (performance.now() - started));
      try {
        await sleep(pause, undefined, { signal: stopping.signal });
      } catch {
        break;
      }
    }
  })();

  return {
    url: `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`,
    port,
    get runs() {
      return runs;
    },
    async stop() {
      stopping.abort();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_GRACE_MS)));
      await Promise.race([Promise.all([loop, closed]), grace]);
      clearTimeout(timer);
    },
  };
}

/** The check metrics of the last run, as Prometheus text. */
class CheckMetrics {
  private readonly registry = new Registry();
  private readonly labels = ['check', 'kind', 'service', 'env'] as const;
  private readonly success = new Gauge({
    name: 'soma_check_success',
    help: 'Whether the check passed in the last run (1 pass or warn, 0 fail or skip).',
    labelNames: this.labels,
    registers: [this.registry],
  });
  private readonly status = new Gauge({
    name: 'soma_check_status',
    help: 'The status of the check in the last run, one-hot over pass, warn, fail and skip.',
    labelNames: [...this.labels, 'status'],
    registers: [this.registry],
  });
  private readonly duration = new Gauge({
    name: 'soma_check_duration_seconds',
    help: 'How long the check took in the last run.',
    labelNames: this.labels,
    registers: [this.registry],
  });
  private readonly lastRun = new Gauge({
    name: 'soma_verify_last_run_timestamp_seconds',
    help: 'When the last run finished, in seconds since the epoch.',
    labelNames: ['env'],
    registers: [this.registry],
  });
  private readonly runDuration = new Gauge({
    name: 'soma_verify_run_duration_seconds',
    help: 'How long the last run took.',
    labelNames: ['env'],
    registers: [this.registry],
  });
  private readonly lastSuccess = new Gauge({
    name: 'soma_verify_last_run_success',
    help: 'Whether the last run passed (1) or failed (0).',
    labelNames: ['env'],
    registers: [this.registry],
  });
  private readonly runsTotal = new Counter({
    name: 'soma_verify_runs_total',
    help: 'Runs finished, by their status.',
    labelNames: ['env', 'status'],
    registers: [this.registry],
  });
  readonly runErrors = new Counter({
    name: 'soma_verify_run_errors_total',
    help: 'Runs that ended in an internal error instead of a report.',
    labelNames: [],
    registers: [this.registry],
  });
  text = '';

  constructor(private readonly env: string) {
    this.runErrors.inc(0); // present from the first scrape, so rate() sees the first error
  }

  async record(report: Report): Promise<void> {
    // Checks are the plan's, so the label sets are bounded; reset drops a check no longer run.
    this.success.reset();
    this.status.reset();
    this.duration.reset();
    for (const c of report.checks) {
      const labels = { check: c.id, kind: c.kind, service: c.service ?? '', env: this.env };
      this.success.set(labels, c.status === 'pass' || c.status === 'warn' ? 1 : 0);
      for (const s of STATUSES) this.status.set({ ...labels, status: s }, c.status === s ? 1 : 0);
      this.duration.set(labels, c.durationMs / 1000);
    }
    this.lastRun.set({ env: this.env }, Date.now() / 1000);
    this.runDuration.set({ env: this.env }, report.durationMs / 1000);
    this.lastSuccess.set({ env: this.env }, report.status === 'fail' ? 0 : 1);
    this.runsTotal.inc({ env: this.env, status: report.status });
    this.text = await this.registry.metrics();
  }

  /** A run that ended in an error: no check result stands, the last run failed, the error counts. */
  async recordError(): Promise<void> {
    this.success.reset();
    this.status.reset();
    this.duration.reset();
    this.lastRun.set({ env: this.env }, Date.now() / 1000);
    this.lastSuccess.set({ env: this.env }, 0);
    this.runErrors.inc();
    this.text = await this.registry.metrics();
  }
}

function send(res: ServerResponse, req: IncomingMessage, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function summaryOf(report: Report): string {
  const s = report.summary;
  const failing = report.checks.filter((c) => c.status === 'fail').map((c) => `${c.id}: ${c.message}`);
  return `${report.status.toUpperCase()} ${checksCount(report.checks.length)}, ${s.pass} passed, ${s.warn} warned, ${s.fail} failed, ${s.skip} skipped${failing.length ? ` (${failing.join('; ')})` : ''}`;
}

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>soma-verify</title></head>
<body><h1>soma-verify</h1>
<ul><li><a href="metrics">/metrics</a>: Prometheus metrics of the last run</li>
<li><a href="healthz">/healthz</a>: the last report (200 passed, 503 failed or not run yet)</li></ul>
</body></html>
`;
