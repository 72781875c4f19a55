// `generation: auto` end to end, where one generation can pass for the other: a gen1 SFM whose
// /metrics carries only what gen2's does (the health check's detection must decide which series
// are required), and a gen2 gateway whose aggregated health route wants the token (401 without).
// Small servers that answer as the contract says; the compiled CLI.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkOf, reportOf, runCli, tempProject } from '../support/cli.js';

const TOKEN = 'gateway-token-5d2c9e71';
const servers: Server[] = [];
let project: { dir: string; remove(): Promise<void> };

async function serve(routes: (path: string, auth: string | undefined) => [number, string, string]): Promise<string> {
  const server = createServer((req, res) => {
    const [status, type, body] = routes(req.url ?? '/', req.headers.authorization);
    res.writeHead(status, { 'content-type': type }).end(body);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

beforeAll(async () => {
  const json = (status: number, body: unknown): [number, string, string] => [status, 'application/json', JSON.stringify(body)];
  // gen1 health, but /metrics without gen1's api_* series (only what gen2 also has).
  const sfm = await serve((path) =>
    path === '/metrics'
      ? [200, 'text/plain; version=0.0.4', '# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1.7e9\n']
      : path === '/health' || path === '/healthz'
        ? json(200, { kv_store: true, vector_store: true, graph_store: true })
        : json(404, { detail: 'Not Found' }),
  );
  const gateway = await serve((path, auth) => {
    if (path !== '/api/v2/core/health') return json(404, { detail: 'Not Found' });
    if (auth !== `Bearer ${TOKEN}`) return json(401, { detail: 'Unauthorized' });
    return json(200, { status: 'ok', components: { postgres: { status: 'ok' }, redis: { status: 'ok' }, kafka: { status: 'ok' } } });
  });
  project = await tempProject({
    'soma-verify.config.json': JSON.stringify({
      environments: {
        sfm: { services: { sfm: { url: sfm, generation: 'auto' } } },
        gateway: { services: { gateway: { url: gateway, generation: 'auto', token: TOKEN } } },
        'gateway-no-token': { services: { gateway: { url: gateway, generation: 'auto' } } },
      },
    }),
  });
});

afterAll(async () => {
  for (const s of servers) s.close();
  await project?.remove();
});

describe('generation: auto', () => {
  it('a gen1 SFM (its health says so) whose /metrics lacks the gen1 series fails, though the gen2 set would match', async () => {
    const r = await runCli(['sfm', '--format', 'json'], { cwd: project.dir });
    const report = reportOf(r);
    expect(checkOf(report, 'sfm.health')).toMatchObject({ status: 'pass', details: { generation: 'gen1' } });
    expect(checkOf(report, 'sfm.metrics')).toMatchObject({ status: 'fail', message: expect.stringMatching(/^no set of series matched: gen1: api_requests_total/) });
    expect(r.code).toBe(1);
  });

  it('a gen2 gateway whose aggregated route wants the token is told apart and judged with it', async () => {
    const r = await runCli(['gateway', '--format', 'json'], { cwd: project.dir });
    expect(checkOf(reportOf(r), 'gateway.health')).toMatchObject({ status: 'pass', message: 'ok: 3 components ok (detected gen2)' });
    expect(r.code).toBe(0);
    // Without the token it is still gen2 (gen1 has no /api/v2 routes), and the 401 is the failure.
    const anonymous = await runCli(['gateway-no-token', '--format', 'json'], { cwd: project.dir });
    expect(checkOf(reportOf(anonymous), 'gateway.health')).toMatchObject({ status: 'fail', message: expect.stringMatching(/^HTTP 401 from \/api\/v2\/core\/health.*\(detected gen2\)$/) });
  });
});
