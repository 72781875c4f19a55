// A plan of hundreds of checks, past the size from which the CLI runs without V8's optimizing
// compiler (src/cli/verify.ts): every check runs once, against a real server, and its own
// answer decides its result. Runs the compiled CLI (npm run build first).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkOf, reportOf, runCli, tempProject } from '../support/cli.js';

const CHECKS = 600;
let server: Server;
const hits = new Map<string, number>();
let project: { dir: string; remove(): Promise<void> };

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    hits.set(req.url!, (hits.get(req.url!) ?? 0) + 1);
    const down = req.url === '/health/7';
    res.writeHead(down ? 503 : 200, { 'content-type': 'application/json' });
    res.end(down ? '{"status":"down"}' : '{"status":"ok"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const checks = Array.from({ length: CHECKS }, (_, i) => ({ id: `endpoint.${i}`, kind: 'health', url: `http://127.0.0.1:${port}/health/${i}` }));
  project = await tempProject({ 'soma-verify.config.json': JSON.stringify({ environments: { many: { checks } } }) });
});

afterAll(async () => {
  server?.close();
  await project?.remove();
});

describe(`a plan of ${CHECKS} checks`, () => {
  it('runs each check once and reports each on its own answer', async () => {
    const r = await runCli(['many', '--format', 'json'], { cwd: project.dir, timeoutMs: 60_000 });
    const report = reportOf(r);
    expect(r.code).toBe(1);
    expect(report.checks).toHaveLength(CHECKS);
    expect(report.summary).toMatchObject({ pass: CHECKS - 1, fail: 1 });
    expect(checkOf(report, 'endpoint.7')).toMatchObject({ status: 'fail' });
    expect(checkOf(report, 'endpoint.7').message).toMatch(/503/);
    expect(hits.size).toBe(CHECKS);
    expect([...hits.values()].every((n) => n === 1)).toBe(true);
  });
});
