// Peers that echo a secret back in forms the report must still mask: HTML error pages, PHP's
// JSON (`\/`), lower-case percent-encoding, a PostgreSQL error quoting the PGPASSWORD it was sent,
// a wrong-protocol peer echoing a non-ASCII password; and broker addresses whose password Node's
// URL parser refuses. Real servers, the compiled CLI, every output format.
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, tempProject, type CliResult } from '../support/cli.js';

const FORMATS = ['table', 'json', 'junit', 'github'] as const;
const TOKEN = `S3cr3t+/=&<>"'xyzQ-echo`;
const PG_PASSWORD = 'EnvPgPassw0rd-echo';
const REDIS_PASSWORD = 'Pässwört-Geheim77';

const HTML: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

const servers: Server[] = [];
const listen = async (server: Server) => {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
};
afterAll(() => {
  for (const s of servers) s.close();
});

/** stdout and stderr together: a secret must be in neither. */
const printed = (r: CliResult) => `${r.stdout}\n${r.stderr}`;

describe('a secret echoed by a peer in another encoding', () => {
  let project: { dir: string; remove(): Promise<void> };
  beforeAll(async () => {
    const http = createHttpServer((req, res) => {
      const token = String(req.headers['x-api-key'] ?? '');
      const echoes: Record<string, [string, string]> = {
        '/html': ['text/html', `<p>invalid credentials: ${token.replace(/[&<>"']/g, (c) => HTML[c]!)}</p>`],
        '/php': ['application/json', `{"error":"invalid credentials","key":${JSON.stringify(token).replaceAll('/', '\\/')}}`],
        '/lower': ['text/plain', `invalid credentials: ${encodeURIComponent(token).replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase())}`],
      };
      const [type, body] = echoes[req.url ?? ''] ?? ['text/plain', 'no'];
      res.writeHead(500, { 'content-type': type }).end(body);
    });
    const httpPort = await listen(http);

    // PostgreSQL: no SSL, a cleartext password request, then an error quoting what it was sent.
    const pg = createTcpServer((socket) => {
      let got = Buffer.alloc(0);
      let started = false;
      socket.on('data', (chunk) => {
        got = Buffer.concat([got, chunk]);
        while (got.length >= 4) {
          if (!started) {
            const length = got.readInt32BE(0);
            if (got.length < length) return;
            const code = got.readInt32BE(4);
            got = got.subarray(length);
            if (code === 80877103) socket.write('N'); // SSLRequest: no
            else {
              started = true;
              socket.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3])); // AuthenticationCleartextPassword
            }
            continue;
          }
          if (got.length < 5 || got.length < 1 + got.readInt32BE(1)) return;
          const password = got.subarray(5, got.readInt32BE(1)).toString('utf8').replace(/\0$/, '');
          const fields = Buffer.from(`SFATAL\0CXX000\0Mpassword authentication failed: got "${password}"\0\0`);
          const error = Buffer.alloc(5);
          error.write('E');
          error.writeInt32BE(4 + fields.length, 1);
          socket.end(Buffer.concat([error, fields]));
          return;
        }
      });
      socket.on('error', () => {});
    });
    const pgPort = await listen(pg);

    // Not Redis: it answers what it received on one line, its bytes otherwise as they came.
    const echo = createTcpServer((socket) => {
      socket.once('data', (chunk) => socket.end(Buffer.from(`ERROR unknown command: ${chunk.toString('latin1').replace(/\r\n/g, ' ')}\r\n`, 'latin1')));
      socket.on('error', () => {});
    });
    const echoPort = await listen(echo);

    const headers = { 'X-Api-Key': TOKEN };
    const config = {
      environments: {
        http: {
          checks: ['html', 'php', 'lower'].map((path) => ({ id: `echo.${path}`, kind: 'http', url: `http://127.0.0.1:${httpPort}/${path}`, headers })),
        },
        pg: { checks: [{ id: 'pg.echo', kind: 'postgres', dsn: `postgresql://bob@127.0.0.1:${pgPort}/raw` }] },
        redis: { checks: [{ id: 'redis.echo', kind: 'redis', url: `redis://127.0.0.1:${echoPort}/0`, password: REDIS_PASSWORD }] },
        'kafka-slash': { checks: [{ id: 'k', kind: 'kafka', brokers: 'kafka://user:Ka/fka9word@127.0.0.1:9092' }] },
        'kafka-space': { checks: [{ id: 'k', kind: 'kafka', brokers: 'kafka://user:Ka fka9word@127.0.0.1:9092' }] },
      },
    };
    project = await tempProject({ 'soma-verify.config.json': JSON.stringify(config) });
  });
  afterAll(() => project?.remove());

  it.each(FORMATS)('HTML-escaped, PHP-escaped and lower-case percent-encoded echoes of a header token are masked (--format %s)', async (format) => {
    const r = await runCli(['http', '--format', format, '--verbose'], { cwd: project.dir });
    expect(r.code).toBe(1);
    const out = printed(r);
    // The echoes reached the report (so masking, not omission, kept the token out)...
    if (format !== 'table' && format !== 'github') expect(out).toContain('invalid credentials');
    // ...and no form of the token is in it.
    for (const piece of ['S3cr3t', 'xyzQ-echo']) expect(out).not.toContain(piece);
  });

  it.each(FORMATS)('the PGPASSWORD a server quotes back is masked (--format %s)', async (format) => {
    const r = await runCli(['pg', '--format', format], { cwd: project.dir, env: { PGPASSWORD: PG_PASSWORD } });
    expect(r.code).toBe(1);
    const out = printed(r);
    expect(out).toContain('password authentication failed');
    expect(out).not.toContain(PG_PASSWORD);
  });

  it.each(FORMATS)('a non-ASCII password echoed by a peer that is not Redis is masked (--format %s)', async (format) => {
    const r = await runCli(['redis', '--format', format], { cwd: project.dir });
    expect(r.code).toBe(1);
    const out = printed(r);
    expect(out).toContain('ERROR unknown command');
    for (const piece of ['ssw', 'Geheim77']) expect(out).not.toContain(piece);
  });

  // Either way the address is read (userinfo runs to the last '@', and an address with
  // credentials is not split on a space) and the broker tried: nothing listens there.
  it.each(['kafka-slash', 'kafka-space'])('a broker address whose password Node cannot parse (%s) is read, and never shows it', async (env) => {
    const r = await runCli([env, '--format', 'json', '--timeout', '2s'], { cwd: project.dir });
    expect(r.code).toBe(1);
    expect(printed(r)).toContain('127.0.0.1:9092');
    for (const piece of ['fka9word', 'user:Ka']) expect(printed(r)).not.toContain(piece);
  });
});
