// The postgres check's own wire client (src/clients/postgres-wire.ts) against fake PostgreSQL
// servers written here, for what a real server cannot be made to show: MD5 and cleartext
// authentication (the real cluster of postgres.test.ts covers SCRAM), a SCRAM server that cannot
// prove it knows the password, an authentication method the client does not speak, an
// ErrorResponse in the middle of the queries, length fields no PostgreSQL message has, replies
// that arrive one byte at a time, and a password that stays out of every failure. Plus, on a real
// server, table names that need quoting and a timestamp read as an instant. Run in process, from
// the sources.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import postgres from '../../../checks/postgres.js';
import type { CheckOutcome } from '../../../src/check.js';
import { echoForms, MARGIN_MS } from '../../support/run-check.js';
import { dripWrites } from '../../support/faults.js';
import { startPostgresPeer, type PostgresPeer } from '../../support/peers/postgres.js';

const TIMEOUT_MS = 3000;
const USER = 'app';
// One the fake servers know, to prove it is sent; no failure may show it.
const PASSWORD = `Pw-${randomBytes(6).toString('hex')}`;

let server: Server | undefined;
afterEach(async () => {
  server?.close();
  server = undefined;
});

// ---- the protocol, server side ----

const int16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const cstr = (s: string) => Buffer.from(`${s}\0`);
/** A backend message: type byte, Int32 length, body. */
const msg = (type: string, ...body: Buffer[]) => {
  const rest = Buffer.concat(body);
  return Buffer.concat([Buffer.from(type), int32(rest.length + 4), rest]);
};
const auth = (request: number, ...data: Buffer[]) => msg('R', int32(request), ...data);
const error = (code: string, message: string) =>
  msg('E', Buffer.from('S'), cstr('FATAL'), Buffer.from('V'), cstr('FATAL'), Buffer.from('C'), cstr(code), Buffer.from('M'), cstr(message), Buffer.from([0]));
/** After authentication: what a server says before the first query. */
const ready = () =>
  Buffer.concat([
    msg('S', cstr('server_version'), cstr('16.4')),
    msg('S', cstr('client_encoding'), cstr('UTF8')),
    msg('K', int32(4242), int32(777)),
    msg('N', Buffer.from('S'), cstr('NOTICE'), Buffer.from('M'), cstr('welcome'), Buffer.from([0])),
    msg('Z', Buffer.from('I')),
  ]);

const TEXT = 25;
const BOOL = 16;
const INT8 = 20;
const NUMERIC = 1700;
const rowDescription = (columns: Array<[string, number]>) =>
  msg('T', int16(columns.length), ...columns.map(([name, type]) => Buffer.concat([cstr(name), int32(0), int16(0), int32(type), int16(-1), int32(-1), int16(0)])));
const dataRow = (values: Array<string | null>) =>
  msg('D', int16(values.length), ...values.map((v) => (v === null ? int32(-1) : Buffer.concat([int32(Buffer.byteLength(v)), Buffer.from(v)]))));

/** A message from the client: the startup message has no type (''). */
interface ClientMessage {
  type: string;
  body: Buffer;
}

/** The client's side of one connection, as the fake server sees it. */
class Peer {
  private buffer = Buffer.alloc(0);
  private waiting: ((m: ClientMessage | undefined) => void) | undefined;
  private started = false;
  private closed = false;
  readonly startup = new Map<string, string>();
  /** The SQL of each Parse, in order. */
  readonly queries: string[] = [];

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.deliver();
    });
    socket.on('close', () => {
      this.closed = true;
      this.deliver();
    });
  }

  /** The next message; undefined once the client closed. */
  next(): Promise<ClientMessage | undefined> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.deliver();
    });
  }

  /** The startup message (answering an SSLRequest with 'N' first), its parameters kept. */
  async readStartup(): Promise<void> {
    for (;;) {
      const m = await this.next();
      if (!m) throw new Error('the client closed before its startup message');
      const code = m.body.readInt32BE(0);
      if (code === 80877103) {
        this.socket.write('N');
        continue;
      }
      expect(code, 'protocol 3.0').toBe(3 << 16);
      const fields = m.body.subarray(4).toString('utf8').split('\0');
      for (let i = 0; fields[i]; i += 2) this.startup.set(fields[i]!, fields[i + 1]!);
      return;
    }
  }

  /** The next message, which must be of `type`. */
  async expect(type: string): Promise<Buffer> {
    const m = await this.next();
    expect(m?.type).toBe(type);
    return m!.body;
  }

  send(...messages: Buffer[]): void {
    if (!this.socket.destroyed) this.socket.write(Buffer.concat(messages));
  }

  /**
   * Answers the check's queries (extended protocol) until it terminates: `answer` gives the
   * messages for one query's SQL and parameters, sent at Sync.
   */
  async serveQueries(answer: (sql: string, params: Array<string | null>) => Buffer[] = standardAnswer): Promise<void> {
    let sql = '';
    let params: Array<string | null> = [];
    for (;;) {
      const m = await this.next();
      if (!m || m.type === 'X') return;
      if (m.type === 'P') {
        const parts = m.body.toString('utf8').split('\0');
        sql = parts[1]!;
        this.queries.push(sql);
      } else if (m.type === 'B') params = bindParameters(m.body);
      else if (m.type === 'S') this.send(...answer(sql, params));
    }
  }

  private deliver(): void {
    if (!this.waiting) return;
    const headLength = this.started ? 5 : 4;
    if (this.buffer.length >= headLength) {
      const length = this.buffer.readInt32BE(headLength - 4);
      const total = headLength - 4 + length;
      if (this.buffer.length >= total) {
        const m = { type: this.started ? String.fromCharCode(this.buffer[0]!) : '', body: this.buffer.subarray(headLength, total) };
        this.buffer = this.buffer.subarray(total);
        // The startup message and the SSLRequest have no type byte; every later message has one.
        if (!this.started && m.body.readInt32BE(0) !== 80877103) this.started = true;
        const resolve = this.waiting;
        this.waiting = undefined;
        return resolve(m);
      }
    }
    if (this.closed) {
      const resolve = this.waiting;
      this.waiting = undefined;
      resolve(undefined);
    }
  }
}

/** Bind's parameter values: portal, statement, formats, then the values. */
function bindParameters(body: Buffer): Array<string | null> {
  let at = body.indexOf(0) + 1;
  at = body.indexOf(0, at) + 1;
  at += 2 + 2 * body.readInt16BE(at);
  const values: Array<string | null> = [];
  for (let count = body.readInt16BE(at), i = 0, p = at + 2; i < count; i++) {
    const length = body.readInt32BE(p);
    values.push(length === -1 ? null : body.toString('utf8', p + 4, p + 4 + length));
    p += 4 + Math.max(0, length);
  }
  return values;
}

/** The elements of a text array literal of quoted elements, as PostgreSQL reads them. */
function arrayElements(literal: string): string[] {
  return [...literal.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!.replace(/\\(.)/g, '$1'));
}

const DJANGO_LAST_MS = 1733061234123;
const TABLES: Record<string, string> = { 'public.users': 'r', 'public.users_pkey': 'i' };

/** What PostgreSQL 16.4 with an alembic-migrated database answers to each of the check's queries. */
function standardAnswer(sql: string, params: Array<string | null>): Buffer[] {
  const done = (tag: string) => msg('C', cstr(tag));
  const start = [msg('1'), msg('2')];
  if (sql.includes("current_setting('server_version')")) {
    return [...start, rowDescription([['version', TEXT], ['version_num', TEXT], ['in_recovery', BOOL]]), dataRow(['16.4', '160004', 'f']), done('SELECT 1'), msg('Z', Buffer.from('I'))];
  }
  if (sql.includes('unnest($1::text[])')) {
    const names = arrayElements(params[0]!);
    return [...start, rowDescription([['name', TEXT], ['relkind', TEXT]]), ...names.map((n) => dataRow([n, TABLES[n] ?? null])), done(`SELECT ${names.length}`), msg('Z', Buffer.from('I'))];
  }
  if (sql.includes("to_regclass('alembic_version')")) {
    return [...start, rowDescription([['alembic', BOOL], ['django', BOOL]]), dataRow(['t', 't']), done('SELECT 1'), msg('Z', Buffer.from('I'))];
  }
  if (sql.includes('FROM alembic_version')) {
    return [...start, rowDescription([['version_num', TEXT]]), dataRow(['7f3c2a1b9d4e']), done('SELECT 1'), msg('Z', Buffer.from('I'))];
  }
  if (sql.includes('FROM django_migrations')) {
    return [...start, rowDescription([['count', INT8], ['last_applied_ms', NUMERIC]]), dataRow(['3', String(DJANGO_LAST_MS)]), done('SELECT 1'), msg('Z', Buffer.from('I'))];
  }
  return [msg('E', Buffer.from('C'), cstr('42601'), Buffer.from('M'), cstr(`unexpected query: ${sql}`), Buffer.from([0])), msg('Z', Buffer.from('I'))];
}

/** A fake server: `script` speaks for the server on each connection. */
async function listen(script: (peer: Peer) => Promise<void>, { drip = false } = {}): Promise<number> {
  server = createServer((socket) => {
    socket.on('error', () => {}); // the check closes its side when it is done
    if (drip) dripWrites(socket);
    const peer = new Peer(socket);
    script(peer).catch(() => socket.destroy());
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** A DSN for the fake at `port`; `password` null: none. */
const dsn = (port: number, password: string | null = PASSWORD) =>
  `postgresql://${USER}${password === null ? '' : `:${encodeURIComponent(password)}`}@127.0.0.1:${port}/appdb?sslmode=disable`;

async function check(options: object): Promise<{ outcome: CheckOutcome; wallMs: number }> {
  const validated = await postgres.options['~standard'].validate(options);
  if ('issues' in validated && validated.issues) throw new Error(JSON.stringify(validated.issues));
  const started = performance.now();
  const outcome = await postgres.run(validated.value, { signal: AbortSignal.timeout(TIMEOUT_MS), timeoutMs: TIMEOUT_MS, dependencies: new Map(), log: () => {} });
  return { outcome, wallMs: performance.now() - started };
}

/** No form of the password anywhere in the outcome: message, details, unanswered. */
function expectNoPassword(outcome: CheckOutcome): void {
  const printed = JSON.stringify(outcome);
  for (const form of echoForms(PASSWORD, USER)) expect(printed, `the password leaked as "${form}"`).not.toContain(form);
}

// ---- server scripts ----

/** MD5: checks the answer to the salt, then serves the queries. */
async function md5Server(peer: Peer): Promise<void> {
  await peer.readStartup();
  const salt = randomBytes(4);
  peer.send(auth(5, salt));
  const answer = (await peer.expect('p')).toString('utf8').replace(/\0$/, '');
  const md5 = (data: Buffer | string) => createHash('md5').update(data).digest('hex');
  if (answer !== `md5${md5(Buffer.concat([Buffer.from(md5(PASSWORD + USER)), salt]))}`) {
    return peer.send(error('28P01', `password authentication failed for user "${USER}"`));
  }
  peer.send(auth(0), ready());
  await peer.serveQueries();
}

/** Cleartext: the password itself, then the queries. */
async function cleartextServer(peer: Peer): Promise<void> {
  await peer.readStartup();
  peer.send(auth(3));
  if ((await peer.expect('p')).toString('utf8') !== `${PASSWORD}\0`) {
    return peer.send(error('28P01', `password authentication failed for user "${USER}"`));
  }
  peer.send(auth(0), ready());
  await peer.serveQueries();
}

/**
 * SCRAM-SHA-256 as PostgreSQL runs it, with a verifier of PASSWORD: the client's proof is checked.
 * `final` says what the server ends with: its true signature, a wrong one, or none at all.
 */
function scramServer(final: 'signature' | 'wrong signature' | 'skipped') {
  return async (peer: Peer): Promise<void> => {
    await peer.readStartup();
    peer.send(auth(10, cstr('SCRAM-SHA-256-PLUS'), cstr('SCRAM-SHA-256'), Buffer.from([0])));
    const initial = await peer.expect('p');
    const mechanismEnd = initial.indexOf(0);
    expect(initial.toString('utf8', 0, mechanismEnd)).toBe('SCRAM-SHA-256');
    const clientFirst = initial.toString('utf8', mechanismEnd + 5);
    const clientFirstBare = clientFirst.replace(/^n,,/, '');
    const clientNonce = /r=([^,]+)/.exec(clientFirstBare)![1]!;
    const salt = randomBytes(16);
    const serverFirst = `r=${clientNonce}${randomBytes(18).toString('base64')},s=${salt.toString('base64')},i=4096`;
    peer.send(auth(11, Buffer.from(serverFirst)));
    const clientFinal = (await peer.expect('p')).toString('utf8');
    const withoutProof = clientFinal.replace(/,p=[^,]*$/, '');
    const proof = Buffer.from(/,p=([^,]*)$/.exec(clientFinal)![1]!, 'base64');
    const hmac = (key: Buffer, text: string) => createHmac('sha256', key).update(text).digest();
    const salted = pbkdf2Sync(PASSWORD, salt, 4096, 32, 'sha256');
    const storedKey = createHash('sha256').update(hmac(salted, 'Client Key')).digest();
    const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
    const clientSignature = hmac(storedKey, authMessage);
    const clientKey = Buffer.from(proof.map((byte, i) => byte ^ clientSignature[i]!));
    if (!createHash('sha256').update(clientKey).digest().equals(storedKey)) {
      return peer.send(error('28P01', `password authentication failed for user "${USER}"`));
    }
    const signature = hmac(hmac(salted, 'Server Key'), authMessage);
    if (final === 'wrong signature') signature[0]! ^= 1;
    if (final !== 'skipped') peer.send(auth(12, Buffer.from(`v=${signature.toString('base64')}`)));
    peer.send(auth(0), ready());
    await peer.serveQueries();
  };
}

describe('the PostgreSQL wire client: authentication', () => {
  it('answers an MD5 challenge, then runs the queries', async () => {
    let seen: Peer | undefined;
    const port = await listen((peer) => md5Server((seen = peer)));
    const { outcome } = await check({ dsn: dsn(port), tables: ['public.users'], migrations: true });
    expect(outcome.status, outcome.message).toBe('pass');
    expect(outcome.message).toMatch(new RegExp(`^PostgreSQL 16\\.4 on 127\\.0\\.0\\.1:${port} answers \\(`));
    expect(outcome.details).toMatchObject({ serverVersion: '16.4', serverVersionNum: 160004, inRecovery: false, tls: false, tablesFound: 1, alembicHeads: ['7f3c2a1b9d4e'] });
    // The startup message pg sent, parameter for parameter.
    expect(Object.fromEntries(seen!.startup)).toEqual({
      user: USER,
      database: 'appdb',
      application_name: 'soma-verify',
      statement_timeout: String(TIMEOUT_MS),
      client_encoding: 'UTF8',
    });
  });

  it('fails a wrong MD5 password as an authentication failure, naming the user only', async () => {
    const port = await listen(md5Server);
    const { outcome } = await check({ dsn: dsn(port, `${PASSWORD}-wrong`) });
    expect(outcome).toMatchObject({ status: 'fail', message: `authentication failed for user ${USER}` });
    expect(JSON.stringify(outcome)).not.toContain(`${PASSWORD}-wrong`);
  });

  it('sends the password itself when the server asks for cleartext', async () => {
    const port = await listen(cleartextServer);
    const { outcome } = await check({ dsn: dsn(port) });
    expect(outcome.status, outcome.message).toBe('pass');
    const wrong = await check({ dsn: dsn(port, 'not-the-password') });
    expect(wrong.outcome).toMatchObject({ status: 'fail', message: `authentication failed for user ${USER}` });
  });

  it.each([
    ['cleartext', cleartextServer],
    ['MD5', md5Server],
    ['SCRAM-SHA-256', scramServer('signature')],
  ])('fails clearly when the server asks for a password (%s) and the dsn has none', async (_method, script) => {
    const port = await listen(script);
    const { outcome } = await check({ dsn: dsn(port, null) });
    expect(outcome).toMatchObject({
      status: 'fail',
      message: `authentication failed for user ${USER}: the server asks for a password and the dsn has none`,
    });
  });

  it('passes SCRAM-SHA-256 with a server that proves it knows the password', async () => {
    const port = await listen(scramServer('signature'));
    const { outcome } = await check({ dsn: dsn(port) });
    expect(outcome.status, outcome.message).toBe('pass');
  });

  it.each([
    ['a wrong final signature', 'wrong signature', 'server signature does not match'],
    ['no final signature at all', 'skipped', 'missing, the server accepted the client without proving it knows the password'],
  ] as const)('refuses a SCRAM server with %s, before any query', async (_what, final, cause) => {
    let seen: Peer | undefined;
    const port = await listen((peer) => scramServer(final)((seen = peer)));
    const { outcome } = await check({ dsn: dsn(port) });
    expect(outcome.status).toBe('fail');
    expect(outcome.message).toBe(`cannot connect to 127.0.0.1:${port}: SASL: SCRAM-SERVER-FINAL-MESSAGE: ${cause}`);
    expect(seen!.queries).toEqual([]);
  });

  it('refuses a server that says it is ready without authenticating the client, or switches from SCRAM to cleartext, and sends it no password', async () => {
    const received: string[] = [];
    const readyUnasked = await listen(async (peer) => {
      await peer.readStartup();
      peer.send(auth(10, cstr('SCRAM-SHA-256'), Buffer.from([0])));
      received.push((await peer.expect('p')).toString('utf8'));
      peer.send(msg('Z', Buffer.from('I')));
      await peer.serveQueries();
    });
    const switched = await listen(async (peer) => {
      await peer.readStartup();
      peer.send(auth(10, cstr('SCRAM-SHA-256'), Buffer.from([0])));
      await peer.expect('p');
      peer.send(auth(3));
      const next = await peer.next();
      if (next) received.push(next.body.toString('utf8'));
    });
    for (const port of [readyUnasked, switched]) {
      const { outcome } = await check({ dsn: dsn(port) });
      expect(outcome.status).toBe('fail');
      expect(outcome.message).toMatch(new RegExp(`^not a PostgreSQL server on 127\\.0\\.0\\.1:${port}: `));
    }
    expect(received.join('|')).not.toContain(PASSWORD);
  });

  it.each([
    [2, 'Kerberos V5'],
    [7, 'GSSAPI'],
    [9, 'SSPI'],
    [6, 'SCM credential'],
  ])('names an authentication method it does not speak (request %i: %s)', async (request, method) => {
    const port = await listen(async (peer) => {
      await peer.readStartup();
      peer.send(auth(request));
      await peer.next();
    });
    const { outcome } = await check({ dsn: dsn(port) });
    expect(outcome.status).toBe('fail');
    expect(outcome.message).toMatch(new RegExp(`^cannot connect to 127\\.0\\.0\\.1:${port}: the server asks for ${method} authentication, which soma-verify does not support`));
  });
});

describe('the PostgreSQL wire client: queries and framing', () => {
  it.each([
    ['42P01', 'relation "public.users" does not exist', 'the table lookup failed on 127.0.0.1:PORT: relation "public.users" does not exist (SQLSTATE 42P01)'],
    ['42501', 'permission denied for table pg_class', `permission denied for user ${USER} (the table lookup): permission denied for table pg_class`],
    ['57014', 'canceling statement due to statement timeout', `the table lookup on 127.0.0.1:PORT cancelled by statement_timeout (${TIMEOUT_MS} ms)`],
  ])('reports an ErrorResponse to a query by its SQLSTATE %s and message', async (code, text, expected) => {
    const port = await listen(async (peer) => {
      await peer.readStartup();
      peer.send(auth(0), ready());
      await peer.serveQueries((sql, params) =>
        sql.includes('unnest') ? [msg('1'), msg('2'), msg('E', Buffer.from('S'), cstr('ERROR'), Buffer.from('C'), cstr(code), Buffer.from('M'), cstr(text), Buffer.from([0])), msg('Z', Buffer.from('I'))] : standardAnswer(sql, params),
      );
    });
    const { outcome } = await check({ dsn: dsn(port), tables: ['public.users'] });
    expect(outcome).toMatchObject({ status: 'fail', message: expected.replace('PORT', String(port)) });
  });

  it('reads replies that arrive one byte at a time', async () => {
    const port = await listen(md5Server, { drip: true });
    const { outcome } = await check({ dsn: dsn(port), tables: ['public.users', 'public.users_pkey', 'public.gone'], migrations: 'django' });
    expect(outcome.status).toBe('fail');
    expect(outcome.message).toBe('table public.gone missing; public.users_pkey is an index, not a table');
    expect(outcome.details).toMatchObject({
      serverVersion: '16.4',
      tablesFound: 1,
      tablesMissing: ['public.gone'],
      djangoMigrations: 3,
      djangoLastApplied: new Date(DJANGO_LAST_MS).toISOString(),
    });
  });

  it('sends a table list of any names as one quoted array parameter, never as SQL', async () => {
    let seen: Peer | undefined;
    const names = ['public.users', 'a"b', 'back\\slash', "it's", 'x,y', '{z}', 'NULL'];
    const port = await listen((peer) => md5Server((seen = peer)));
    const { outcome } = await check({ dsn: dsn(port), tables: names });
    expect(outcome.details?.tablesMissing).toEqual(names.slice(1));
    expect(seen!.queries.find((q) => q.includes('unnest'))).not.toMatch(/users|slash|it's/);
  });

  it.each([
    ['2 GB (Int32 max)', 0x7fffffff, /the peer sent more than \d+ bytes/],
    ['9 MB, past the byte cap', 9 * 1024 * 1024, /the peer sent more than \d+ bytes/],
    ['negative', -1, /the peer sent bytes that are not PostgreSQL/],
    ['3, under its own size', 3, /the peer sent bytes that are not PostgreSQL/],
  ])('cuts a message whose length field says %s as not PostgreSQL, at once and without allocating it', async (_what, length, cause) => {
    for (const stage of ['authentication', 'query'] as const) {
      const head = Buffer.alloc(5);
      head.write(stage === 'authentication' ? 'R' : 'D', 0);
      head.writeInt32BE(length, 1);
      const port = await listen(async (peer) => {
        await peer.readStartup();
        if (stage === 'query') {
          peer.send(auth(0), ready());
          await peer.next(); // Parse
          peer.send(msg('1'), msg('2'), rowDescription([['version', TEXT]]));
        }
        // Then a little of the body, and silence: a reader that waits for the rest waits in vain.
        peer.send(head, Buffer.alloc(1024, 'x'));
        await peer.next();
      });
      const baseline = process.memoryUsage().arrayBuffers;
      let peak = baseline;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 2);
      const { outcome, wallMs } = await check({ dsn: dsn(port) }).finally(() => clearInterval(sampler));
      expect(outcome.status, stage).toBe('fail');
      expect(outcome.message, stage).toMatch(new RegExp(`^not a PostgreSQL server on 127\\.0\\.0\\.1:${port}: `));
      expect(outcome.message, stage).toMatch(cause);
      expect(wallMs, stage).toBeLessThan(TIMEOUT_MS / 2);
      expect(peak - baseline, stage).toBeLessThan(8 * 1024 * 1024);
      server!.close();
    }
  });

  it('fails a message that breaks its own layout as not PostgreSQL', async () => {
    // A DataRow announcing 5 columns where the description had one.
    const port = await listen(async (peer) => {
      await peer.readStartup();
      peer.send(auth(0), ready());
      await peer.next();
      peer.send(msg('1'), msg('2'), rowDescription([['version', TEXT]]), msg('D', int16(5), int32(2), Buffer.from('16')));
      await peer.next();
    });
    const { outcome, wallMs } = await check({ dsn: dsn(port) });
    expect(outcome).toMatchObject({ status: 'fail', message: `not a PostgreSQL server on 127.0.0.1:${port}: the peer sent bytes that are not PostgreSQL` });
    expect(wallMs).toBeLessThan(TIMEOUT_MS);
  });

  it.each([
    ['in the middle of a message during the handshake', 'handshake', 'closed the connection during the PostgreSQL handshake'],
    ['in the middle of a query answer', 'query', 'connection to 127.0.0.1:PORT lost during the server version query'],
  ])('says the connection was lost when the server closes %s', async (_what, stage, expected) => {
    const port = await listen(async (peer) => {
      await peer.readStartup();
      if (stage === 'query') {
        peer.send(auth(0), ready());
        await peer.next();
        peer.send(msg('1'), rowDescription([['version', TEXT]]).subarray(0, 9));
      } else {
        peer.send(auth(0), ready().subarray(0, 12));
      }
      setTimeout(() => peer.socket.end(), 20);
    });
    const { outcome, wallMs } = await check({ dsn: dsn(port) });
    expect(outcome.status).toBe('fail');
    expect(outcome.message).toBe(stage === 'query' ? expected.replace('PORT', String(port)) : `127.0.0.1:${port} ${expected}`);
    expect(wallMs).toBeLessThan(TIMEOUT_MS);
  });

  it('sends Terminate when it is done, and closes', async () => {
    const seen: string[] = [];
    const port = await listen(async (peer) => {
      await peer.readStartup();
      peer.send(auth(0), ready());
      for (let m = await peer.next(); m; m = await peer.next()) {
        seen.push(m.type);
        if (m.type === 'S') peer.send(...standardAnswer(peer.queries.at(-1) ?? '', []));
        if (m.type === 'P') peer.queries.push(m.body.toString('utf8').split('\0')[1]!);
      }
      seen.push('closed');
    });
    const { outcome } = await check({ dsn: dsn(port) });
    expect(outcome.status, outcome.message).toBe('pass');
    await expect.poll(() => seen.at(-1)).toBe('closed');
    // One query, in one round trip, then Terminate.
    expect(seen).toEqual(['P', 'B', 'D', 'E', 'S', 'X', 'closed']);
  });
});

describe('the password stays out of every failure', () => {
  it('in every way a failure can end after the password was sent', async () => {
    const endings: Array<(peer: Peer) => Promise<void>> = [
      md5Server, // with a wrong password below
      scramServer('wrong signature'),
      scramServer('skipped'),
      async (peer) => {
        await peer.readStartup();
        peer.send(auth(3));
        await peer.expect('p');
        peer.socket.destroy(); // reset right after the password
      },
      async (peer) => {
        await peer.readStartup();
        peer.send(auth(3));
        await peer.expect('p');
        peer.send(Buffer.from('this is no PostgreSQL message'));
      },
      async (peer) => {
        await peer.readStartup();
        peer.send(auth(5, randomBytes(4)));
        await peer.expect('p');
        await peer.next(); // silent until the check gives up
      },
    ];
    for (const [i, script] of endings.entries()) {
      const port = await listen(script);
      // The wrong password is PASSWORD with a suffix: not seeing PASSWORD covers both.
      const { outcome, wallMs } = await check({ dsn: dsn(port, i === 0 ? `${PASSWORD}-x` : PASSWORD) });
      expect(outcome.status, outcome.message).toBe('fail');
      expect(wallMs).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
      expectNoPassword(outcome);
      server!.close();
    }
  });
});

describe('the PostgreSQL wire client on a real server', () => {
  let peer: PostgresPeer | undefined;
  const database = `sv_pgwire_${randomBytes(4).toString('hex')}`;
  beforeAll(async () => {
    peer = await startPostgresPeer();
    const admin = await peer.admin();
    try {
      await admin.query(`CREATE DATABASE ${database}`);
      // A session time zone far from UTC: the instant must not depend on it.
      await admin.query(`ALTER DATABASE ${database} SET timezone TO 'Asia/Kolkata'`);
    } finally {
      await admin.end();
    }
    const db = await peer.admin(database);
    try {
      await db.query(`CREATE TABLE django_migrations (id serial PRIMARY KEY, app varchar(255), name varchar(255), applied timestamptz);
        INSERT INTO django_migrations (app, name, applied) VALUES
          ('auth', '0001_initial', '2024-12-01 13:53:54.123456+00'), ('auth', '0002_more', '2024-06-30 23:59:59.999+00');`);
    } finally {
      await db.end();
    }
  });
  afterAll(async () => {
    if (!peer) return;
    const admin = await peer.admin();
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    } finally {
      await admin.end();
    }
    await peer.close();
  });

  it('reads the last django migration as an instant, whatever the session time zone', async () => {
    const { outcome } = await check({ dsn: peer!.dsn(database), migrations: 'django' });
    expect(outcome.status, outcome.message).toBe('pass');
    expect(outcome.details).toMatchObject({ djangoMigrations: 2, djangoLastApplied: '2024-12-01T13:53:54.123Z' });
  });

  it('looks up table names that need quoting, each as given', async () => {
    const names = ['pg_catalog.pg_class', 'a"b', 'back\\slash', "it's", 'x,y', '{z}', 'NULL', 'épreuve'];
    const { outcome } = await check({ dsn: peer!.dsn(database), tables: names });
    expect(outcome.status).toBe('fail');
    expect(outcome.details).toMatchObject({ tablesFound: 1, tablesMissing: names.slice(1) });
  });
});
