// Redis peers for the `redis` check's tests.
//
// startRedisPeer(): a Redis without a password. A redis container through testcontainers when a
// Docker engine answers; else the local server on 127.0.0.1:6379 (its maxmemory-policy is
// noeviction; the tests never change its configuration).
//
// startRedisAuthPeer(): a Redis of our own with `requirepass` and maxmemory-policy allkeys-lru
// (seed 003's production policy). A second container when Docker answers; else `redis-server`
// spawned on a free loopback port without persistence, killed by close().
//
// startRedisTlsPeer(): a Redis that speaks only TLS, its certificate signed by a throwaway CA
// (made with openssl, see makeTestCertificates). A container when Docker answers; else
// `redis-server --port 0 --tls-port <free>`.
//
// Either function THROWS when no peer can be had, so the test fails with the reason.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import getPort from 'get-port';
import { announcePeer, dockerAvailable } from '../docker.js';
import { makeTestCertificates, type TestCertificates } from '../certificates.js';

export const REDIS_IMAGE = 'redis:7.2.5-alpine';

export interface RedisPeer {
  provider: 'local' | 'testcontainers';
  host: string;
  port: number;
  password: string | undefined;
  maxmemoryPolicy: string;
  /** redis://[:password@]host:port/db with the peer's password unless overridden (null: none). */
  url(db?: number, override?: { password?: string | null; scheme?: 'redis' | 'rediss' }): string;
  close(): Promise<void>;
}

function peerOf(
  provider: RedisPeer['provider'],
  at: { host: string; port: number; password: string | undefined; maxmemoryPolicy: string },
  close: () => Promise<void>,
): RedisPeer {
  return {
    provider,
    ...at,
    url(db = 0, override = {}) {
      const password = override.password === null ? undefined : (override.password ?? at.password);
      const auth = password === undefined ? '' : `:${encodeURIComponent(password)}@`;
      return `${override.scheme ?? 'redis'}://${auth}${at.host}:${at.port}/${db}`;
    },
    close,
  };
}

/** Sends an inline PING and resolves with the first reply line, or rejects within `timeoutMs`. */
export function rawPing(host: string, port: number, timeoutMs = 2000, tls?: ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls ? tlsConnect({ host, port, ...tls }) : connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once(tls ? 'secureConnect' : 'connect', () => socket.write('PING\r\n'));
    socket.once('data', (chunk) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(chunk.toString('latin1').split('\r\n')[0] ?? '');
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}

/** Polls until the server answers PING (PONG, or NOAUTH when it wants a password). */
async function waitForRedis(host: string, port: number, deadlineMs: number, tls?: ConnectionOptions): Promise<void> {
  const until = Date.now() + deadlineMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const reply = await rawPing(host, port, 1000, tls);
      if (reply === '+PONG' || reply.startsWith('-NOAUTH')) return;
      last = new Error(`unexpected reply ${reply}`);
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`redis on ${host}:${port} not ready within ${deadlineMs} ms: ${(last as Error)?.message}`);
}

async function startContainer(
  args: string[],
  password: string | undefined,
  policy: string,
  certs?: TestCertificates,
): Promise<RedisPeer> {
  const { GenericContainer, Wait } = await import('testcontainers');
  let image = new GenericContainer(REDIS_IMAGE);
  if (certs) {
    image = image.withCopyFilesToContainer([
      { source: certs.caFile, target: '/certs/ca.crt', mode: 0o644 },
      { source: certs.certFile, target: '/certs/server.crt', mode: 0o644 },
      { source: certs.keyFile, target: '/certs/server.key', mode: 0o644 },
    ]);
  }
  const container = await image
    .withCommand(['redis-server', ...args])
    .withExposedPorts(6379)
    .withWaitStrategy(Wait.forLogMessage(/Ready to accept connections/))
    .withStartupTimeout(60_000)
    .start();
  const peer = peerOf(
    'testcontainers',
    { host: container.getHost(), port: container.getMappedPort(6379), password, maxmemoryPolicy: policy },
    async () => void (await container.stop()),
  );
  announcePeer(certs ? 'redis-tls' : password ? 'redis-auth' : 'redis', 'testcontainers', `${REDIS_IMAGE} ${peer.host}:${peer.port}`);
  return peer;
}

export async function startRedisPeer(): Promise<RedisPeer> {
  if (await dockerAvailable()) return startContainer(['--save', '', '--appendonly', 'no'], undefined, 'noeviction');
  try {
    const reply = await rawPing('127.0.0.1', 6379);
    if (reply !== '+PONG') throw new Error(`PING answered ${reply}`);
  } catch (err) {
    throw new Error(`no Redis peer: Docker is unavailable and 127.0.0.1:6379 fails (${(err as Error).message})`, {
      cause: err,
    });
  }
  announcePeer('redis', 'local', '127.0.0.1:6379');
  return peerOf('local', { host: '127.0.0.1', port: 6379, password: undefined, maxmemoryPolicy: 'noeviction' }, async () => {});
}

/** A Redis that wants `password` and evicts with allkeys-lru. */
export async function startRedisAuthPeer(): Promise<RedisPeer & { password: string }> {
  // A password that needs URL encoding, to prove it is neither mangled nor printed.
  const password = `Rp-${randomBytes(9).toString('base64url')}/+@`;
  const policy = 'allkeys-lru';
  const args = ['--requirepass', password, '--maxmemory-policy', policy, '--save', '', '--appendonly', 'no'];
  if (await dockerAvailable()) return { ...(await startContainer(args, password, policy)), password };

  const port = await getPort({ host: '127.0.0.1' });
  const close = await spawnRedisServer(['--port', String(port), '--bind', '127.0.0.1', ...args], port);
  announcePeer('redis-auth', 'local', `redis-server --requirepass on 127.0.0.1:${port}`);
  return { ...peerOf('local', { host: '127.0.0.1', port, password, maxmemoryPolicy: policy }, close), password };
}

/** Spawns redis-server, waits until it answers PING on `port`, and returns how to stop it. */
async function spawnRedisServer(args: string[], port: number, tls?: ConnectionOptions): Promise<() => Promise<void>> {
  // Its own working folder: a replica's full sync writes an RDB file there.
  const dir = mkdtempSync(join(tmpdir(), 'soma-redis-'));
  const proc = spawn('redis-server', [...args, '--dir', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d) => (stderr += d));
  // 'error' without 'exit' when the program cannot be spawned at all.
  const exited = new Promise<void>((resolve) => {
    proc.once('exit', () => resolve());
    proc.once('error', () => resolve());
  });
  const spawnError = new Promise<never>((_, reject) => proc.once('error', reject));
  const close = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.race([waitForRedis('127.0.0.1', port, 10_000, tls), spawnError]);
  } catch (err) {
    await close().catch(() => {});
    throw new Error(`no Redis peer: redis-server on 127.0.0.1:${port} did not start (${(err as Error).message}) ${stderr}`, {
      cause: err,
    });
  }
  return close;
}

export type RedisTlsPeer = RedisPeer & {
  /** The CA that signed the server's certificate. */
  caFile: string;
};

/** A Redis that speaks only TLS (no plain-text port), with a certificate from a throwaway CA. */
export async function startRedisTlsPeer(): Promise<RedisTlsPeer> {
  const certDir = await mkdtemp(join(tmpdir(), 'soma-verify-redis-certs-'));
  const removeCerts = () => rm(certDir, { recursive: true, force: true });
  try {
    const certs = await makeTestCertificates(certDir);
    const tlsArgs = (dir: string, port: number) => [
      '--port', '0', '--tls-port', String(port),
      '--tls-cert-file', join(dir, 'server.crt'), '--tls-key-file', join(dir, 'server.key'),
      '--tls-ca-cert-file', join(dir, 'ca.crt'), '--tls-auth-clients', 'no',
      '--save', '', '--appendonly', 'no',
    ];
    if (await dockerAvailable()) {
      const peer = await startContainer(tlsArgs('/certs', 6379), undefined, 'noeviction', certs);
      return { ...peer, caFile: certs.caFile, close: async () => (await peer.close(), await removeCerts()) };
    }
    const port = await getPort({ host: '127.0.0.1' });
    const stop = await spawnRedisServer(['--bind', '127.0.0.1', ...tlsArgs(certDir, port)], port, {
      ca: await readFile(certs.caFile),
    });
    announcePeer('redis-tls', 'local', `redis-server --tls-port on 127.0.0.1:${port}`);
    const peer = peerOf('local', { host: '127.0.0.1', port, password: undefined, maxmemoryPolicy: 'noeviction' }, async () => {
      await stop();
      await removeCerts();
    });
    return { ...peer, caFile: certs.caFile };
  } catch (err) {
    await removeCerts();
    throw err;
  }
}

export interface RedisReplicationPeers {
  master: RedisPeer;
  /** A replica of `master`, its link up. */
  replica: RedisPeer;
  close(): Promise<void>;
}

/** A master and a replica of it (`--replicaof`), the replica's link to the master up. */
export async function startRedisReplicationPeers(): Promise<RedisReplicationPeers> {
  const plain = ['--save', '', '--appendonly', 'no'];
  if (await dockerAvailable()) {
    const { GenericContainer, Network, Wait } = await import('testcontainers');
    const network = await new Network().start();
    const start = (args: string[], alias: string) =>
      new GenericContainer(REDIS_IMAGE)
        .withNetwork(network)
        .withNetworkAliases(alias)
        .withCommand(['redis-server', ...args])
        .withExposedPorts(6379)
        .withWaitStrategy(Wait.forLogMessage(alias === 'replica' ? /MASTER <-> REPLICA sync: Finished/ : /Ready to accept connections/))
        .withStartupTimeout(60_000)
        .start();
    const masterContainer = await start(plain, 'master');
    const replicaContainer = await start([...plain, '--replicaof', 'master', '6379'], 'replica');
    const of = (c: typeof masterContainer) =>
      peerOf('testcontainers', { host: c.getHost(), port: c.getMappedPort(6379), password: undefined, maxmemoryPolicy: 'noeviction' }, async () => {});
    const [master, replica] = [of(masterContainer), of(replicaContainer)];
    announcePeer('redis-replication', 'testcontainers', `${REDIS_IMAGE} master ${master.port}, replica ${replica.port}`);
    return {
      master,
      replica,
      close: async () => {
        await replicaContainer.stop();
        await masterContainer.stop();
        await network.stop();
      },
    };
  }
  const masterPort = await getPort({ host: '127.0.0.1' });
  const replicaPort = await getPort({ host: '127.0.0.1' });
  const stopMaster = await spawnRedisServer(['--port', String(masterPort), '--bind', '127.0.0.1', ...plain], masterPort);
  let stopReplica: () => Promise<void>;
  try {
    stopReplica = await spawnRedisServer(
      ['--port', String(replicaPort), '--bind', '127.0.0.1', ...plain, '--replicaof', '127.0.0.1', String(masterPort)],
      replicaPort,
    );
    await waitForLink(replicaPort, 10_000);
  } catch (err) {
    await stopMaster();
    throw err;
  }
  announcePeer('redis-replication', 'local', `redis-server master 127.0.0.1:${masterPort}, replica 127.0.0.1:${replicaPort}`);
  const local = (port: number) =>
    peerOf('local', { host: '127.0.0.1', port, password: undefined, maxmemoryPolicy: 'noeviction' }, async () => {});
  return {
    master: local(masterPort),
    replica: local(replicaPort),
    close: async () => {
      await stopReplica();
      await stopMaster();
    },
  };
}

/** Polls INFO replication (inline command) until master_link_status:up. */
async function waitForLink(port: number, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    const info = await new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      let text = '';
      const timer = setTimeout(() => socket.destroy(), 1000);
      socket.once('connect', () => socket.write('INFO replication\r\n'));
      socket.on('data', (d) => {
        text += d;
        if (text.includes('master_link_status')) socket.destroy();
      });
      socket.on('error', () => {});
      socket.once('close', () => {
        clearTimeout(timer);
        resolve(text);
      });
    });
    if (info.includes('master_link_status:up')) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`replica on 127.0.0.1:${port} did not link to its master within ${deadlineMs} ms`);
}
