// The soma-verify CLI as a user meets it: exit codes, configuration errors, plan selection,
// report formats, output files, colour, interpolation and secrets, plugins and dependencies.
// Runs the compiled CLI (npm run build first) against SomaStack doubles and the
// real local Postgres.
import { spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { refusedPort } from '../support/faults.js';
import { gatewayDouble, sfmDouble, type Double, type GatewayState, type SfmState } from '../support/somastack.js';
import { BIN, checkOf, reportOf, runCli, tempProject, type JsonReport } from '../support/cli.js';

const SFM_TOKEN = 'sfm-cli-token-71d0c3e9a4';
const PG_PASSWORD = 'pg-cli-pass-8e61f0';

let sfm1: Double<SfmState>, sfm2: Double<SfmState>, gw1: Double<GatewayState>;
let deadPort: number;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  [sfm1, sfm2, gw1] = await Promise.all([
    sfmDouble({ generation: 'gen1' }),
    sfmDouble({ generation: 'gen2', token: SFM_TOKEN }),
    gatewayDouble({ generation: 'gen1' }),
  ]);
  deadPort = await refusedPort();
});
afterAll(async () => {
  await Promise.all([sfm1, sfm2, gw1].map((d) => d?.close()));
  for (const clean of cleanups) await clean();
});
beforeEach(() => {
  for (const d of [sfm1, sfm2, gw1]) d.reset();
});

/** A temp folder holding these files, removed after the file's tests. */
async function folder(files: Record<string, string>): Promise<string> {
  const p = await tempProject(files);
  cleanups.push(p.remove);
  return p.dir;
}
const yamlOf = (value: unknown) => JSON.stringify(value, null, 2); // JSON is valid YAML
const cli = (dir: string, args: string[], env: Record<string, string> = {}) => runCli(args, { cwd: dir, env, timeoutMs: 20_000 });

/** A working stack: SFM gen1 and the gateway, both healthy. */
const stackConfig = () => ({
  environments: {
    staging: { services: { sfm: { url: sfm1.url }, gateway: { url: gw1.url } } },
  },
});

describe('exit code 2: configuration and usage errors', () => {
  it('a broken YAML file names the file and line', async () => {
    const dir = await folder({ 'soma-verify.config.yaml': 'environments:\n  staging:\n    services: [unclosed\n' });
    const r = await cli(dir, ['staging']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/soma-verify\.config\.yaml: line \d+: /);
    expect(r.stdout).toBe('');
  });

  it('a schema error names the path of the bad value', async () => {
    const dir = await folder({
      'soma-verify.config.yaml': 'environments:\n  staging:\n    services:\n      sfm:\n        url: ftp://sfm.example\n',
    });
    const r = await cli(dir, ['staging']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('soma-verify: environments.staging.services.sfm.url: not an http(s) URL');
  });

  it('an unknown environment lists the known ones', async () => {
    const dir = await folder({ 'soma-verify.config.yaml': yamlOf(stackConfig()) });
    const r = await cli(dir, ['prod']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown environment "prod" in .*soma-verify\.config\.yaml \(known: staging, local\)/);
  });

  it('an environment other than local without any config file says where it looked', async () => {
    const dir = await folder({});
    const r = await cli(dir, ['staging']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no config file for environment "staging"');
  });

  it('an unknown check kind names the check and the known kinds', async () => {
    const dir = await folder({
      'soma-verify.config.yaml': yamlOf({ environments: { staging: { checks: [{ id: 'x', kind: 'telepathy' }] } } }),
    });
    const r = await cli(dir, ['staging']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/environments\.staging\.checks\[0\]\.kind: unknown check kind "telepathy" \(known: http, health, .*\)/);
  });

  it('a dependsOn cycle is shown as a cycle', async () => {
    const http = (id: string, dep: string) => ({ id, kind: 'tcp', host: '127.0.0.1', port: deadPort, dependsOn: [dep] });
    const dir = await folder({
      'soma-verify.config.yaml': yamlOf({ environments: { staging: { checks: [http('a', 'b'), http('b', 'c'), http('c', 'a')] } } }),
    });
    const r = await cli(dir, ['staging']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('dependsOn forms a cycle: a -> b -> c -> a');
  });

  it('a bad --timeout, a bad --format and an unknown flag are usage errors', async () => {
    const dir = await folder({ 'soma-verify.config.yaml': yamlOf(stackConfig()) });
    const timeout = await cli(dir, ['staging', '--timeout', 'soon']);
    expect(timeout.code).toBe(2);
    expect(timeout.stderr).toContain('--timeout: expected a duration like 500ms, 5s or 1m, got "soon"');
    const format = await cli(dir, ['staging', '--format', 'xml']);
    expect(format.code).toBe(2);
    expect(format.stderr).toMatch(/Invalid values:[\s\S]*format/);
    const flag = await cli(dir, ['staging', '--frobnicate']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/Unknown argument: frobnicate/);
  });

  it('an unset ${VAR} names the variable and the config path', async () => {
    const dir = await folder({
      'soma-verify.config.yaml': 'environments:\n  staging:\n    services:\n      sfm:\n        url: ${SFM_URL}\n',
    });
    const r = await cli(dir, ['staging']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('environments.staging.services.sfm.url: ${SFM_URL} is not set');
  });
});

describe('--list and selection', () => {
  it('--list prints the plan and sends no request to any service', async () => {
    const dir = await folder({ 'soma-verify.config.yaml': yamlOf(stackConfig()) });
    const r = await cli(dir, ['staging', '--list']);
    expect(r.code).toBe(0);
    for (const id of ['sfm.health', 'sfm.metrics', 'gateway.health']) expect(r.stdout).toContain(id);
    expect(r.stdout).toContain('3 checks');
    const json = await cli(dir, ['staging', '--list', '--format', 'json']);
    const plan = json.json as { env: string; checks: Array<{ id: string; dependsOn: string[]; target: string }> };
    expect(plan.env).toBe('staging');
    expect(plan.checks.map((c) => c.id)).toEqual(['sfm.health', 'sfm.metrics', 'gateway.health']);
    expect(plan.checks[1]!.dependsOn).toEqual(['sfm.health']);
    expect(sfm1.count() + gw1.count()).toBe(0);
  });

  it('--only and --skip take globs, repeatable or comma-separated', async () => {
    const dir = await folder({ 'soma-verify.config.yaml': yamlOf(stackConfig()) });
    const ids = async (...args: string[]) => reportOf(await cli(dir, ['staging', '--format', 'json', ...args])).checks.map((c) => c.id);
    expect(await ids('--only', 'sfm.*')).toEqual(['sfm.health', 'sfm.metrics']);
    expect(await ids('--skip', '*.metrics')).toEqual(['sfm.health', 'gateway.health']);
    expect(await ids('--only', 'gateway.*,sfm.metrics')).toEqual(['sfm.metrics', 'gateway.health']);
    expect(await ids('--only', '*.health', '--skip', 'gateway.*')).toEqual(['sfm.health']);
    const none = await cli(dir, ['staging', '--only', 'nothing.*']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('environment "staging" has no checks to run after --only/--skip');
  });
});

describe('report formats and output', () => {
  it('--format json follows the documented schema', async () => {
    const dir = await folder({ 'soma-verify.config.yaml': yamlOf(stackConfig()) });
    const r = await cli(dir, ['staging', '--format', 'json']);
    expect(r.code).toBe(0);
    const report = reportOf(r);
    expect(Object.keys(report).sort()).toEqual(['checks', 'durationMs', 'env', 'schemaVersion', 'startedAt', 'status', 'summary']);
    expect(report).toMatchObject({ schemaVersion: 1, env: 'staging', status: 'pass', summary: { pass: 3, warn: 0, fail: 0, skip: 0 } });
    expect(Number.isNaN(Date.parse(report.startedAt))).toBe(false);
    expect(report.durationMs).toBeGreaterThanOrEqual(0);
    for (const check of report.checks) {
      // latencyMs (documented as optional) comes with the kinds that measure their own exchange.
      const { latencyMs, ...rest } = check as typeof check & { latencyMs?: number };
      expect(Object.keys(rest).sort()).toEqual(['details', 'durationMs', 'id', 'kind', 'message', 'service', 'status', 'target']);
      if (latencyMs !== undefined) expect(latencyMs).toBeLessThanOrEqual(check.durationMs);
      expect(typeof check.message).toBe('string');
      expect(check.message).not.toContain('\n');
      expect(typeof check.durationMs).toBe('number');
      expect(typeof check.details).toBe('object');
    }
    expect(checkOf(report, 'sfm.health')).toMatchObject({ kind: 'health', service: 'sfm', target: sfm1.url });
    expect(checkOf(report, 'sfm.metrics')).toMatchObject({ kind: 'metrics', target: `${sfm1.url}/metrics` });
  });

  it('--format junit is well-formed XML with one testcase per check and the failures counted', async () => {
    sfm1.set({ stores: { kv_store: true, vector_store: false, graph_store: true } });
    const dir = await folder({ 'soma-verify.config.yaml': yamlOf(stackConfig()) });
    const r = await cli(dir, ['staging', '--format', 'junit']);
    expect(r.code).toBe(1);
    expectWellFormedXml(r.stdout);
    expect(r.stdout.match(/<testcase /g)).toHaveLength(3);
    expect(r.stdout).toMatch(/<testsuites name="soma-verify" tests="3" failures="1" errors="0" skipped="1"/);
    expect(r.stdout).toContain('<failure message="vector_store is false: Qdrant unreachable from SFM (detected gen1)" type="fail">');
    expect(r.stdout).toContain('<skipped message="blocked by sfm.health"/>');
  });

  it('--output writes the report atomically to a file and nothing to stdout', async () => {
    const dir = await folder({ 'soma-verify.config.yaml': yamlOf(stackConfig()), 'out/old.txt': 'keep' });
    await writeFile(join(dir, 'out/report.json'), 'previous report');
    const r = await cli(dir, ['staging', '--format', 'json', '--output', 'out/report.json']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    const written = JSON.parse(await readFile(join(dir, 'out/report.json'), 'utf8')) as JsonReport;
    expect(written.summary.pass).toBe(3);
    // No temporary file is left beside it.
    expect((await readdir(join(dir, 'out'))).sort()).toEqual(['old.txt', 'report.json']);
  });

  it('--output to an unwritable path exits 2 and says why', async () => {
    const dir = await folder({ 'soma-verify.config.yaml': yamlOf(stackConfig()) });
    const r = await cli(dir, ['staging', '--output', 'no/such/folder/report.txt']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--output no/such/folder/report.txt: cannot write (ENOENT)');
  });

  it('piped output has no ANSI escapes, a terminal gets colour, and NO_COLOR removes it', async () => {
    sfm1.set({ stores: { kv_store: true, vector_store: false, graph_store: true } });
    const dir = await folder({ 'soma-verify.config.yaml': yamlOf(stackConfig()) });
    const piped = await cli(dir, ['staging']);
    expect(piped.stdout).toContain('FAIL');
    expect(piped.stdout + piped.stderr).not.toMatch(/\x1b\[/);
    // script(1) gives the CLI a pseudo-terminal, as a person's shell would.
    const onTty = await inTerminal(dir, {});
    expect(onTty).toMatch(/\x1b\[31mFAIL/);
    const noColor = await inTerminal(dir, { NO_COLOR: '1' });
    expect(noColor).toContain('FAIL');
    expect(noColor).not.toMatch(/\x1b\[/);
  });
});

describe('interpolation and secrets', () => {
  const tokenConfig = () =>
    'environments:\n  staging:\n    services:\n      sfm:\n        url: http://127.0.0.1:${SFM_PORT}\n        token: ${SFM_TOKEN}\n        generation: gen2\n';

  it.each([
    ['SFM_TOKEN', async () => SFM_TOKEN],
    ['SFM_TOKEN_FILE', async (dir: string) => writeSecret(dir, 'token.txt', `  ${SFM_TOKEN}\n`)],
    ['SFM_TOKEN_B64', async () => Buffer.from(SFM_TOKEN).toString('base64')],
    ['SFM_TOKEN_B64_FILE', async (dir: string) => writeSecret(dir, 'token.b64', `${Buffer.from(SFM_TOKEN).toString('base64')}\n`)],
  ])('a token from %s reaches the service and is never printed', async (variable, valueFor) => {
    const dir = await folder({ 'soma-verify.config.yaml': tokenConfig() });
    const env = { SFM_PORT: String(sfm2.port), [variable]: await valueFor(dir) };
    const r = await cli(dir, ['staging', '--format', 'json', '--verbose'], env);
    expect(checkOf(reportOf(r), 'sfm.health')).toMatchObject({ status: 'pass' });
    expect(r.code, r.stderr).toBe(0);
    // The double got the right bearer token on /health (and /metrics)...
    expect(sfm2.requests.filter((q) => q.path === '/health').map((q) => q.headers.authorization)).toEqual([`Bearer ${SFM_TOKEN}`]);
    // ...and no output carries it, in any form.
    const printed = r.stdout + r.stderr;
    expect(printed).not.toContain(SFM_TOKEN);
    expect(printed).not.toContain(Buffer.from(SFM_TOKEN).toString('base64'));
  });

  it('a secret variable interpolated into a field of any name (here a URL path) is never printed', async () => {
    const HOOK_TOKEN = 'hook-path-token-5c2e81';
    const dir = await folder({
      'soma-verify.config.yaml':
        'environments:\n  staging:\n    checks:\n      - id: hook\n        kind: http\n        url: http://127.0.0.1:${DEAD_PORT}/hooks/${HOOK_TOKEN}/health\n',
    });
    const env = { DEAD_PORT: String(deadPort), HOOK_TOKEN };
    const list = await cli(dir, ['staging', '--list', '--format', 'json'], env);
    expect(list.code, list.stderr).toBe(0);
    const run = await cli(dir, ['staging', '--format', 'json', '--verbose'], env);
    expect(checkOf(reportOf(run), 'hook')).toMatchObject({ status: 'fail', message: `connection refused on 127.0.0.1:${deadPort}` });
    for (const printed of [list.stdout + list.stderr, run.stdout + run.stderr]) {
      expect(printed).toContain('/hooks/***/health');
      expect(printed).not.toContain(HOOK_TOKEN);
    }
  });

  it('DSN credentials are masked in the target and messages; the check really connects', async () => {
    const dsn = `postgresql://postgres:${PG_PASSWORD}@127.0.0.1:5432/postgres`;
    const dir = await folder({
      'soma-verify.config.yaml': yamlOf({
        environments: {
          staging: {
            services: { postgres: { dsn } },
            // A failing DSN too: its error message must not carry the password either.
            checks: [{ id: 'pg.wrongdb', kind: 'postgres', dsn: `postgresql://postgres:${PG_PASSWORD}@127.0.0.1:5432/no_such_db_e2e` }],
          },
        },
      }),
    });
    const r = await cli(dir, ['staging', '--format', 'json']);
    const report = reportOf(r);
    expect(checkOf(report, 'postgres')).toMatchObject({
      status: 'pass',
      target: 'postgresql://postgres:***@127.0.0.1:5432/postgres',
    });
    const wrong = checkOf(report, 'pg.wrongdb');
    expect(wrong.status).toBe('fail');
    expect(wrong.message).toMatch(/no_such_db_e2e/);
    expect(r.stdout + r.stderr).not.toContain(PG_PASSWORD);
    const table = await cli(dir, ['staging']);
    expect(table.stdout).toContain('postgresql://postgres:***@127.0.0.1:5432/postgres');
    expect(table.stdout + table.stderr).not.toContain(PG_PASSWORD);
  });
});

describe('plugins and dependencies', () => {
  // A plain ES module with a hand-written Standard Schema: no zod, no build step.
  const PLUGIN = `
export default {
  kind: 'ping-sfm',
  options: {
    '~standard': {
      version: 1,
      vendor: 'hand-written',
      validate(value) {
        if (!value || typeof value.url !== 'string') return { issues: [{ message: 'expected a string', path: ['url'] }] };
        return { value: { url: value.url, expect: value.expect ?? 'pong' } };
      },
    },
  },
  target: (o) => o.url + '/ping',
  async run(o, ctx) {
    const res = await fetch(o.url + '/ping', { signal: ctx.signal });
    const body = await res.json();
    return body.ping === o.expect
      ? { status: 'pass', message: 'ping answered ' + body.ping, details: { dependencies: [...ctx.dependencies.keys()] } }
      : { status: 'fail', message: 'ping answered ' + JSON.stringify(body.ping) + ', expected ' + o.expect };
  },
};
`;

  it('a user plugin from the config folder runs as a custom check', async () => {
    const dir = await folder({
      'my-check.mjs': PLUGIN,
      'soma-verify.config.yaml': yamlOf({
        plugins: ['./my-check.mjs'],
        environments: {
          staging: {
            services: { sfm: { url: sfm1.url, metrics: false } },
            checks: [
              { id: 'sfm.ping', kind: 'ping-sfm', service: 'sfm', url: sfm1.url, dependsOn: ['sfm.health'] },
              { id: 'sfm.ping-wrong', kind: 'ping-sfm', url: sfm1.url, expect: 'pang' },
            ],
          },
        },
      }),
    });
    const r = await cli(dir, ['staging', '--format', 'json']);
    const report = reportOf(r);
    expect(checkOf(report, 'sfm.ping')).toMatchObject({
      kind: 'ping-sfm',
      service: 'sfm',
      target: `${sfm1.url}/ping`,
      status: 'pass',
      message: 'ping answered pong',
      details: { dependencies: ['sfm.health'] },
    });
    expect(checkOf(report, 'sfm.ping-wrong')).toMatchObject({ status: 'fail', message: 'ping answered "pong", expected pang' });
    expect(sfm1.count('/ping')).toBe(2);
  });

  it('a plugin that throws outside its promise is reported redacted, and the run still finishes', async () => {
    const dir = await folder({
      'stray.mjs': [
        "export default {",
        "  kind: 'stray',",
        "  options: { '~standard': { version: 1, vendor: 'test', validate: (value) => ({ value }) } },",
        "  target: () => 'nowhere',",
        "  async run(o) {",
        "    setTimeout(() => { throw new Error(`lost connection to postgresql://app:${o.password}@db/x`); }, 0);",
        "    Promise.reject(new Error(`rejected with ${o.password}`));",
        "    await new Promise((r) => setTimeout(r, 50));",
        "    return { status: 'pass', message: 'done' };",
        "  },",
        "};",
      ].join('\n'),
      'soma-verify.config.yaml': yamlOf({
        plugins: ['./stray.mjs'],
        environments: { staging: { checks: [{ id: 'stray', kind: 'stray', password: 'Sup3r-Secret-Pw' }] } },
      }),
    });
    const r = await cli(dir, ['staging', '--format', 'json']);
    expect(r.code).toBe(0);
    expect(checkOf(reportOf(r), 'stray')).toMatchObject({ status: 'pass', message: 'done' });
    expect(r.stderr).toContain('soma-verify: error outside a check: Error: lost connection to postgresql://app:***@db/x');
    expect(r.stderr).toContain('rejected with ***');
    expect(r.stdout + r.stderr).not.toContain('Sup3r-Secret-Pw');
  });

  it("a plugin's own schema errors carry the config path", async () => {
    const dir = await folder({
      'my-check.mjs': PLUGIN,
      'soma-verify.config.yaml': yamlOf({
        plugins: ['./my-check.mjs'],
        environments: { staging: { checks: [{ id: 'p', kind: 'ping-sfm', url: 42 }] } },
      }),
    });
    const r = await cli(dir, ['staging']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('environments.staging.checks[0].url: expected a string');
  });

  it('a check whose dependency failed is skipped and sends nothing', async () => {
    const dir = await folder({
      'soma-verify.config.yaml': yamlOf({
        environments: {
          staging: {
            checks: [
              { id: 'gate', kind: 'tcp', host: '127.0.0.1', port: deadPort },
              { id: 'behind', kind: 'http', url: `${sfm1.url}/ping`, dependsOn: ['gate'] },
              { id: 'further', kind: 'http', url: `${sfm1.url}/ping`, dependsOn: ['behind'] },
            ],
          },
        },
      }),
    });
    const r = await cli(dir, ['staging', '--format', 'json']);
    const report = reportOf(r);
    expect(checkOf(report, 'gate')).toMatchObject({ status: 'fail', message: `connection refused on 127.0.0.1:${deadPort}` });
    expect(checkOf(report, 'behind')).toMatchObject({ status: 'skip', message: 'blocked by gate' });
    expect(checkOf(report, 'further')).toMatchObject({ status: 'skip', message: 'blocked by behind' });
    expect(sfm1.count('/ping')).toBe(0);
    expect(r.code).toBe(1);
  });
});

async function writeSecret(dir: string, name: string, content: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content, { mode: 0o600 });
  return path;
}

/** Run the CLI under script(1), which gives it a pseudo-terminal; returns what the terminal showed. */
function inTerminal(dir: string, env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const command = `${process.execPath} ${BIN} staging`;
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', TERM: 'xterm', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(killer);
      resolve(out);
    });
  });
}

/**
 * Enough of an XML well-formedness check for a report: one prolog, every tag closed in order,
 * attributes quoted, every `&` an entity, no raw `<` in text. (No XML parser is a dependency, and
 * adding one for a test is not worth it.)
 */
function expectWellFormedXml(xml: string): void {
  expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n')).toBe(true);
  const body = xml.replace(/^<\?xml[^>]*\?>/, '');
  const stack: string[] = [];
  const TOKEN = /<(\/?)([A-Za-z_][\w.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>|([^<]+)|(<)/g;
  for (const m of body.matchAll(TOKEN)) {
    const [, closing, name, , selfClosing, text, stray] = m;
    if (stray) throw new Error(`stray "<" at ${m.index}: ${body.slice(m.index, m.index + 40)}`);
    if (text !== undefined) {
      expect(text.replace(/&(amp|lt|gt|quot|apos|#\d+);/g, '')).not.toMatch(/&/);
      continue;
    }
    if (closing) expect(stack.pop(), `closing </${name}>`).toBe(name);
    else if (!selfClosing) stack.push(name!);
  }
  expect(stack).toEqual([]);
}
