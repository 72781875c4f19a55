// Misbehaving peers end to end: the compiled CLI must turn each into a clear failure within its
// timeout and exit by itself (runCli kills an overrun child and fails the test). Timing is only
// asserted as "within the timeout plus a generous margin". One CLI at a time in this file, so
// the 2 cores do not skew those bounds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentServer, type TcpPeer } from '../support/faults.js';
import { gatewayDouble, notHttpServer, sfmDouble, type Double, type GatewayState, type SfmState } from '../support/somastack.js';
import { checkOf, reportOf, runCli, startCli, tempProject } from '../support/cli.js';

// Child start-up (~0.5 s, more on a busy machine) plus slack: not a speed test.
const MARGIN_MS = 3000;

let slow: Double<GatewayState>, resetting: Double<SfmState>, resettingChunked: Double<SfmState>, huge: Double<SfmState>, healthy: Double<SfmState>;
let silent: TcpPeer, notHttp: TcpPeer;
let project: { dir: string; remove(): Promise<void> };

beforeAll(async () => {
  [slow, resetting, resettingChunked, huge, healthy, silent, notHttp] = await Promise.all([
    gatewayDouble({ generation: 'gen1', fault: { mode: 'delay', ms: 3000 } }),
    sfmDouble({ generation: 'gen1', fault: { mode: 'reset' } }),
    sfmDouble({ generation: 'gen1', fault: { mode: 'reset', chunked: true } }),
    sfmDouble({ generation: 'gen1', fault: { mode: 'huge' } }),
    sfmDouble({ generation: 'gen1' }),
    silentServer(),
    notHttpServer(),
  ]);
  const config = {
    environments: {
      slow: { services: { gateway: { url: slow.url, generation: 'gen1', timeout: '500ms' } } },
      silent: { services: { gateway: { url: silent.url(), generation: 'gen1', timeout: '500ms' } } },
      reset: { services: { sfm: { url: resetting.url, generation: 'gen1', metrics: false } } },
      'reset-chunked': { services: { sfm: { url: resettingChunked.url, generation: 'gen1', metrics: false } } },
      'not-http': { services: { sfm: { url: notHttp.url(), generation: 'auto', metrics: false } } },
      huge: { services: { sfm: { url: huge.url, generation: 'gen1', metrics: false } } },
      // Four slow checks under a long timeout: only the global deadline can end this run early.
      deadline: {
        services: { gateway: { url: slow.url, generation: 'gen1', timeout: '20s' } },
        checks: [
          { id: 'slow.a', kind: 'http', url: `${slow.url}/v1/health`, timeout: '20s' },
          { id: 'slow.b', kind: 'http', url: `${slow.url}/health`, timeout: '20s' },
          { id: 'healthy.ping', kind: 'http', url: `${healthy.url}/ping` },
        ],
      },
    },
  };
  project = await tempProject({ 'soma-verify.config.json': JSON.stringify(config) });
});

afterAll(async () => {
  await Promise.all([slow, resetting, resettingChunked, huge, healthy].map((d) => d?.close()));
  await Promise.all([silent, notHttp].map((p) => p?.close()));
  await project?.remove();
});

const verify = (...args: string[]) => runCli(args, { cwd: project.dir, timeoutMs: 15_000 });

describe('a peer that does not answer in time', () => {
  it('a server answering after 3 s fails "no ... within 500 ms", and the CLI exits soon after', async () => {
    const r = await verify('slow', '--format', 'json');
    const check = checkOf(reportOf(r), 'gateway.health');
    expect(check.status).toBe('fail');
    expect(check.message).toMatch(new RegExp(`^no response from 127\\.0\\.0\\.1:${slow.port} within 500 ms$`));
    expect(r.code).toBe(1);
    expect(r.wallMs).toBeLessThan(500 + MARGIN_MS);
  });

  it('a socket that accepts and never speaks fails the same way', async () => {
    const r = await verify('silent', '--format', 'json');
    const check = checkOf(reportOf(r), 'gateway.health');
    expect(check.message).toMatch(new RegExp(`^no response from 127\\.0\\.0\\.1:${silent.port} within 500 ms$`));
    expect(r.code).toBe(1);
    expect(r.wallMs).toBeLessThan(500 + MARGIN_MS);
  });
});

describe('a peer that answers wrongly', () => {
  it('a reset in the middle of a chunked body fails at once, naming the peer', async () => {
    const r = await verify('reset-chunked', '--format', 'json');
    const check = checkOf(reportOf(r), 'sfm.health');
    expect(check.status).toBe('fail');
    expect(check.message).toBe(`connection closed by 127.0.0.1:${resettingChunked.port} before the whole body arrived`);
    expect(check.message).not.toMatch(/within|timed out/);
    expect(resettingChunked.count('/healthz')).toBe(1);
  });

  it('a reset before the promised content-length arrived names the short body', async () => {
    const r = await verify('reset', '--format', 'json');
    const check = checkOf(reportOf(r), 'sfm.health');
    expect(check.status).toBe('fail');
    expect(check.message).toBe(`connection closed by 127.0.0.1:${resetting.port} before the whole body arrived`);
  });

  it('non-HTTP bytes are "not an HTTP server", also while detecting the generation', async () => {
    const r = await verify('not-http', '--format', 'json');
    const check = checkOf(reportOf(r), 'sfm.health');
    expect(check.status).toBe('fail');
    expect(check.message).toBe(`not an HTTP server on 127.0.0.1:${notHttp.port} (invalid response bytes)`);
  });

  it('a body over 1 MiB is refused, not read to the end', async () => {
    const r = await verify('huge', '--format', 'json');
    const check = checkOf(reportOf(r), 'sfm.health');
    expect(check.status).toBe('fail');
    expect(check.message).toBe('body larger than 1 MiB');
  });
});

describe('the whole run', () => {
  it('--deadline cuts the running checks and fails them, keeping the finished ones', async () => {
    const r = await verify('deadline', '--format', 'json', '--deadline', '1s');
    const report = reportOf(r);
    expect(r.code).toBe(1);
    expect(checkOf(report, 'healthy.ping').status).toBe('pass');
    for (const id of ['gateway.health', 'slow.a', 'slow.b']) {
      const check = checkOf(report, id);
      expect(check.status, id).toBe('fail');
      expect(check.message).toMatch(/^cut by the global deadline after \d+ ms$/);
    }
    expect(r.wallMs).toBeLessThan(1000 + MARGIN_MS);
  });

  it('SIGINT stops the run: exit 130 and a report of what was interrupted', async () => {
    const run = startCli(['deadline', '--format', 'json', '--verbose'], { cwd: project.dir, timeoutMs: 15_000 });
    await run.stderrMatches(/running 4 checks on deadline/);
    // Let the fast check finish and the slow ones reach the server.
    await new Promise((resolve) => setTimeout(resolve, 700));
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('soma-verify: interrupted, stopping running checks');
    const report = reportOf(r);
    expect(checkOf(report, 'healthy.ping').status).toBe('pass');
    for (const id of ['gateway.health', 'slow.a', 'slow.b']) {
      expect(checkOf(report, id)).toMatchObject({ status: 'fail', message: expect.stringMatching(/^interrupted by SIGINT after \d+ ms$/) });
    }
    expect(r.wallMs).toBeLessThan(700 + MARGIN_MS + 1000);
  });
});
