// One canary per secret source (literal, ${VAR}, _FILE, _B64, _B64_FILE, DSN password with and
// without @, URL userinfo, query parameters, headers, SASL, Redis, Qdrant, OPA, the .env of
// `local`), a server that echoes every request back in every form a real one might (raw,
// JSON-escaped, base64, URL-encoded, line by line, with Basic credentials decoded), and a grep of
// everything soma-verify prints: every format, --list, --verbose, --output and stderr.
// Runs the compiled CLI (npm run build first) against the real local Postgres and Redis.
import { createServer, type IncomingMessage } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusedPort, serveOnLoopback, type TcpPeer } from '../support/faults.js';
import { runCli, tempProject } from '../support/cli.js';
import { echoForms } from '../support/run-check.js';

const PEM = '-----BEGIN CNRY KEY-----\ncnry-file-line1-AAAAAAAA\ncnry-file-line2-BBBBBBBB\n-----END CNRY KEY-----';
const BASIC_USER = 'cnry-basic-user';
/** Every canary, by source; each must appear in no output, in no form. */
const CANARY = {
  literal: 'cnry-literal-"A/1+b',
  variable: 'cnry-var-<B2>&',
  file: PEM,
  b64: 'cnry-b64-x7 q',
  b64File: 'cnry-b64file-9z',
  pathVariable: 'cnry-pathvar-3c',
  dsnAt: 'cnry-dsn@at7tail',
  dsnPlain: 'cnry-dsn-plain-8',
  userinfo: 'cnry-userinfo-5',
  queryApiKey: 'cnry-query-6a',
  queryKey: 'cnry-key-6b',
  querySignature: 'cnry-signature-6c',
  header: 'cnry-header-4',
  basic: 'cnry-basic-pw-2',
  sasl: 'cnry-sasl-3',
  redis: 'cnry-redis-9',
  qdrant: 'cnry-qdrant-2',
  opa: 'cnry-opa-1',
  dotenvToken: 'cnry-dotenv-token-1',
  dotenvPostgres: 'cnry-dotenv@pgtail2',
  dotenvQdrant: 'cnry-dotenv-qdrant-3',
};
const FORMS = ['raw', 'json', 'b64', 'url', 'lines'] as const;
const BORING = new Set(['host', 'connection', 'content-length', 'content-type', 'accept', 'accept-encoding', 'user-agent', 'accept-language', 'transfer-encoding']);

/** What a careless server sends back: every header value, Basic decoded, the query, the path, the body. */
function echoedPieces(req: IncomingMessage, body: string): string[] {
  const url = new URL(req.url ?? '/', 'http://x');
  const pieces = [decodeURIComponent(url.pathname)];
  for (const [name, value] of Object.entries(req.headers)) {
    if (BORING.has(name) || typeof value !== 'string') continue;
    pieces.push(value);
    const basic = /^Basic (.+)$/i.exec(value);
    if (basic) pieces.push(Buffer.from(basic[1]!, 'base64').toString('utf8'));
  }
  for (const [, value] of url.searchParams) pieces.push(value);
  if (body) pieces.push(body);
  return pieces;
}

function echoIn(form: string, pieces: string[]): string {
  switch (form) {
    case 'json':
      // Go's encoding/json escapes <, > and & too.
      return JSON.stringify({ echo: pieces }).replace(/[<>&]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
    case 'b64':
      return pieces.map((p) => Buffer.from(p).toString('base64')).join(' ');
    case 'url':
      return pieces.map(encodeURIComponent).join(' ');
    case 'lines':
      return pieces.join('\n');
    default:
      return `echo: ${pieces.join(' | ')}`;
  }
}

let echo: TcpPeer;
/** Everything the echo server was sent, to prove the canaries really went out. */
let seen = '';
let dead: number;
const cleanups: Array<() => Promise<void>> = [];
beforeAll(async () => {
  echo = await serveOnLoopback(
    createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => (body += d));
      req.on('end', () => {
        const form = (req.url ?? '/').split('/')[1] ?? 'raw';
        seen += echoedPieces(req, body).join('\n');
        res.writeHead(401, { 'content-type': form === 'json' ? 'application/json' : 'text/plain' });
        res.end(echoIn(form, echoedPieces(req, body)));
      });
    }),
  );
  dead = await refusedPort();
});
afterAll(async () => {
  await echo?.close();
  for (const clean of cleanups) await clean();
});

/** Every place a canary could show: the forms a server echoes, and each line of a multi-line one. */
function formsToFind(): Array<[string, string]> {
  const found: Array<[string, string]> = [];
  for (const [source, canary] of Object.entries(CANARY)) {
    for (const form of echoForms(canary, source === 'basic' ? BASIC_USER : undefined)) found.push([source, form]);
    for (const line of canary.split('\n')) if (line.startsWith('cnry-')) found.push([source, line]);
    // What a mask stopping at the first @ would leave.
    for (const part of canary.split('@').slice(1)) found.push([source, `${part}@`]);
  }
  return found;
}

/** The leaks of one output, as "<what>: <source> as <form>". */
function leaksIn(what: string, printed: string): string[] {
  expect(printed.length, `${what} printed nothing`).toBeGreaterThan(0);
  return formsToFind()
    .filter(([, form]) => printed.includes(form))
    .map(([source, form]) => `${what}: ${source} as ${JSON.stringify(form)}`);
}

/** The config: each http-borne canary sent to the echo server once per echo form. */
function config(): unknown {
  const base = echo.url();
  const http = (form: string) => [
    { id: `literal.${form}`, kind: 'http', url: `${base}/${form}/a`, token: CANARY.literal },
    { id: `variable.${form}`, kind: 'http', url: `${base}/${form}/b`, headers: { 'X-Auth': '${CANARY_TOKEN}' } },
    { id: `file.${form}`, kind: 'http', method: 'POST', url: `${base}/${form}/c`, body: '${PEM_SECRET}' },
    { id: `b64.${form}`, kind: 'http', url: `${base}/${form}/d`, headers: { Cookie: 'sid=${COOKIE_SECRET}' } },
    { id: `b64file.${form}`, kind: 'http', url: `${base}/${form}/e?sig=\${SIG_SECRET}` },
    { id: `pathvar.${form}`, kind: 'http', url: `${base}/${form}/\${PATH_TOKEN}/f` },
    { id: `userinfo.${form}`, kind: 'http', url: base.replace('http://', `http://cnry-user:${CANARY.userinfo}@`) + `/${form}/g` },
    { id: `query.${form}`, kind: 'http', url: `${base}/${form}/h?api_key=${CANARY.queryApiKey}&key=${CANARY.queryKey}&signature=${CANARY.querySignature}` },
    { id: `header.${form}`, kind: 'http', url: `${base}/${form}/i`, headers: { 'X-Tenant-Id': CANARY.header } },
    { id: `basic.${form}`, kind: 'http', url: `${base}/${form}/j`, headers: { Authorization: `Basic ${Buffer.from(`${BASIC_USER}:${CANARY.basic}`).toString('base64')}` } },
    { id: `qdrant.${form}`, kind: 'qdrant', url: `${base}/${form}`, apiKey: CANARY.qdrant },
    { id: `opa.${form}`, kind: 'opa', url: `${base}/${form}`, token: CANARY.opa },
  ];
  return {
    environments: {
      staging: {
        checks: [
          ...FORMS.flatMap(http),
          { id: 'pg.at', kind: 'postgres', dsn: `postgresql://postgres:${CANARY.dsnAt}@127.0.0.1:5432/postgres` },
          { id: 'pg.plain', kind: 'postgres', dsn: `postgresql://postgres:${CANARY.dsnPlain}@127.0.0.1:${dead}/postgres` },
          { id: 'redis', kind: 'redis', url: `redis://:${CANARY.redis}@127.0.0.1:6379/0` },
          { id: 'kafka', kind: 'kafka', brokers: [`127.0.0.1:${echo.port}`], sasl: { mechanism: 'plain', username: 'soma', password: CANARY.sasl } },
        ],
      },
    },
  };
}

describe('canaries in every secret source, echoed in every form', () => {
  it('appear in no format, no --list, no --verbose line, no --output file and no stderr', async () => {
    const p = await tempProject({
      'soma-verify.config.yaml': JSON.stringify(config(), null, 2),
      'pem.txt': `${PEM}\n`,
      'sig.b64': `${Buffer.from(CANARY.b64File).toString('base64')}\n`,
    });
    cleanups.push(p.remove);
    const env = {
      CANARY_TOKEN: CANARY.variable,
      PEM_SECRET_FILE: join(p.dir, 'pem.txt'),
      COOKIE_SECRET_B64: Buffer.from(CANARY.b64).toString('base64'),
      SIG_SECRET_B64_FILE: join(p.dir, 'sig.b64'),
      PATH_TOKEN: CANARY.pathVariable,
    };
    const cli = (args: string[]) => runCli(['staging', ...args], { cwd: p.dir, env, timeoutMs: 60_000 });
    const runs = {
      table: await cli(['--verbose', '--timeout', '3s']),
      json: await cli(['--format', 'json', '--verbose', '--timeout', '3s']),
      junit: await cli(['--format', 'junit', '--timeout', '3s']),
      list: await cli(['--list']),
      listJson: await cli(['--list', '--format', 'json']),
    };
    const output = await cli(['--format', 'json', '--output', 'report.json', '--timeout', '3s']);
    // The echo server really saw the canaries: without them the test would prove nothing.
    const report = JSON.parse(await readFile(join(p.dir, 'report.json'), 'utf8')) as { checks: Array<{ id: string; status: string }> };
    expect(report.checks.filter((c) => c.id.startsWith('literal.')).map((c) => c.status)).toEqual(FORMS.map(() => 'fail'));
    expect(runs.json.code).toBe(1);
    for (const source of ['literal', 'variable', 'b64', 'b64File', 'pathVariable', 'queryApiKey', 'queryKey', 'querySignature', 'header', 'basic', 'qdrant', 'opa'] as const)
      expect(seen, `the echo server never got the ${source} canary`).toContain(CANARY[source]);
    expect(seen).toContain(PEM);
    const leaks = Object.entries(runs).flatMap(([name, r]) => [...leaksIn(`${name} stdout`, r.stdout), ...leaksIn(`${name} stderr`, r.stderr + ' ')]);
    leaks.push(...leaksIn('--output file', await readFile(join(p.dir, 'report.json'), 'utf8')), ...leaksIn('--output stderr', output.stderr + ' '));
    expect(leaks).toEqual([]);
  });

  it('the .env of `local` leaks no canary either', async () => {
    const p = await tempProject({
      '.env': [
        `API_PORT=${echo.port}`,
        `SOMABRAIN_HOST_PORT=${dead}`,
        `GATEWAY_PORT=${dead}`,
        `SOMA_API_TOKEN=${CANARY.dotenvToken}`,
        `SOMABRAIN_POSTGRES_DSN='postgresql://postgres:${CANARY.dotenvPostgres}@127.0.0.1:5432/postgres'`,
        'REDIS_HOST_PORT=6379',
        `KAFKA_BROKER_HOST_PORT=${dead}`,
        `OPA_HOST_PORT=${dead}`,
        `QDRANT_HOST_PORT=${echo.port}`,
        `QDRANT_API_KEY=${CANARY.dotenvQdrant}`,
        '',
      ].join('\n'),
    });
    cleanups.push(p.remove);
    const leaks: string[] = [];
    const local = (args: string[]) => runCli(['local', ...args], { cwd: p.dir, timeoutMs: 60_000 });
    for (const args of [['--format', 'json', '--verbose', '--timeout', '2s'], ['--timeout', '2s'], ['--format', 'junit', '--timeout', '2s'], ['--list'], ['--list', '--format', 'json']]) {
      const r = await local(args);
      leaks.push(...leaksIn(`local ${args.join(' ')} stdout`, r.stdout), ...leaksIn(`local ${args.join(' ')} stderr`, r.stderr + ' '));
    }
    expect(seen).toContain(CANARY.dotenvQdrant);
    expect(leaks).toEqual([]);
  });

  it('a JSON config with a syntax error names the line, never quotes it', async () => {
    const p = await tempProject({
      'soma-verify.config.json': `{\n  "environments": {\n    "staging": { "checks": [ { "id": "x", "kind": "http", "token": "${CANARY.literal.replace(/"/g, '')}" } } ]\n  }\n}\n`,
    });
    cleanups.push(p.remove);
    const r = await runCli(['staging'], { cwd: p.dir, timeoutMs: 20_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/soma-verify\.config\.json: not valid JSON: line 3, column \d+/);
    expect(r.stderr).not.toContain('cnry-literal');
  });
});
