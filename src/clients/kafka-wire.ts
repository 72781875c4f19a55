// The part of Kafka's wire protocol that describes a cluster: ApiVersions, SASL (PLAIN,
// SCRAM-SHA-256/512) through SaslHandshake v1 and SaslAuthenticate v0, Metadata for all topics,
// ListGroups. Hand-written because describing the cluster is all a kafka check does unless it
// is asked for a round trip, and kafkajs took 23 ms of CPU to load and about 20 ms more in its
// client per run, the largest share of a verification's own time (issue 11); it is still what
// produces and consumes the round trip (./kafka.ts). Only versions without tagged fields are
// sent (Metadata up to v8, ListGroups up to v2), which every broker since Kafka 1.0 answers.
import type { Socket } from 'node:net';
import { saltPassword, scramNonce, scramProof, signatureMatches, type ScramHash } from './scram.js';

// Every Kafka response starts with its size: 32 MiB is more than any answer this client asks for
// (the metadata of a cluster with a hundred thousand partitions), and far less than what a
// wrong-protocol peer's bytes read as a size ("HTTP" is 1.2 GB). Under 4 leaves no room for the
// correlation id.
export const KAFKA_MAX_FRAME = 32 * 1024 * 1024;

export const API_KEY = { Metadata: 3, ListGroups: 16, SaslHandshake: 17, ApiVersions: 18, SaslAuthenticate: 36 } as const;

/** Why an exchange with a broker failed; `kind` says how, the message says it to a person. */
export class KafkaWireError extends Error {
  override name = 'KafkaWireError';
  constructor(
    message: string,
    readonly kind: 'timeout' | 'closed' | 'network' | 'malformed' | 'unsupported' | 'sasl' | 'broker',
    readonly code?: string,
  ) {
    super(message);
  }
}

/** Kafka error codes this client may meet, by name (the protocol's own names). */
const ERROR_NAMES: Record<number, string> = {
  5: 'LEADER_NOT_AVAILABLE',
  14: 'COORDINATOR_LOAD_IN_PROGRESS',
  15: 'COORDINATOR_NOT_AVAILABLE',
  29: 'TOPIC_AUTHORIZATION_FAILED',
  31: 'CLUSTER_AUTHORIZATION_FAILED',
  33: 'UNSUPPORTED_SASL_MECHANISM',
  34: 'ILLEGAL_SASL_STATE',
  35: 'UNSUPPORTED_VERSION',
  58: 'SASL_AUTHENTICATION_FAILED',
};
export const errorName = (code: number): string => ERROR_NAMES[code] ?? `error code ${code}`;

/** A request body, big-endian, as the protocol writes its primitives. */
class Writer {
  private readonly parts: Buffer[] = [];
  int8(v: number): this {
    return this.push(Buffer.from([v & 0xff]));
  }
  int16(v: number): this {
    const b = Buffer.allocUnsafe(2);
    b.writeInt16BE(v);
    return this.push(b);
  }
  int32(v: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeInt32BE(v);
    return this.push(b);
  }
  string(v: string): this {
    const bytes = Buffer.from(v, 'utf8');
    return this.int16(bytes.length).push(bytes);
  }
  bytes(v: Buffer): this {
    return this.int32(v.length).push(v);
  }
  push(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** A response body. Every read is checked against its length: a short answer is malformed, never read past. */
export class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  private take(n: number): number {
    if (n < 0 || this.at + n > this.buf.length) throw new KafkaWireError('an answer shorter than its fields', 'malformed');
    const at = this.at;
    this.at += n;
    return at;
  }
  int8(): number {
    return this.buf.readInt8(this.take(1));
  }
  int16(): number {
    return this.buf.readInt16BE(this.take(2));
  }
  int32(): number {
    return this.buf.readInt32BE(this.take(4));
  }
  nullableString(): string | null {
    const length = this.int16();
    if (length === -1) return null;
    return this.buf.toString('utf8', this.take(length), this.at);
  }
  string(): string {
    return this.nullableString() ?? '';
  }
  bytes(): Buffer {
    const length = this.int32();
    if (length === -1) return Buffer.alloc(0);
    return this.buf.subarray(this.take(length), this.at);
  }
  array<T>(each: (r: Reader) => T): T[] {
    const length = this.int32();
    if (length === -1) return [];
    if (length < 0) throw new KafkaWireError(`an array of ${length} items`, 'malformed');
    // Each item takes at least one byte: a count the answer cannot hold is malformed, not a loop.
    if (length > this.buf.length - this.at) throw new KafkaWireError('an array longer than the answer', 'malformed');
    const items: T[] = [];
    for (let i = 0; i < length; i++) items.push(each(this));
    return items;
  }
}

/**
 * One connection to one broker: requests go out with a correlation id each, answers are matched
 * by it. A request that gets no answer within `requestTimeoutMs` fails, and so does every other
 * request on the connection, which is closed: a broker that stopped answering one will not answer
 * the next. The socket is connected already (and guarded against foreign bytes by the caller).
 */
export class KafkaConnection {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(r: Reader): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failure: Error | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly clientId: string,
    private readonly requestTimeoutMs: number,
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => this.fail(new KafkaWireError(err.message, 'network', err.code)));
    socket.on('close', () => this.fail(new KafkaWireError('Closed connection', 'closed')));
  }

  /** The answer's body, after its correlation id. */
  request(apiKey: number, apiVersion: number, body: Buffer = Buffer.alloc(0)): Promise<Reader> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const header = new Writer().int32(0).int16(apiKey).int16(apiVersion).int32(id).string(this.clientId).done();
    header.writeInt32BE(header.length - 4 + body.length, 0);
    return new Promise<Reader>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new KafkaWireError('Request timed out', 'timeout')), this.requestTimeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.write(Buffer.concat([header, body]));
    });
  }

  close(): void {
    this.fail(new KafkaWireError('Closed connection', 'closed'));
  }

  /** Frames are gathered as chunks and joined once whole: a large answer is not copied per chunk. */
  private receive(chunk: Buffer) {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= 4) {
      if (this.chunks[0]!.length < 4) this.chunks = [Buffer.concat(this.chunks)];
      const size = this.chunks[0]!.readInt32BE(0);
      if (size < 4 || size > KAFKA_MAX_FRAME) return this.fail(new KafkaWireError(`an answer of ${size} bytes`, 'malformed'));
      if (this.buffered < 4 + size) return;
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      const frame = all.subarray(4, 4 + size);
      const rest = all.subarray(4 + size);
      this.chunks = rest.length ? [rest] : [];
      this.buffered = rest.length;
      const id = frame.readInt32BE(0);
      const waiting = this.pending.get(id);
      if (!waiting) return this.fail(new KafkaWireError(`an answer to no request (correlation id ${id})`, 'malformed'));
      this.pending.delete(id);
      clearTimeout(waiting.timer);
      waiting.resolve(new Reader(frame.subarray(4)));
    }
  }

  private fail(err: Error) {
    this.failure ??= err;
    for (const [id, waiting] of this.pending) {
      this.pending.delete(id);
      clearTimeout(waiting.timer);
      waiting.reject(this.failure);
    }
    this.socket.destroy();
  }
}

/** The API versions a broker supports, by API key. */
export type ApiVersions = Map<number, { min: number; max: number }>;

export async function apiVersions(conn: KafkaConnection): Promise<ApiVersions> {
  const r = await conn.request(API_KEY.ApiVersions, 0);
  const error = r.int16();
  if (error !== 0) throw new KafkaWireError(`ApiVersions answered ${errorName(error)}`, 'broker');
  return new Map(r.array((x) => [x.int16(), { min: x.int16(), max: x.int16() }] as const));
}

/** The highest version of `apiKey` both sides speak, at most `ours`; undefined if none. */
export function versionFor(versions: ApiVersions, apiKey: number, ours: number): number | undefined {
  const theirs = versions.get(apiKey);
  if (!theirs || theirs.min > ours) return undefined;
  return Math.min(theirs.max, ours);
}

export interface SaslCredentials {
  mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
  username: string;
  password: string;
}

/** SaslHandshake v1, then SaslAuthenticate v0 exchanges; throws a 'sasl' error when refused. */
export async function authenticate(conn: KafkaConnection, versions: ApiVersions, sasl: SaslCredentials): Promise<void> {
  const mechanism = sasl.mechanism.toUpperCase();
  if (versionFor(versions, API_KEY.SaslHandshake, 1) !== 1 || versionFor(versions, API_KEY.SaslAuthenticate, 0) === undefined) {
    throw new KafkaWireError('the broker does not support SaslHandshake v1 and SaslAuthenticate (Kafka 1.0 or later)', 'unsupported');
  }
  const handshake = await conn.request(API_KEY.SaslHandshake, 1, new Writer().string(mechanism).done());
  const error = handshake.int16();
  const offered = handshake.array((x) => x.string());
  if (error !== 0) {
    throw new KafkaWireError(`SASL ${mechanism} authentication failed: the broker offers ${offered.join(', ') || 'no mechanism'} (${errorName(error)})`, 'sasl');
  }
  const exchange = async (bytes: Buffer): Promise<Buffer> => {
    const r = await conn.request(API_KEY.SaslAuthenticate, 0, new Writer().bytes(bytes).done());
    const code = r.int16();
    const message = r.nullableString();
    const answer = r.bytes();
    if (code !== 0) throw new KafkaWireError(`SASL ${mechanism} authentication failed: ${message ?? errorName(code)}`, 'sasl');
    return answer;
  };
  if (sasl.mechanism === 'plain') {
    await exchange(Buffer.from(`\0${sasl.username}\0${sasl.password}`, 'utf8'));
    return;
  }
  await scram(exchange, sasl.mechanism === 'scram-sha-256' ? 'sha256' : 'sha512', sasl, mechanism);
}

// Kafka's own bounds on SCRAM iterations (its ScramMechanism): the Java client refuses fewer, as a
// downgrade, and a broker never asks for more; a larger count would only be work asked of us.
const SCRAM_MIN_ITERATIONS = 4096;
const SCRAM_MAX_ITERATIONS = 16384;

/** Salted passwords already derived, per credentials: every broker of a cluster stores the same. */
const saltedPasswords = new WeakMap<SaslCredentials, Map<string, Promise<Buffer>>>();

function saltedPassword(sasl: SaslCredentials, hash: ScramHash, salt: string, iterations: number): Promise<Buffer> {
  const known = saltedPasswords.get(sasl) ?? new Map<string, Promise<Buffer>>();
  saltedPasswords.set(sasl, known);
  const key = `${hash}:${salt}:${iterations}`;
  let derived = known.get(key);
  if (!derived) {
    derived = saltPassword(hash, sasl.password, Buffer.from(salt, 'base64'), iterations);
    known.set(key, derived);
  }
  return derived;
}

/** RFC 5802's exchange, without channel binding, and the server's signature verified. */
async function scram(
  exchange: (bytes: Buffer) => Promise<Buffer>,
  hash: ScramHash,
  sasl: SaslCredentials,
  mechanism: string,
): Promise<void> {
  const refused = (why: string) => new KafkaWireError(`SASL ${mechanism} authentication failed: ${why}`, 'sasl');
  const nonce = scramNonce(24);
  const clientFirstBare = `n=${sasl.username.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${nonce}`;
  const serverFirst = (await exchange(Buffer.from(`n,,${clientFirstBare}`, 'utf8'))).toString('utf8');
  const fields = Object.fromEntries(serverFirst.split(',').map((f) => [f.slice(0, 1), f.slice(2)]));
  if (fields.e) throw refused(fields.e);
  const iterations = Number(fields.i);
  if (!fields.r?.startsWith(nonce) || !fields.s || !Number.isInteger(iterations)) throw refused('the server answered an invalid SCRAM challenge');
  if (iterations < SCRAM_MIN_ITERATIONS || iterations > SCRAM_MAX_ITERATIONS) {
    throw refused(`the server asks for ${iterations} iterations, outside Kafka's ${SCRAM_MIN_ITERATIONS}-${SCRAM_MAX_ITERATIONS}`);
  }
  const salted = await saltedPassword(sasl, hash, fields.s, iterations);
  const withoutProof = `c=biws,r=${fields.r}`;
  const { proof, serverSignature } = scramProof(hash, salted, `${clientFirstBare},${serverFirst},${withoutProof}`);
  const serverFinal = (await exchange(Buffer.from(`${withoutProof},p=${proof}`, 'utf8'))).toString('utf8');
  if (serverFinal.startsWith('e=')) throw refused(serverFinal.slice(2));
  // The server proves it knows the password too: a broker that does not is not the cluster.
  if (!signatureMatches(serverFinal.startsWith('v=') ? serverFinal.slice(2) : '', serverSignature)) throw refused('the server signature does not match');
}

export interface MetadataAnswer {
  clusterId: string | null;
  controller: number | null;
  brokers: Array<{ id: number; host: string; port: number }>;
  /** `error`: the error the broker answered for that topic (its partitions may then be missing). */
  topics: Array<{ name: string; error?: string; partitions: Array<{ partitionId: number; leader: number; replicas: number[]; isr: number[] }> }>;
}

/**
 * Metadata for every topic: a null topic array (an empty one in v0), which names no topic and so
 * creates none, whatever the broker's auto-creation setting.
 */
export async function metadata(conn: KafkaConnection, versions: ApiVersions): Promise<MetadataAnswer> {
  const v = versionFor(versions, API_KEY.Metadata, 8);
  if (v === undefined) throw new KafkaWireError('the broker does not support Metadata up to v8', 'unsupported');
  const body = new Writer().int32(v === 0 ? 0 : -1);
  if (v >= 4) body.int8(0); // allow_auto_topic_creation: false
  if (v >= 8) body.int8(0).int8(0); // no authorized operations
  const r = await conn.request(API_KEY.Metadata, v, body.done());
  if (v >= 3) r.int32(); // throttle_time_ms
  const brokers = r.array((x) => {
    const broker = { id: x.int32(), host: x.string(), port: x.int32() };
    if (v >= 1) x.nullableString(); // rack
    return broker;
  });
  const clusterId = v >= 2 ? r.nullableString() : null;
  const controllerId = v >= 1 ? r.int32() : -1;
  const topics = r.array((x) => {
    const error = x.int16();
    const name = x.string();
    if (v >= 1) x.int8(); // is_internal
    const partitions = x.array((p) => {
      p.int16(); // error_code
      const partitionId = p.int32();
      const leader = p.int32();
      if (v >= 7) p.int32(); // leader_epoch
      const replicas = p.array((n) => n.int32());
      const isr = p.array((n) => n.int32());
      if (v >= 5) p.array((n) => n.int32()); // offline_replicas
      return { partitionId, leader, replicas, isr };
    });
    if (v >= 8) x.int32(); // topic_authorized_operations
    return { name, partitions, ...(error ? { error: errorName(error) } : {}) };
  });
  return { clusterId, controller: controllerId < 0 ? null : controllerId, brokers, topics };
}

/** The consumer groups one broker coordinates, or undefined when it does not support ListGroups. */
export async function listGroups(conn: KafkaConnection, versions: ApiVersions): Promise<string[] | undefined> {
  const v = versionFor(versions, API_KEY.ListGroups, 2);
  if (v === undefined) return undefined;
  const r = await conn.request(API_KEY.ListGroups, v);
  if (v >= 1) r.int32(); // throttle_time_ms
  const error = r.int16();
  if (error !== 0) throw new KafkaWireError(`ListGroups answered ${errorName(error)}`, 'broker');
  return r.array((x) => {
    const id = x.string();
    x.string(); // protocol_type
    return id;
  });
}
