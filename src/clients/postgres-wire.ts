// The PostgreSQL frontend/backend protocol (version 3.0), as much of it as the postgres check
// speaks, over a connection postgres.ts has opened (and wrapped in TLS, if it negotiated SSL):
//
//   StartupMessage -> authentication: none, cleartext password, MD5, or SASL SCRAM-SHA-256
//   (whose server signature is verified) -> ReadyForQuery; then queries in the extended protocol
//   (Parse, Bind, Describe, Execute, Sync; parameters and results as text); then Terminate.
//
// Hand-written, not pg (node-postgres): loading pg cost about 9 ms of each run's CPU, with client
// machinery (pools, a query queue, type parsers) the check never used, on the critical path of a
// verification that must end about 50 ms after Node's own start-up (issue 11). The check needs
// startup, authentication and a few queries. Every message is framed by its length, and a length
// that no answer of this check can have is cut as "not PostgreSQL" before anything is allocated
// for it. The password is sent, never put into an error message.
import type { Socket } from 'node:net';
import { ForeignProtocolError } from './network.js';
import { saltPassword, scramNonce, scramProof, signatureMatches } from './scram.js';

const PROTOCOL = 'PostgreSQL';

/** An ErrorResponse of the server: `code` is its SQLSTATE (as pg set it), `message` its text. */
export class PgServerError extends Error {
  override name = 'PgServerError';
  readonly code: string | undefined;
  readonly severity: string | undefined;
  constructor(fields: Map<string, string>) {
    super(fields.get('M') ?? 'the server reported an error without a message');
    this.code = fields.get('C');
    // V is never localized (PostgreSQL 9.6 and later); S is, and older servers send only S.
    this.severity = fields.get('V') ?? fields.get('S');
  }
}

/** The server asked for a password and there is none to give. */
export class PasswordMissingError extends Error {
  override name = 'PasswordMissingError';
  constructor() {
    super('the server asks for a password and none was given');
  }
}

/** pg's words for a connection that ended unasked: the failure wording in postgres.ts reads them. */
const TERMINATED = 'Connection terminated unexpectedly';

export interface StartupOptions {
  user: string;
  database: string;
  password: string | undefined;
  /** libpq's `options` startup parameter (`-c search_path=app`), when the DSN has one. */
  options?: string;
  /** Sent as the session's statement_timeout: the server cancels a query that runs longer. */
  statementTimeoutMs: number;
}

/** A value of a result row in text format: booleans read as booleans, NULL as null. */
export type PgValue = string | boolean | null;

/** A backend message: its type byte (as a character) and its body after the length. */
interface Message {
  type: string;
  body: Buffer;
}

/** One connection's messages out and in, one exchange at a time. */
export class PgConnection {
  private readonly reader: MessageReader;
  private waiting: { resolve(message: Message): void; reject(err: Error): void } | undefined;
  private ended: Error | undefined;

  /** `maxMessageBytes`: the longest message this connection will read (the guard's byte cap). */
  constructor(
    private readonly stream: Socket,
    maxMessageBytes: number,
  ) {
    this.reader = new MessageReader(maxMessageBytes);
    stream.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      this.deliver();
    });
    stream.on('error', (err: Error) => this.end(err));
    stream.on('end', () => this.end(new Error(TERMINATED)));
    stream.on('close', () => this.end(new Error(TERMINATED)));
    // negotiateSsl leaves the stream paused so that no byte flows past unread: read on now.
    stream.resume();
  }

  /** StartupMessage, authentication, then waits for ReadyForQuery. */
  async startup({ user, database, password, options, statementTimeoutMs }: StartupOptions): Promise<void> {
    this.stream.write(
      startupMessage({
        user,
        database,
        application_name: 'soma-verify',
        statement_timeout: String(statementTimeoutMs),
        client_encoding: 'UTF8',
        ...(options ? { options } : {}),
      }),
    );
    const needPassword = (): string => {
      if (password === undefined) throw new PasswordMissingError();
      return password;
    };
    let scram: ScramClient | undefined;
    let authenticated = false;
    for (;;) {
      const message = await this.next();
      const body = new BodyReader(message);
      switch (message.type) {
        case 'R': {
          const request = body.int32();
          // Once SCRAM has begun, only its own steps may follow: a server that switches to a
          // cleartext or MD5 request then would get the password without proving anything.
          const scramStep = request === AUTH_OK || request === AUTH_SASL_CONTINUE || request === AUTH_SASL_FINAL;
          if (authenticated || (scram && !scramStep)) throw body.notPostgres();
          if (request === AUTH_OK) {
            // A server that skips SASLFinal never proved that it knows the password.
            if (scram && !scram.verified) throw new Error('SASL: SCRAM-SERVER-FINAL-MESSAGE: missing, the server accepted the client without proving it knows the password');
            authenticated = true;
          } else if (request === AUTH_CLEARTEXT) {
            this.stream.write(frame('p', cstring(needPassword())));
          } else if (request === AUTH_MD5) {
            const salt = body.bytes(4);
            this.stream.write(frame('p', cstring(md5Password(user, needPassword(), salt))));
          } else if (request === AUTH_SASL) {
            const mechanisms: string[] = [];
            for (let m = body.cstring(); m !== ''; m = body.cstring()) mechanisms.push(m);
            scram = new ScramClient(mechanisms, needPassword());
            const first = Buffer.from(scram.clientFirst);
            this.stream.write(frame('p', cstring(SCRAM_MECHANISM), int32(first.length), first));
          } else if (request === AUTH_SASL_CONTINUE) {
            if (!scram) throw body.notPostgres();
            this.stream.write(frame('p', Buffer.from(await scram.clientFinal(body.rest().toString('utf8')))));
          } else if (request === AUTH_SASL_FINAL) {
            if (!scram) throw body.notPostgres();
            scram.verify(body.rest().toString('utf8'));
          } else {
            const method = UNSUPPORTED_AUTH[request];
            throw new Error(
              `the server asks for ${method ? `${method} authentication` : `an authentication method unknown to soma-verify (request ${request})`}, ` +
                `which soma-verify does not support (pg_hba.conf: use scram-sha-256, md5 or password for this client)`,
            );
          }
          break;
        }
        case 'E':
          throw serverError(body);
        case 'Z':
          // Ready, but never authenticated: not the exchange a PostgreSQL server has.
          if (!authenticated) throw notPostgres(message);
          return;
        // ParameterStatus, BackendKeyData (no query is ever cancelled), NoticeResponse, and
        // NegotiateProtocolVersion (a server older than our protocol goes on with its own).
        case 'S':
        case 'K':
        case 'N':
        case 'v':
          break;
        default:
          throw notPostgres(message);
      }
    }
  }

  /**
   * Runs `sql` with `params` (text, $1...; null: NULL) in one round trip and returns its rows, by
   * column name. Values come as text: bool columns read as true/false, NULL as null.
   */
  async query<Row extends Record<string, PgValue>>(sql: string, params: Array<string | null> = []): Promise<Row[]> {
    this.stream.write(
      Buffer.concat([
        // Parse: the unnamed statement, parameter types left to the server (the SQL casts them).
        frame('P', cstring(''), cstring(sql), int16(0)),
        // Bind: the unnamed portal; all parameters text; all results text.
        frame('B', cstring(''), cstring(''), int16(0), int16(params.length), ...params.map(parameter), int16(0)),
        frame('D', Buffer.from('P'), cstring('')),
        frame('E', cstring(''), int32(0)),
        frame('S'),
      ]),
    );
    let columns: Column[] | undefined;
    const rows: Row[] = [];
    for (;;) {
      const message = await this.next();
      const body = new BodyReader(message);
      switch (message.type) {
        case 'T':
          columns = rowDescription(body);
          break;
        case 'D':
          if (!columns) throw body.notPostgres();
          rows.push(dataRow(body, columns) as Row);
          break;
        case 'E':
          throw serverError(body);
        case 'Z':
          return rows;
        // ParseComplete, BindComplete, NoData, CommandComplete, EmptyQueryResponse; and what a
        // server may send at any time: NoticeResponse, ParameterStatus, NotificationResponse.
        case '1':
        case '2':
        case 'n':
        case 'C':
        case 'I':
        case 'N':
        case 'S':
        case 'A':
          break;
        default:
          throw notPostgres(message);
      }
    }
  }

  /** Sends Terminate and ends our side; the caller bounds the wait for the server's close. */
  terminate(): void {
    this.stream.end(frame('X'));
  }

  /** The next whole message; rejects once the connection failed or closed and none is left. */
  private next(): Promise<Message> {
    return new Promise<Message>((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.deliver();
    });
  }

  private deliver(): void {
    const waiting = this.waiting;
    if (!waiting) return;
    let message: Message | undefined;
    try {
      message = this.reader.next();
    } catch (err) {
      // A frame PostgreSQL cannot send: nothing after it can be trusted.
      this.ended ??= err as Error;
      this.stream.destroy();
    }
    if (message) {
      this.waiting = undefined;
      waiting.resolve(message);
    } else if (this.ended) {
      this.waiting = undefined;
      waiting.reject(this.ended);
    }
  }

  private end(err: Error): void {
    this.ended ??= err;
    this.deliver(); // whole messages that came before the end are read first
  }
}

// Authentication requests (the Int32 of an 'R' message).
const AUTH_OK = 0;
const AUTH_CLEARTEXT = 3;
const AUTH_MD5 = 5;
const AUTH_SASL = 10;
const AUTH_SASL_CONTINUE = 11;
const AUTH_SASL_FINAL = 12;
/** Requests of methods this client does not speak, named for the failure message. */
const UNSUPPORTED_AUTH: Record<number, string> = {
  2: 'Kerberos V5',
  6: 'SCM credential',
  7: 'GSSAPI',
  8: 'GSSAPI',
  9: 'SSPI',
};

/** Backend messages read from the stream as they arrive, each at most `maxMessageBytes` long. */
class MessageReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxMessageBytes: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next whole message, or undefined until more bytes come; throws on a length no message has. */
  next(): Message | undefined {
    // Type byte, then Int32 length (counting itself, not the type byte).
    if (this.buffered < 5) return undefined;
    const head = this.first(5);
    const length = head.readInt32BE(1); // signed: a length of 2 GB or more reads negative
    if (length < 4) throw new ForeignProtocolError(PROTOCOL, Buffer.from(head), 'later answer');
    // Such a message could never arrive whole: the connection may carry no more than this (the
    // guard's cap), so it is cut now, in the guard's words, and never waited for nor allocated.
    if (length > this.maxMessageBytes) throw new ForeignProtocolError(PROTOCOL, Buffer.from(head), 'too many bytes', this.maxMessageBytes);
    if (this.buffered < 1 + length) return undefined;
    const whole = this.first(1 + length);
    this.chunks[0] = this.chunks[0]!.subarray(1 + length);
    if (this.chunks[0].length === 0) this.chunks.shift();
    this.buffered -= 1 + length;
    return { type: String.fromCharCode(whole[0]!), body: whole.subarray(5) };
  }

  /** The first `n` buffered bytes; the chunks are joined only when the first one is shorter. */
  private first(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    return this.chunks[0]!.subarray(0, n);
  }
}

/** Reads a message's body; a field that runs past the body means the peer is not PostgreSQL. */
class BodyReader {
  private at = 0;
  private readonly body: Buffer;

  constructor(private readonly message: Message) {
    this.body = message.body;
  }

  int16(): number {
    return this.body.readInt16BE(this.take(2));
  }

  int32(): number {
    return this.body.readInt32BE(this.take(4));
  }

  bytes(n: number): Buffer {
    const at = this.take(n);
    return this.body.subarray(at, at + n);
  }

  cstring(): string {
    const end = this.body.indexOf(0, this.at);
    if (end < 0) throw this.notPostgres();
    const text = this.body.toString('utf8', this.at, end);
    this.at = end + 1;
    return text;
  }

  rest(): Buffer {
    return this.body.subarray(this.at);
  }

  /** The message breaks its own layout, or is not one PostgreSQL sends here. */
  notPostgres(): ForeignProtocolError {
    return notPostgres(this.message);
  }

  /** Where the next `n` bytes start, once they are known to be there. */
  private take(n: number): number {
    if (n < 0 || this.at + n > this.body.length) throw this.notPostgres();
    const at = this.at;
    this.at += n;
    return at;
  }
}

/** A message PostgreSQL does not send here, or one that breaks its own layout. */
function notPostgres(message: Message): ForeignProtocolError {
  const head = Buffer.alloc(5);
  head.write(message.type, 'latin1');
  head.writeInt32BE(message.body.length + 4, 1);
  return new ForeignProtocolError(PROTOCOL, head, 'later answer');
}

/** ErrorResponse: fields of a type byte and a string each, up to a zero byte. */
function serverError(body: BodyReader): PgServerError {
  const fields = new Map<string, string>();
  for (let type = body.bytes(1)[0]; type !== 0; type = body.bytes(1)[0]) fields.set(String.fromCharCode(type!), body.cstring());
  return new PgServerError(fields);
}

interface Column {
  name: string;
  /** The type's OID: 16 is bool. */
  type: number;
}

const BOOL_OID = 16;

function rowDescription(body: BodyReader): Column[] {
  const columns: Column[] = [];
  for (let count = body.int16(), i = 0; i < count; i++) {
    const name = body.cstring();
    body.bytes(6); // table OID, column number
    const type = body.int32();
    body.bytes(8); // type size, type modifier, format code
    columns.push({ name, type });
  }
  return columns;
}

function dataRow(body: BodyReader, columns: Column[]): Record<string, PgValue> {
  const count = body.int16();
  if (count !== columns.length) throw body.notPostgres();
  const row: Record<string, PgValue> = {};
  for (const column of columns) {
    const length = body.int32();
    const text = length === -1 ? null : body.bytes(length).toString('utf8');
    row[column.name] = text !== null && column.type === BOOL_OID ? text === 't' : text;
  }
  return row;
}

/** A text array literal, each element quoted: what `$1::text[]` reads, whatever the strings hold. */
export function textArray(values: string[]): string {
  return `{${values.map((v) => `"${v.replace(/[\\"]/g, '\\$&')}"`).join(',')}}`;
}

// ---- framing of what the client sends ----

/** A message: type byte, Int32 length (itself and the body), body. Terminate and Sync have none. */
function frame(type: string, ...body: Buffer[]): Buffer {
  const length = 4 + body.reduce((n, b) => n + b.length, 0);
  return Buffer.concat([Buffer.from(type, 'latin1'), int32(length), ...body]);
}

/** StartupMessage: no type byte; protocol 3.0, then name/value pairs, then a zero byte. */
function startupMessage(parameters: Record<string, string>): Buffer {
  const pairs = Object.entries(parameters).flatMap(([name, value]) => [cstring(name), cstring(value)]);
  const body = Buffer.concat([int16(3), int16(0), ...pairs, Buffer.from([0])]);
  return Buffer.concat([int32(4 + body.length), body]);
}

/** A zero-terminated string; one that holds a zero byte would end early and shift every field after it. */
function cstring(text: string): Buffer {
  // The value is never quoted: it may be the password.
  if (text.includes('\0')) throw new Error('a name, password or query sent to PostgreSQL cannot contain a NUL character');
  return Buffer.from(`${text}\0`);
}

function int16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

/** A Bind parameter: Int32 length and bytes, or -1 for NULL. */
function parameter(value: string | null): Buffer {
  if (value === null) return int32(-1);
  const bytes = Buffer.from(value);
  return Buffer.concat([int32(bytes.length), bytes]);
}

// ---- password authentication ----

// Loaded only when a server asks for an MD5 password: node:crypto costs milliseconds of every
// run's start otherwise.
const md5 = (data: Buffer | string) => process.getBuiltinModule('node:crypto').createHash('md5').update(data).digest('hex');

/** AuthenticationMD5Password's answer: "md5" + md5(md5(password + user) + salt), in hex. */
function md5Password(user: string, password: string, salt: Buffer): string {
  return `md5${md5(Buffer.concat([Buffer.from(md5(password + user)), salt]))}`;
}

const SCRAM_MECHANISM = 'SCRAM-SHA-256';
// As pg: a server asking for more iterations would hold the connection on our CPU for long.
const SCRAM_MAX_ITERATIONS = 100_000;

/**
 * SCRAM-SHA-256 (RFC 5802, 7677) without channel binding, as pg speaks it by default. The user
 * name is sent empty ("n=*"): PostgreSQL takes the one of the startup message. The failure texts
 * are pg's.
 */
class ScramClient {
  private readonly nonce = scramNonce(18);
  private readonly clientFirstBare = `n=*,r=${this.nonce}`;
  /** gs2 header "n,,": the client does not support channel binding. */
  readonly clientFirst = `n,,${this.clientFirstBare}`;
  private serverSignature: Buffer | undefined;
  verified = false;

  constructor(
    mechanisms: string[],
    private readonly password: string,
  ) {
    if (!mechanisms.includes(SCRAM_MECHANISM)) throw new Error(`SASL: Only mechanism(s) ${SCRAM_MECHANISM} are supported`);
  }

  /** The client-final-message for the server-first-message: the proof that we know the password. */
  async clientFinal(serverFirst: string): Promise<string> {
    if (this.serverSignature !== undefined) throw new Error('SASL: Last message was not SASLInitialResponse');
    const attributes = scramAttributes(serverFirst);
    const nonce = attributes.get('r');
    const salt = attributes.get('s');
    const iterations = attributes.get('i');
    if (!nonce) throw new Error('SASL: SCRAM-SERVER-FIRST-MESSAGE: nonce missing');
    if (!/^[\x21-\x2b\x2d-\x7e]+$/.test(nonce)) throw new Error('SASL: SCRAM-SERVER-FIRST-MESSAGE: nonce must only contain printable characters');
    if (!nonce.startsWith(this.nonce)) throw new Error('SASL: SCRAM-SERVER-FIRST-MESSAGE: server nonce does not start with client nonce');
    if (nonce.length === this.nonce.length) throw new Error('SASL: SCRAM-SERVER-FIRST-MESSAGE: server nonce is too short');
    if (!salt) throw new Error('SASL: SCRAM-SERVER-FIRST-MESSAGE: salt missing');
    if (!isBase64(salt)) throw new Error('SASL: SCRAM-SERVER-FIRST-MESSAGE: salt must be base64');
    if (!iterations) throw new Error('SASL: SCRAM-SERVER-FIRST-MESSAGE: iteration missing');
    if (!/^[1-9][0-9]*$/.test(iterations)) throw new Error('SASL: SCRAM-SERVER-FIRST-MESSAGE: invalid iteration count');
    if (Number(iterations) > SCRAM_MAX_ITERATIONS) {
      throw new Error(`SASL: SCRAM-SERVER-FIRST-MESSAGE: iteration count ${iterations} exceeds scramMaxIterations of ${SCRAM_MAX_ITERATIONS}`);
    }
    // "biws": the gs2 header "n,," in base64.
    const clientFinalWithoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${clientFinalWithoutProof}`;
    const salted = await saltPassword('sha256', saslPrep(this.password), Buffer.from(salt, 'base64'), Number(iterations));
    const { proof, serverSignature } = scramProof('sha256', salted, authMessage);
    this.serverSignature = serverSignature;
    return `${clientFinalWithoutProof},p=${proof}`;
  }

  /** The server-final-message must carry the signature only a holder of the password's verifier can make. */
  verify(serverFinal: string): void {
    if (this.serverSignature === undefined) throw new Error('SASL: Last message was not SASLResponse');
    const attributes = scramAttributes(serverFinal);
    const error = attributes.get('e');
    if (error) throw new Error(`SASL: SCRAM-SERVER-FINAL-MESSAGE: server returned error: "${error}"`);
    const signature = attributes.get('v');
    if (!signature) throw new Error('SASL: SCRAM-SERVER-FINAL-MESSAGE: server signature is missing');
    if (!isBase64(signature)) throw new Error('SASL: SCRAM-SERVER-FINAL-MESSAGE: server signature must be base64');
    if (!signatureMatches(signature, this.serverSignature)) throw new Error('SASL: SCRAM-SERVER-FINAL-MESSAGE: server signature does not match');
    this.verified = true;
  }
}

/** "a=1,b=2" as a map of the one-letter names. */
function scramAttributes(text: string): Map<string, string> {
  return new Map(
    text.split(',').map((pair) => {
      if (!/^.=/.test(pair)) throw new Error('SASL: Invalid attribute pair entry');
      return [pair[0]!, pair.slice(2)];
    }),
  );
}

const isBase64 = (text: string) => /^(?:[a-zA-Z0-9+/]{4})*(?:[a-zA-Z0-9+/]{2}==|[a-zA-Z0-9+/]{3}=)?$/.test(text);

/**
 * The parts of SASLprep (RFC 4013) that change a password's bytes, as pg and libpq apply them
 * before deriving the key: non-ASCII spaces to a space, characters mapped to nothing removed,
 * NFKC. Without it, such a password would fail here and pass in the services' own clients.
 */
function saslPrep(password: string): string {
  return password
    .replace(/[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g, ' ')
    .replace(/[\u00AD\u034F\u1806\u180B\u180C\u180D\u200C\u200D\u2060\uFE00-\uFE0F\uFEFF]/g, '')
    .normalize('NFKC');
}
