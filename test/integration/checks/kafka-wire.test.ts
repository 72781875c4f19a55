// src/clients/kafka-wire.ts against Kafka protocol doubles written here (on loopback), for what
// neither librdkafka's mock nor the shared double can show: SCRAM-SHA-256/512 checked by a server
// that verifies the proof itself, Metadata v8's extra fields, ListGroups across brokers, answers
// dripped a few bytes at a time, and answers that lie about their own length.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  API_KEY,
  apiVersions,
  authenticate,
  KafkaConnection,
  KafkaWireError,
  listGroups,
  metadata,
  type ApiVersions,
} from '../../../src/clients/kafka-wire.js';
import { openKafka } from '../../../src/clients/kafka.js';
import type { CheckContext } from '../../../src/check.js';
import { dripWrites, refusedPort } from '../../support/faults.js';
import { KafkaWriter as Out } from '../../support/peers/kafka.js';

interface Request {
  apiKey: number;
  apiVersion: number;
  body: Buffer;
}
/** Answers a request with a body (framed here), or with nothing (silence). */
type Handler = (req: Request, socket: Socket) => Buffer | undefined;

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.close();
  }
});

/** A broker double: each request framed and handed to `handle`; `chunk` bytes per write (drip). */
async function double(handle: Handler, { chunk = 0 }: { chunk?: number } = {}): Promise<{ host: string; port: number }> {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    if (chunk) dripWrites(socket, chunk);
    let pending = Buffer.alloc(0);
    socket.on('data', (data: Buffer) => {
      pending = Buffer.concat([pending, data]);
      while (pending.length >= 4 && pending.length >= 4 + pending.readInt32BE(0)) {
        const frame = pending.subarray(4, 4 + pending.readInt32BE(0));
        pending = pending.subarray(4 + frame.length);
        const clientIdLength = frame.readInt16BE(8);
        const req = { apiKey: frame.readInt16BE(0), apiVersion: frame.readInt16BE(2), body: frame.subarray(10 + clientIdLength) };
        const body = handle(req, socket);
        if (body) socket.write(Buffer.concat([new Out().int32(body.length + 4).int32(frame.readInt32BE(4)).buffer(), body]));
      }
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { host: '127.0.0.1', port: (server.address() as AddressInfo).port };
}

/** ApiVersions v0's answer: these keys with versions 0..max. */
const versionsAnswer = (supported: Record<number, number>) =>
  new Out().int16(0).array(Object.entries(supported), (o, [key, max]) => o.int16(Number(key)).int16(0).int16(max)).buffer();

async function connection(address: { host: string; port: number }, requestTimeoutMs = 2000): Promise<KafkaConnection> {
  const socket = connect(address.port, address.host);
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return new KafkaConnection(socket, 'soma-verify-test', requestTimeoutMs);
}

const failureOf = (work: Promise<unknown>) => work.then(() => undefined, (e: unknown) => e as KafkaWireError);

/** The server side of SCRAM (RFC 5802), verifying the client's proof itself. */
function scramServer(hash: 'sha256' | 'sha512', password: string, { forgeSignature = false } = {}) {
  const salt = randomBytes(16);
  const iterations = 4096;
  const salted = pbkdf2Sync(password, salt, iterations, hash === 'sha256' ? 32 : 64, hash);
  const hmac = (key: Buffer, text: string) => createHmac(hash, key).update(text).digest();
  const storedKey = createHash(hash).update(hmac(salted, 'Client Key')).digest();
  let clientFirstBare = '';
  let serverFirst = '';
  return (message: Buffer): { ok: true; answer: Buffer } | { ok: false } => {
    const text = message.toString();
    if (text.startsWith('n,,')) {
      clientFirstBare = text.slice(3);
      const clientNonce = /,r=([^,]+)/.exec(clientFirstBare)![1];
      serverFirst = `r=${clientNonce}${randomBytes(8).toString('hex')},s=${salt.toString('base64')},i=${iterations}`;
      return { ok: true, answer: Buffer.from(serverFirst) };
    }
    const withoutProof = text.replace(/,p=[^,]+$/, '');
    const proof = Buffer.from(/,p=([^,]+)$/.exec(text)![1]!, 'base64');
    const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
    const signature = hmac(storedKey, authMessage);
    const clientKey = Buffer.from(proof.map((b, i) => b ^ signature[i]!));
    if (!createHash(hash).update(clientKey).digest().equals(storedKey)) return { ok: false };
    const serverSignature = forgeSignature ? randomBytes(signature.length) : hmac(hmac(salted, 'Server Key'), authMessage);
    return { ok: true, answer: Buffer.from(`v=${serverSignature.toString('base64')}`) };
  };
}

/** A broker double that does ApiVersions and SASL SCRAM with `mechanism`, then answers `rest`. */
function saslBroker(mechanism: string, verify: ReturnType<typeof scramServer>, rest: Handler = () => undefined): Handler {
  return (req, socket) => {
    if (req.apiKey === API_KEY.ApiVersions) return versionsAnswer({ [API_KEY.SaslHandshake]: 1, [API_KEY.SaslAuthenticate]: 0, [API_KEY.Metadata]: 1 });
    if (req.apiKey === API_KEY.SaslHandshake) {
      const asked = req.body.subarray(2).toString();
      return new Out().int16(asked === mechanism ? 0 : 33).array([mechanism], (o, m) => o.string(m)).buffer();
    }
    if (req.apiKey === API_KEY.SaslAuthenticate) {
      const result = verify(req.body.subarray(4));
      if (!result.ok) return new Out().int16(58).string(`Authentication failed during authentication due to invalid credentials with SASL mechanism ${mechanism}`).bytes(Buffer.alloc(0)).buffer();
      return new Out().int16(0).string(null).bytes(result.answer).buffer();
    }
    return rest(req, socket);
  };
}

describe('SASL SCRAM, against a server that checks the proof itself', () => {
  for (const [mechanism, hash] of [['scram-sha-256', 'sha256'], ['scram-sha-512', 'sha512']] as const) {
    it(`${mechanism}: the right password is accepted, a wrong one refused with the broker's words`, async () => {
      const broker = await double(saslBroker(mechanism.toUpperCase(), scramServer(hash, 'right-pass')));
      const good = await connection(broker);
      await authenticate(good, await apiVersions(good), { mechanism, username: 'soma', password: 'right-pass' });
      good.close();

      const bad = await connection(broker);
      const failure = await failureOf(authenticate(bad, await apiVersions(bad), { mechanism, username: 'soma', password: 'wrong-pass' }));
      expect(failure).toMatchObject({ kind: 'sasl' });
      expect(failure!.message).toBe(`SASL ${mechanism.toUpperCase()} authentication failed: Authentication failed during authentication due to invalid credentials with SASL mechanism ${mechanism.toUpperCase()}`);
      expect(failure!.message).not.toContain('wrong-pass');
    });
  }

  it('a server whose final signature does not prove it knows the password is refused', async () => {
    const broker = await double(saslBroker('SCRAM-SHA-256', scramServer('sha256', 'pw', { forgeSignature: true })));
    const conn = await connection(broker);
    const failure = await failureOf(authenticate(conn, await apiVersions(conn), { mechanism: 'scram-sha-256', username: 'soma', password: 'pw' }));
    expect(failure).toMatchObject({ kind: 'sasl', message: 'SASL SCRAM-SHA-256 authentication failed: the server signature does not match' });
  });

  it("a SCRAM challenge outside Kafka's iteration bounds is refused before any key is derived", async () => {
    for (const iterations of [1000, 1_000_000]) {
      const broker = await double(
        saslBroker('SCRAM-SHA-512', (message) =>
          message.toString().startsWith('n,,')
            ? { ok: true, answer: Buffer.from(`r=${/,r=([^,]+)/.exec(message.toString())![1]}x,s=${randomBytes(16).toString('base64')},i=${iterations}`) }
            : { ok: false },
        ),
      );
      const conn = await connection(broker);
      const started = performance.now();
      const failure = await failureOf(authenticate(conn, await apiVersions(conn), { mechanism: 'scram-sha-512', username: 'soma', password: 'pw' }));
      expect(failure).toMatchObject({ kind: 'sasl', message: `SASL SCRAM-SHA-512 authentication failed: the server asks for ${iterations} iterations, outside Kafka's 4096-16384` });
      expect(performance.now() - started).toBeLessThan(200);
    }
  });

  it('a mechanism the broker does not offer is named with those it does', async () => {
    const broker = await double(saslBroker('PLAIN', scramServer('sha256', 'pw')));
    const conn = await connection(broker);
    const failure = await failureOf(authenticate(conn, await apiVersions(conn), { mechanism: 'scram-sha-512', username: 'soma', password: 'pw' }));
    expect(failure!.message).toBe('SASL SCRAM-SHA-512 authentication failed: the broker offers PLAIN (UNSUPPORTED_SASL_MECHANISM)');
  });

  it('through the client, a refused password fails the session naming the user, and the password appears nowhere', async () => {
    const broker = await double(saslBroker('SCRAM-SHA-256', scramServer('sha256', 'right-pass')));
    const ctx = { signal: new AbortController().signal, timeoutMs: 3000 } as CheckContext;
    const session = await openKafka(
      { seeds: [broker], clientId: 'soma-verify', sasl: { mechanism: 'scram-sha-256', username: 'soma', password: 'hunter2-wrong' } },
      ctx,
    );
    const failure = await failureOf(session.describe(false));
    await session.close();
    expect(failure!.message).toMatch(/^authentication failed for user soma \(SASL scram-sha-256\) on 127\.0\.0\.1:\d+: /);
    expect(JSON.stringify(failure)).not.toContain('hunter2');
  });
});

/** A Metadata v8 answer: throttle, brokers with racks, cluster id, controller, topics with leader epochs, offline replicas and authorized operations. */
function metadataV8(topics: Array<{ name: string; partitions: number[][] }>, port: number) {
  return new Out()
    .int32(0)
    .array([1, 2], (o, id) => o.int32(id).string('127.0.0.1').int32(port).string(`rack-${id}`))
    .string('cluster-xyz')
    .int32(2)
    .array(topics, (o, t) =>
      o
        .int16(0)
        .string(t.name)
        .int8(0)
        .array(t.partitions, (p, replicas) =>
          p.int16(0).int32(t.partitions.indexOf(replicas)).int32(replicas[0]!).int32(7).array(replicas, (r, n) => r.int32(n)).array(replicas.slice(0, 1), (r, n) => r.int32(n)).array([], () => {}),
        )
        .int32(0),
    )
    .int32(0)
    .buffer();
}

describe('Metadata', () => {
  it('v8 is read field by field, and the request names no topic and allows no creation', async () => {
    const seen: Request[] = [];
    let port = 0;
    const broker = await double((req) => {
      seen.push(req);
      if (req.apiKey === API_KEY.ApiVersions) return versionsAnswer({ [API_KEY.Metadata]: 12 });
      return metadataV8([{ name: 'audit.events', partitions: [[1, 2], [2, 1], [1, 2]] }], port);
    });
    port = broker.port;
    const conn = await connection(broker);
    const answer = await metadata(conn, await apiVersions(conn));
    conn.close();
    expect(seen[1]).toMatchObject({ apiKey: API_KEY.Metadata, apiVersion: 8 });
    // null topic array (all topics), allow_auto_topic_creation false, no authorized operations
    expect([...seen[1]!.body]).toEqual([0xff, 0xff, 0xff, 0xff, 0, 0, 0]);
    expect(answer).toEqual({
      clusterId: 'cluster-xyz',
      controller: 2,
      brokers: [
        { id: 1, host: '127.0.0.1', port },
        { id: 2, host: '127.0.0.1', port },
      ],
      topics: [
        {
          name: 'audit.events',
          partitions: [
            { partitionId: 0, leader: 1, replicas: [1, 2], isr: [1] },
            { partitionId: 1, leader: 2, replicas: [2, 1], isr: [2] },
            { partitionId: 2, leader: 1, replicas: [1, 2], isr: [1] },
          ],
        },
      ],
    });
  });

  it('a 4 MiB answer dripped in 1 KiB writes is read whole', async () => {
    let port = 0;
    const topics = Array.from({ length: 4000 }, (_, i) => ({ name: `topic-${String(i).padStart(5, '0')}-${'x'.repeat(200)}`, partitions: Array.from({ length: 20 }, () => [1, 2]) }));
    const broker = await double((req) => (req.apiKey === API_KEY.ApiVersions ? versionsAnswer({ [API_KEY.Metadata]: 8 }) : metadataV8(topics, port)), { chunk: 1024 });
    port = broker.port;
    const conn = await connection(broker, 20_000);
    const answer = await metadata(conn, await apiVersions(conn));
    conn.close();
    expect(answer.topics).toHaveLength(4000);
    expect(answer.topics[3999]!.partitions).toHaveLength(20);
  });

  it('answers dripped one byte at a time are read', async () => {
    const broker = await double((req) => (req.apiKey === API_KEY.ApiVersions ? versionsAnswer({ [API_KEY.Metadata]: 1 }) : new Out().array([], () => {}).int32(5).array([], () => {}).buffer()), { chunk: 1 });
    const conn = await connection(broker);
    const answer = await metadata(conn, await apiVersions(conn));
    conn.close();
    expect(answer).toEqual({ clusterId: null, controller: 5, brokers: [], topics: [] });
  });

  it('an answer shorter than its fields is malformed, never read past', async () => {
    const broker = await double((req) => (req.apiKey === API_KEY.ApiVersions ? versionsAnswer({ [API_KEY.Metadata]: 1 }) : new Out().int32(1).int32(1).string('host').buffer()));
    const conn = await connection(broker);
    const failure = await failureOf(metadata(conn, await apiVersions(conn)));
    expect(failure).toMatchObject({ kind: 'malformed', message: 'an answer shorter than its fields' });
  });

  it('an array count of two billion in a small answer is malformed at once, not a loop or an allocation', async () => {
    const broker = await double((req) => (req.apiKey === API_KEY.ApiVersions ? versionsAnswer({ [API_KEY.Metadata]: 1 }) : new Out().int32(2_000_000_000).int32(0).buffer()));
    const conn = await connection(broker);
    const started = performance.now();
    const failure = await failureOf(metadata(conn, await apiVersions(conn)));
    expect(failure).toMatchObject({ kind: 'malformed', message: 'an array longer than the answer' });
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('keeps the error a broker answers for a topic, and reads a negative count other than -1 as malformed', async () => {
    const erring = await double((req) =>
      req.apiKey === API_KEY.ApiVersions
        ? versionsAnswer({ [API_KEY.Metadata]: 1 })
        : new Out().array([], () => {}).int32(1).array(['audit.events'], (o, name) => o.int16(29).string(name).int8(0).array([], () => {})).buffer(),
    );
    const a = await connection(erring);
    expect((await metadata(a, await apiVersions(a))).topics).toEqual([{ name: 'audit.events', error: 'TOPIC_AUTHORIZATION_FAILED', partitions: [] }]);
    a.close();
    const negative = await double((req) => (req.apiKey === API_KEY.ApiVersions ? versionsAnswer({ [API_KEY.Metadata]: 1 }) : new Out().int32(-5).buffer()));
    const b = await connection(negative);
    expect(await failureOf(metadata(b, await apiVersions(b)))).toMatchObject({ kind: 'malformed', message: 'an array of -5 items' });
  });

  it('a broker that never answers fails the request after its timeout, and the connection with it', async () => {
    const broker = await double((req) => (req.apiKey === API_KEY.ApiVersions ? versionsAnswer({ [API_KEY.Metadata]: 1 }) : undefined));
    const conn = await connection(broker, 300);
    const versions: ApiVersions = await apiVersions(conn);
    const started = performance.now();
    const failure = await failureOf(metadata(conn, versions));
    expect(failure).toMatchObject({ kind: 'timeout', message: 'Request timed out' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(await failureOf(metadata(conn, versions))).toBe(failure);
  });
});

describe('framing, without the guard of the check\'s sockets', () => {
  for (const size of [2, -1, 64 * 1024 * 1024]) {
    it(`an answer announcing ${size} bytes is malformed at once, the connection closed`, async () => {
      const server = createServer((socket) => socket.once('data', () => socket.write(new Out().int32(size).int16(0).buffer())));
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const conn = await connection({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
      expect(await failureOf(apiVersions(conn))).toMatchObject({ kind: 'malformed', message: `an answer of ${size} bytes` });
    });
  }
});

describe('ListGroups', () => {
  it('v2 is read; a broker without it says so', async () => {
    const withGroups = await double((req) =>
      req.apiKey === API_KEY.ApiVersions
        ? versionsAnswer({ [API_KEY.ListGroups]: 4 })
        : new Out().int32(0).int16(0).array(['conversation-worker', 'tool-executor'], (o, g) => o.string(g).string('consumer')).buffer(),
    );
    const without = await double(() => versionsAnswer({ [API_KEY.Metadata]: 1 }));
    const a = await connection(withGroups);
    const b = await connection(without);
    expect(await listGroups(a, await apiVersions(a))).toEqual(['conversation-worker', 'tool-executor']);
    expect(await listGroups(b, await apiVersions(b))).toBeUndefined();
    a.close();
    b.close();
  });

  it('through the client, the groups of every broker of the cluster are listed, each broker asked once', async () => {
    const asked: number[] = [];
    const brokers: Array<{ host: string; port: number }> = [];
    const broker = (groups: string[], index: number): Handler => (req) => {
      if (req.apiKey === API_KEY.ApiVersions) return versionsAnswer({ [API_KEY.Metadata]: 1, [API_KEY.ListGroups]: 0 });
      if (req.apiKey === API_KEY.ListGroups) {
        asked.push(index);
        return new Out().int16(0).array(groups, (o, g) => o.string(g).string('consumer')).buffer();
      }
      return new Out()
        .array(brokers, (o, b) => o.int32(brokers.indexOf(b) + 1).string(b.host).int32(b.port).string(null))
        .int32(1)
        .array([], () => {})
        .buffer();
    };
    brokers.push(await double(broker(['conversation-worker'], 0)), await double(broker(['tool-executor'], 1)));
    const ctx = { signal: new AbortController().signal, timeoutMs: 3000 } as CheckContext;
    const session = await openKafka({ seeds: [brokers[1]!], clientId: 'soma-verify' }, ctx);
    const facts = await session.describe(true);
    await session.close();
    expect(facts.groups).toEqual({ ids: new Set(['conversation-worker', 'tool-executor']) });
    expect(asked.sort()).toEqual([0, 1]);
    expect(facts.brokers.map((b) => b.id)).toEqual([1, 2]);
  });

  it('asks each listener once, however often the cluster lists it, and refuses to fan out to hundreds', async () => {
    let asked = 0;
    let listed: Array<{ host: string; port: number }> = [];
    const broker = await double((req) => {
      if (req.apiKey === API_KEY.ApiVersions) return versionsAnswer({ [API_KEY.Metadata]: 1, [API_KEY.ListGroups]: 0 });
      if (req.apiKey === API_KEY.ListGroups) return (asked++, new Out().int16(0).array(['g'], (o, g) => o.string(g).string('consumer')).buffer());
      return new Out().array(listed, (o, b) => o.int32(listed.indexOf(b) + 1).string(b.host).int32(b.port).string(null)).int32(1).array([], () => {}).buffer();
    });
    const ctx = { signal: new AbortController().signal, timeoutMs: 3000 } as CheckContext;
    listed = [broker, broker, broker];
    const once = await openKafka({ seeds: [broker], clientId: 'soma-verify' }, ctx);
    expect((await once.describe(true)).groups).toEqual({ ids: new Set(['g']) });
    await once.close();
    expect(asked).toBe(1);

    listed = Array.from({ length: 300 }, (_, i) => ({ host: '127.0.0.1', port: 20_000 + i }));
    const many = await openKafka({ seeds: [broker], clientId: 'soma-verify' }, ctx);
    const failure = await failureOf(many.describe(true));
    await many.close();
    expect(failure!.message).toMatch(/^kafka error while connecting to every advertised broker on 127\.0\.0\.1:\d+: the cluster lists 300 brokers, more than the 256 a check connects to$/);
  });

  // Clients are sent to the advertised addresses, not the seed: one that cannot be reached is a
  // cluster they cannot use (a misconfigured advertised.listeners), whatever the seed answers.
  it('fails a broker whose advertised address cannot be reached, naming it', async () => {
    const dead = await refusedPort();
    let port = 0;
    const broker = await double((req) => {
      if (req.apiKey === API_KEY.ApiVersions) return versionsAnswer({ [API_KEY.Metadata]: 1 });
      const listed = [{ id: 1, host: '127.0.0.1', port }, { id: 2, host: '127.0.0.1', port: dead }];
      return new Out().array(listed, (o, b) => o.int32(b.id).string(b.host).int32(b.port).string(null)).int32(1).array([], () => {}).buffer();
    });
    port = broker.port;
    const ctx = { signal: new AbortController().signal, timeoutMs: 3000 } as CheckContext;
    const session = await openKafka({ seeds: [broker], clientId: 'soma-verify' }, ctx);
    const facts = await session.describe(false);
    await session.close();
    expect(facts.unreachable).toEqual([{ id: 2, address: `127.0.0.1:${dead}`, message: `connection refused on 127.0.0.1:${dead}` }]);
  });
});
