// The `redis` check against real Redis servers (the local one or a container, and a redis-server
// of our own with a password and allkeys-lru) and against misbehaving peers. Each run goes
// through the compiled check in a child process, which must exit by itself (no open handle).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCheck, type ChildOutcome, expectFailure as expectFailureWithin, expectNoSecret } from '../../support/run-check.js';
import { refusedPort, silentServer, type TcpPeer } from '../../support/faults.js';
import { startPostgresPeer, type PostgresPeer } from '../../support/peers/postgres.js';
import {
  startRedisAuthPeer,
  startRedisPeer,
  startRedisReplicationPeers,
  startRedisTlsPeer,
  type RedisPeer,
  type RedisReplicationPeers,
  type RedisTlsPeer,
} from '../../support/peers/redis.js';

const TIMEOUT_MS = 3000;
/** Start-up of the child process and the driver import, on a busy 2-core machine. */

let peer: RedisPeer;
let authPeer: RedisPeer & { password: string };

const check = (options: Record<string, unknown>, timeoutMs = TIMEOUT_MS) => runCheck('redis', options, { timeoutMs });

const expectFailure = (result: ChildOutcome, cause: RegExp, timeoutMs = TIMEOUT_MS) => expectFailureWithin(result, cause, timeoutMs);

/** Nothing on the child's stderr: no driver warning, no unhandled error. */
const expectQuietStderr = (result: ChildOutcome) => expect(result.stderr.trim()).toBe('');

beforeAll(async () => {
  [peer, authPeer] = await Promise.all([startRedisPeer(), startRedisAuthPeer()]);
});
afterAll(async () => {
  await peer?.close();
  await authPeer?.close();
});

describe('redis check against a real server', () => {
  it('passes and reports version, mode, role master, policy and latency', async () => {
    const result = await check({ url: peer.url() });
    expect(result.status, result.message).toBe('pass');
    expect(result.details?.redisVersion).toMatch(/^\d+\.\d+/);
    expect(result.details?.mode).toBe('standalone');
    expect(result.details?.role).toBe('master');
    expect(result.details?.maxmemoryPolicy).toBe(peer.maxmemoryPolicy);
    expect(typeof result.details?.latencyMs).toBe('number');
    expect(result.message).toMatch(/answers PONG .*role master/);
    expectQuietStderr(result);
  });

  it('passes role: master on a master', async () => {
    const result = await check({ url: peer.url(), role: 'master' });
    expect(result.status, result.message).toBe('pass');
  });

  it('fails role: replica on a master, naming the actual role', async () => {
    const result = await check({ url: peer.url(), role: 'replica' });
    expectFailure(result, /^role is master, expected replica$/);
  });

  it('fails a maxmemoryPolicy mismatch, naming the actual policy', async () => {
    const result = await check({ url: peer.url(), maxmemoryPolicy: 'allkeys-lru' });
    expectFailure(result, new RegExp(`^maxmemory-policy is ${peer.maxmemoryPolicy}, expected allkeys-lru$`));
  });

  it('selects a db index from the url and from the db option', async () => {
    const fromUrl = await check({ url: peer.url(3) });
    expect(fromUrl.status, fromUrl.message).toBe('pass');
    expect(fromUrl.details?.db).toBe(3);
    const fromOption = await check({ url: peer.url(3), db: 5 });
    expect(fromOption.status, fromOption.message).toBe('pass');
    expect(fromOption.details?.db).toBe(5);
  });

  it('fails clearly for a db index out of range', async () => {
    const result = await check({ url: peer.url(), db: 4096 });
    expectFailure(result, /^db index 4096 is out of range on /);
  });

  it('warns when a password is given to a server that requires none, without printing it', async () => {
    const given = `Given-${randomBytes(6).toString('hex')}`;
    const result = await check({ url: peer.url(0, { password: given }) });
    expect(result.status, result.message).toBe('warn');
    expect(result.message).toMatch(/a password is given but .+ requires none/);
    expectNoSecret(result.output, given);
  });

  it('fails rediss:// against a plain-text port with a TLS message within its timeout', async () => {
    const result = await check({ url: peer.url(0, { scheme: 'rediss' }), tls: { insecure: true } }, 1500);
    expectFailure(result, /TLS/, 1500);
    expectQuietStderr(result);
  });
});

describe('redis check against a password-protected server (requirepass, allkeys-lru)', () => {
  it('passes with the right password in the url, which never appears in the output', async () => {
    const result = await check({ url: authPeer.url() });
    expect(result.status, result.message).toBe('pass');
    expectNoSecret(result.output, authPeer.password);
    expect(result.target).toContain(':***@');
  });

  it('passes with the right password given as the password option', async () => {
    const result = await check({ url: authPeer.url(0, { password: null }), password: authPeer.password });
    expect(result.status, result.message).toBe('pass');
    expectNoSecret(result.output, authPeer.password);
  });

  it('passes maxmemoryPolicy: allkeys-lru on a server configured with it', async () => {
    const result = await check({ url: authPeer.url(), maxmemoryPolicy: 'allkeys-lru', role: 'master' });
    expect(result.status, result.message).toBe('pass');
    expect(result.details?.maxmemoryPolicy).toBe('allkeys-lru');
  });

  it('fails with "authentication failed" for a wrong password and never prints it', async () => {
    const wrong = `Wrong-${randomBytes(6).toString('hex')}`;
    const result = await check({ url: authPeer.url(0, { password: wrong }) });
    expectFailure(result, /^authentication failed for user default on /);
    expectNoSecret(result.output, wrong);
    expectNoSecret(result.output, authPeer.password);
    expectQuietStderr(result);
  });

  it('fails with "authentication failed" when no password is given', async () => {
    const result = await check({ url: authPeer.url(0, { password: null }) });
    expectFailure(result, /^authentication failed: .+ requires a password and none was given$/);
  });

  it('fails with "authentication failed" before selecting a db when no password is given', async () => {
    const result = await check({ url: authPeer.url(2, { password: null }) });
    expectFailure(result, /^authentication failed: .+ requires a password and none was given$/);
  });
});

describe('redis check against a master and its replica', () => {
  let pair: RedisReplicationPeers;
  beforeAll(async () => {
    pair = await startRedisReplicationPeers();
  });
  afterAll(async () => {
    await pair?.close();
  });

  it('passes role: replica on a replica whose link to the master is up', async () => {
    const result = await check({ url: pair.replica.url(), role: 'replica' });
    expect(result.status, result.message).toBe('pass');
    expect(result.details?.role).toBe('replica');
    expect(result.details?.masterLinkStatus).toBe('up');
  });

  it('fails role: master on a replica, naming the actual role', async () => {
    const result = await check({ url: pair.replica.url(), role: 'master' });
    expectFailure(result, /^role is replica, expected master$/);
  });

  it('reports the connected replicas of a master', async () => {
    const result = await check({ url: pair.master.url(), role: 'master' });
    expect(result.status, result.message).toBe('pass');
    expect(result.details?.connectedReplicas).toBe(1);
  });
});

describe('redis check against a TLS-only server (certificate from a throwaway CA)', () => {
  let tlsPeer: RedisTlsPeer;
  beforeAll(async () => {
    tlsPeer = await startRedisTlsPeer();
  });
  afterAll(async () => {
    await tlsPeer?.close();
  });

  it('passes rediss:// with tls.caFile naming the CA', async () => {
    const result = await check({ url: tlsPeer.url(0, { scheme: 'rediss' }), tls: { caFile: tlsPeer.caFile } });
    expect(result.status, result.message).toBe('pass');
    expect(result.details?.tls).toBe(true);
  });

  it('passes rediss:// with tls.insecure (no certificate verification)', async () => {
    const result = await check({ url: tlsPeer.url(0, { scheme: 'rediss' }), tls: { insecure: true } });
    expect(result.status, result.message).toBe('pass');
  });

  it('fails rediss:// without the CA, naming the certificate problem', async () => {
    const result = await check({ url: tlsPeer.url(0, { scheme: 'rediss' }) });
    expectFailure(result, /^TLS certificate check failed for .+certificate/i);
    expectQuietStderr(result);
  });

  it('fails redis:// (plain text) against the TLS-only port with a TLS message', async () => {
    const result = await check({ url: tlsPeer.url() });
    expectFailure(result, /TLS/);
    expect(result.message).toMatch(/rediss:\/\//);
    expectQuietStderr(result);
  });

  it('fails clearly when tls.caFile cannot be read', async () => {
    const result = await check({ url: tlsPeer.url(0, { scheme: 'rediss' }), tls: { caFile: '/nonexistent/ca.pem' } });
    expectFailure(result, /^cannot read tls\.caFile: .*ENOENT/);
  });
});

describe('redis check against faulty peers', () => {
  let silent: TcpPeer;
  let http: Server;
  let httpPort: number;
  let postgres: PostgresPeer;

  beforeAll(async () => {
    silent = await silentServer();
    http = createServer((_req, res) => res.end('hello'));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    httpPort = (http.address() as AddressInfo).port;
    postgres = await startPostgresPeer();
  });
  afterAll(async () => {
    await silent?.close();
    http?.closeAllConnections();
    await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()));
    await postgres?.close();
  });

  it('fails with "connection refused" on a port nobody listens on', async () => {
    const port = await refusedPort();
    const result = await check({ url: `redis://:secret-pw@127.0.0.1:${port}/0` });
    expectFailure(result, new RegExp(`^connection refused on 127\\.0\\.0\\.1:${port}$`));
    expectNoSecret(result.output, 'secret-pw');
    expectQuietStderr(result);
  });

  it('fails with "no answer" within its timeout on a port that accepts and never answers', async () => {
    const result = await check({ url: `redis://:secret-pw@127.0.0.1:${silent.port}/0` }, 1500);
    expectFailure(result, new RegExp(`no answer from 127\\.0\\.0\\.1:${silent.port} to AUTH within 1500 ms`), 1500);
    expectNoSecret(result.output, 'secret-pw');
    expectQuietStderr(result);
  });

  it('fails with "not a Redis server" against PostgreSQL', async () => {
    const result = await check({ url: `redis://${postgres.host}:${postgres.port}` });
    expectFailure(result, new RegExp(`^not a Redis server on ${postgres.host.replace(/\./g, '\\.')}:${postgres.port}`));
    expectQuietStderr(result);
  });

  it('fails with "not a Redis server" against an HTTP server, quoting its answer', async () => {
    const result = await check({ url: `redis://127.0.0.1:${httpPort}` });
    expectFailure(result, new RegExp(`^not a Redis server on 127\\.0\\.0\\.1:${httpPort} \\(it answered "HTTP/1\\.1 400`));
    expectQuietStderr(result);
  });

  it('rejects a url that is not redis:// or rediss:// without echoing it', async () => {
    const result = await check({ url: 'http://:secret-pw@cache:6379' });
    expect(result.invalid).toEqual(['url must start with redis:// or rediss://']);
    expectNoSecret(result.output, 'secret-pw');
  });

  it('rejects tls options on a plain redis:// url', async () => {
    const result = await check({ url: 'redis://cache:6379', tls: { insecure: true } });
    expect(result.invalid).toEqual(['tls options need a rediss:// url']);
  });
});
