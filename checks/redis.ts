// The `redis` check: does Redis answer PING, in the expected role and memory policy?
// src/clients/redis.ts speaks RESP (connect, AUTH, SELECT, PING, INFO) and reads the facts;
// `judge` compares them with the options. Nothing is written.
import * as v from 'valibot';
import { defineCheck, type CheckOutcome } from '../src/check.js';
import { tlsOption } from '../src/check-options.js';
import { maskCredentials } from '../src/redact.js';
import { parseRedisUrl, queryRedis, redisUrlProblem, type RedisEndpoint, type RedisFacts } from '../src/clients/redis.js';

const options = v.pipe(
  v.strictObject({
    /** redis://[user:password@]host[:port][/db] or rediss:// for TLS. */
    // The message names what is wrong without echoing the URL, which may hold a password.
    url: v.pipe(v.string(), v.check((url) => !redisUrlProblem(url), (issue) => redisUrlProblem(issue.input)!)),
    /** Overrides the password of the URL. */
    password: v.optional(v.string()),
    /** Overrides the db index of the URL. */
    db: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
    role: v.optional(v.picklist(['master', 'replica'])),
    maxmemoryPolicy: v.optional(v.pipe(v.string(), v.minLength(1))),
    tls: v.optional(tlsOption),
  }),
  v.forward(v.check((o) => !o.tls || /^rediss:/i.test(o.url), 'tls options need a rediss:// url'), ['tls']),
);
export type RedisCheckOptions = v.InferOutput<typeof options>;

/** The endpoint with the options' overrides applied (options win over the URL). */
function endpointOf(o: RedisCheckOptions): RedisEndpoint {
  const ep = parseRedisUrl(o.url);
  return { ...ep, password: o.password ?? ep.password, db: o.db ?? ep.db };
}

/** The verdict on what the server said; pure, so it is tested without a server. */
export function judge(f: RedisFacts, o: Pick<RedisCheckOptions, 'role' | 'maxmemoryPolicy'>): CheckOutcome {
  const at = `${f.host}:${f.port}`;
  const details: Record<string, unknown> = { host: f.host, port: f.port, db: f.db, tls: f.tls };
  if (f.latencyMs !== undefined) details.latencyMs = Math.round(f.latencyMs * 100) / 100;
  if (f.failure) {
    return f.failure.stage === 'setup'
      ? { status: 'fail', message: f.failure.message }
      : { status: 'fail', message: f.failure.message, details, unanswered: f.failure.unanswered };
  }
  if (f.pong !== 'PONG') return { status: 'fail', message: `PING on ${at} answered "${String(f.pong)}", not PONG`, details };
  const { server, replication, memory } = f.info!;
  const version = server.get('redis_version') ?? server.get('valkey_version');
  const mode = server.get('redis_mode') ?? server.get('server_mode');
  const rawRole = replication.get('role');
  const role = rawRole === 'slave' ? 'replica' : rawRole;
  const policy = memory.get('maxmemory_policy');
  Object.assign(details, {
    redisVersion: version,
    mode,
    role,
    maxmemoryPolicy: policy,
    maxmemory: memory.has('maxmemory') ? Number(memory.get('maxmemory')) : undefined,
    usedMemory: memory.has('used_memory') ? Number(memory.get('used_memory')) : undefined,
  });
  if (role === 'master') details.connectedReplicas = Number(replication.get('connected_slaves') ?? 0);
  if (role === 'replica') {
    details.masterHost = `${replication.get('master_host')}:${replication.get('master_port')}`;
    details.masterLinkStatus = replication.get('master_link_status');
  }

  const problems: string[] = [];
  if (mode === 'sentinel') problems.push(`${at} is a Redis Sentinel, not a data server`);
  if (o.role && role !== o.role) problems.push(`role is ${role ?? 'unknown'}, expected ${o.role}`);
  if (o.maxmemoryPolicy && policy?.toLowerCase() !== o.maxmemoryPolicy.toLowerCase()) {
    problems.push(`maxmemory-policy is ${policy ?? 'unknown'}, expected ${o.maxmemoryPolicy}`);
  }
  if (problems.length) return { status: 'fail', message: problems.join('; '), details };

  if (role === 'replica' && details.masterLinkStatus !== 'up') {
    return { status: 'warn', message: `replica ${at} has its link to master ${details.masterHost} down`, details };
  }
  if (f.passwordNotNeeded) return { status: 'warn', message: `a password is given but ${at} requires none`, details };
  return {
    status: 'pass',
    message: `Redis ${version ?? '?'} on ${at} answers PONG (${details.latencyMs} ms), role ${role ?? 'unknown'}`,
    details,
  };
}

export default defineCheck<RedisCheckOptions>({
  kind: 'redis',
  options,
  target: (o) => `${maskCredentials(o.url.replace(/\/\d*$/, ''))}/${endpointOf(o).db}`,
  async run(o, ctx) {
    return judge(await queryRedis(endpointOf(o), o.tls, ctx), o);
  },
});
