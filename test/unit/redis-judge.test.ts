// judge() of checks/redis.ts on facts as src/clients/redis.ts reports them: no server.
import { describe, expect, it } from 'vitest';
import { judge } from '../../checks/redis.js';
import { parseInfo, type RedisFacts } from '../../src/clients/redis.js';

const info = (server: string, replication: string, memory: string) => ({
  server: parseInfo(server),
  replication: parseInfo(replication),
  memory: parseInfo(memory),
});
const master = info(
  '# Server\r\nredis_version:7.2.4\r\nredis_mode:standalone\r\n',
  '# Replication\r\nrole:master\r\nconnected_slaves:2\r\n',
  '# Memory\r\nused_memory:1024\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n',
);
const facts = (over: Partial<RedisFacts> = {}): RedisFacts => ({
  host: 'cache', port: 6379, db: 0, tls: false, latencyMs: 0.456, pong: 'PONG', info: master, ...over,
});

describe('redis judge', () => {
  it('passes a master, reporting version, role, policy and replicas', () => {
    const v = judge(facts(), {});
    expect(v).toMatchObject({ status: 'pass', message: 'Redis 7.2.4 on cache:6379 answers PONG (0.46 ms), role master' });
    expect(v.details).toMatchObject({ redisVersion: '7.2.4', mode: 'standalone', role: 'master', maxmemoryPolicy: 'noeviction', maxmemory: 0, usedMemory: 1024, connectedReplicas: 2 });
  });

  it('fails a role or maxmemory-policy other than asked, naming both', () => {
    expect(judge(facts(), { role: 'replica', maxmemoryPolicy: 'allkeys-lru' }).message).toBe(
      'role is master, expected replica; maxmemory-policy is noeviction, expected allkeys-lru',
    );
    expect(judge(facts(), { maxmemoryPolicy: 'NoEviction' }).status).toBe('pass');
  });

  it('reads a slave as a replica and warns when its link to the master is down', () => {
    const replica = info('redis_version:7.2.4\r\n', 'role:slave\r\nmaster_host:10.0.0.1\r\nmaster_port:6379\r\nmaster_link_status:down\r\n', '');
    const v = judge(facts({ info: replica }), { role: 'replica' });
    expect(v).toMatchObject({ status: 'warn', message: 'replica cache:6379 has its link to master 10.0.0.1:6379 down' });
    expect(v.details).toMatchObject({ role: 'replica', masterHost: '10.0.0.1:6379', masterLinkStatus: 'down' });
  });

  it('fails a Sentinel, which is no data server', () => {
    const sentinel = info('redis_version:7.2.4\r\nredis_mode:sentinel\r\n', 'role:master\r\n', '');
    expect(judge(facts({ info: sentinel }), {}).message).toBe('cache:6379 is a Redis Sentinel, not a data server');
  });

  it('warns when a password is given to a server that needs none', () => {
    expect(judge(facts({ passwordNotNeeded: true }), {})).toMatchObject({ status: 'warn', message: 'a password is given but cache:6379 requires none' });
  });

  it('fails a PING answered with anything but PONG', () => {
    expect(judge(facts({ pong: 'hello', info: undefined }), {}).message).toBe('PING on cache:6379 answered "hello", not PONG');
  });

  it('reports the client failure as it is; a setup failure without details', () => {
    expect(judge(facts({ failure: { stage: 'exchange', message: 'connection refused on cache:6379' } }), {})).toMatchObject({
      status: 'fail', message: 'connection refused on cache:6379', details: { host: 'cache', port: 6379, db: 0, tls: false },
    });
    expect(judge(facts({ failure: { stage: 'setup', message: 'cannot read tls.caFile: x' } }), {})).toEqual({ status: 'fail', message: 'cannot read tls.caFile: x' });
  });
});
