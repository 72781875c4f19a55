// soma-verify under GitHub Actions, as a workflow step runs it: --format github chosen by
// GITHUB_ACTIONS=true, the summary appended to $GITHUB_STEP_SUMMARY, and no secret in either,
// even when the service echoes it back in a body the message quotes.
import { createServer } from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveOnLoopback, type TcpPeer } from '../support/faults.js';
import { runCli, tempProject } from '../support/cli.js';

const TOKEN = 'gh-secret-token-5f0c2a9e71';
let echo: TcpPeer;
let dir: string;
let remove: () => Promise<void>;

beforeAll(async () => {
  // An HTTP double that quotes the bearer token back, in a body with a workflow command in it.
  echo = await serveOnLoopback(
    createServer((req, res) => {
      req.resume();
      if (req.url === '/detail') {
        // A health route that fails, with a detail the health check quotes as it is.
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ detail: 'down\r::set-output name=a::b\r::stop-commands::t\u2028::add-mask::y' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: `auth ${req.headers.authorization}\n::add-mask::x\r::set-output name=a::b\r\n::stop-commands::t` }));
    }),
  );
  const config = {
    environments: {
      staging: {
        checks: [
          { id: 'echo', kind: 'http', url: echo.url(), token: '${API_TOKEN}', conditions: [{ path: 'status', equals: 'ok' }] },
          { id: 'fine', kind: 'http', url: echo.url() },
        ],
      },
    },
  };
  ({ dir, remove } = await tempProject({ 'soma-verify.config.yaml': JSON.stringify(config) }));
});
afterAll(async () => {
  await echo?.close();
  await remove?.();
});

describe('GitHub Actions', () => {
  it('GITHUB_ACTIONS=true chooses annotations and appends a summary; no secret, no injected command', async () => {
    const summary = join(dir, 'summary.md');
    await writeFile(summary, '# earlier step output\n');
    const r = await runCli(['staging'], { cwd: dir, env: { GITHUB_ACTIONS: 'true', GITHUB_STEP_SUMMARY: summary, API_TOKEN: TOKEN } });
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines[0]).toMatch(/^::error title=echo::/);
    expect(lines.filter((l) => l.startsWith('::')).map((l) => /^::(\w+)/.exec(l)![1])).toEqual(['error', 'group', 'endgroup']);
    const md = await readFile(summary, 'utf8');
    expect(md.startsWith('# earlier step output\n### soma-verify: FAIL staging')).toBe(true);
    expect(md.indexOf('| ❌ fail | echo')).toBeLessThan(md.indexOf('| ✅ pass | fine'));
    for (const text of [r.stdout, r.stderr, md]) {
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain(Buffer.from(TOKEN).toString('base64'));
    }
    expect(r.stdout + md).toContain('***'); // the echoed token is there, masked
  });

  it('an explicit --format wins over GITHUB_ACTIONS, and the summary is still written', async () => {
    const summary = join(dir, 'summary-json.md');
    const r = await runCli(['staging', '--format', 'json'], { cwd: dir, env: { GITHUB_ACTIONS: 'true', GITHUB_STEP_SUMMARY: summary, API_TOKEN: TOKEN } });
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).status).toBe('fail');
    expect(await readFile(summary, 'utf8')).toMatch(/^### soma-verify: FAIL/);
  });

  it.each(['table', 'json', 'junit', 'github'])('in any format (%s), no line of output is a command the service wrote', async (format) => {
    const config = { environments: { staging: { checks: [{ id: 'detail', kind: 'health', url: `${echo.url()}/detail` }] } } };
    const p = await tempProject({ 'soma-verify.config.yaml': JSON.stringify(config) });
    const r = await runCli(['staging', '--format', format, '--wait', '300ms'], { cwd: p.dir, env: { GITHUB_ACTIONS: 'true' } }).finally(p.remove);
    expect(r.code).toBe(3);
    // Split as the runner does: LF, CRLF and a lone CR all end a line.
    for (const line of `${r.stdout}\n${r.stderr}`.split(/\r\n|\r|\n/)) {
      expect(line).not.toMatch(/^\s*::(add-mask|set-output|stop-commands)/);
    }
    expect(r.stdout + r.stderr).toContain('set-output'); // the text is there, inert
  });

  it('without GITHUB_ACTIONS the table is the default and no summary is looked for', async () => {
    const r = await runCli(['staging'], { cwd: dir, env: { API_TOKEN: TOKEN } });
    expect(r.stdout).toMatch(/FAIL staging: 2 checks/);
    expect(r.stdout).not.toMatch(/^::/m);
  });
});
