import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localTopology, mapToHost } from '../../src/stack/local.js';
import { ConfigError } from '../../src/config/issues.js';

const dirWith = (dotenv?: string) => {
  const dir = mkdtempSync(join(tmpdir(), 'soma-local-'));
  if (dotenv !== undefined) writeFileSync(join(dir, '.env'), dotenv);
  return dir;
};

describe('mapToHost', () => {
  it('maps a compose container host to 127.0.0.1 on the published port, keeping credentials', () => {
    expect(mapToHost('postgresql://soma:pw@somabrain_postgres:5432/somabrain', 'postgresql', 30106)).toEqual({
      value: 'postgresql://soma:pw@127.0.0.1:30106/somabrain',
      note: 'container host somabrain_postgres reached at 127.0.0.1:30106',
    });
  });
  it('maps every broker of a list and strips nothing else', () => {
    expect(mapToHost('kafka://somabrain_kafka:9092', 'kafka', 30102).value).toBe('kafka://127.0.0.1:30102');
    expect(mapToHost('kafka:9092,broker.example.com:9092', 'kafka', 20000).value).toBe('127.0.0.1:20000,broker.example.com:9092');
  });
  it('keeps real hosts and maps host.docker.internal to loopback on the same port', () => {
    expect(mapToHost('redis://cache.internal.example:6379/0', 'redis', 1).value).toBe('redis://cache.internal.example:6379/0');
    expect(mapToHost('http://host.docker.internal:9595', 'http', 1).value).toBe('http://127.0.0.1:9595');
  });
});

describe('localTopology', () => {
  it('uses the documented default ports with no .env', async () => {
    const t = await localTopology(dirWith(), {});
    expect(t.project).toBeUndefined();
    expect(t.services).toMatchObject({
      somabrain: { url: 'http://127.0.0.1:30101' },
      sfm: { url: 'http://127.0.0.1:9595' },
      gateway: { url: 'http://127.0.0.1:20016' },
      postgres: { dsn: 'postgresql://postgres@127.0.0.1:30106/postgres' },
      redis: { url: 'redis://127.0.0.1:30100' },
      kafka: { brokers: '127.0.0.1:30102' },
      qdrant: { url: 'http://127.0.0.1:40023' },
      opa: { url: 'http://127.0.0.1:30104' },
    });
  });
  it("reads an SFM project's .env: its own Postgres and Redis keys, not SomaBrain's", async () => {
    const t = await localTopology(dirWith('API_PORT=40020\nPOSTGRES_HOST_PORT=40121\nREDIS_HOST_PORT=40122\nQDRANT_HOST_PORT=40123\nSOMA_API_TOKEN=tok-sfm-1\n'), {});
    expect(t.project).toBe('somafractalmemory');
    expect(t.services).toMatchObject({
      sfm: { url: 'http://127.0.0.1:40020', token: 'tok-sfm-1' },
      postgres: { dsn: 'postgresql://postgres@127.0.0.1:40121/postgres' },
      redis: { url: 'redis://127.0.0.1:40122' },
      qdrant: { url: 'http://127.0.0.1:40123' },
      kafka: { brokers: '127.0.0.1:30102' },
    });
    expect(t.secrets).toContain('tok-sfm-1');
  });
  it('maps container DSNs of a SomaBrain .env to the published ports; the process environment wins', async () => {
    const dir = dirWith(
      'SOMABRAIN_HOST_PORT=30111\nPOSTGRES_HOST_PORT=30116\nSOMABRAIN_POSTGRES_DSN=postgresql://soma:pw@somabrain_postgres:5432/somabrain\nSOMABRAIN_KAFKA_URL=kafka://somabrain_kafka:9092\nKAFKA_BROKER_HOST_PORT=30112\n',
    );
    const t = await localTopology(dir, { SOMABRAIN_HOST_PORT: '30999' });
    expect(t.project).toBe('somabrain');
    expect(t.services).toMatchObject({
      somabrain: { url: 'http://127.0.0.1:30999' },
      postgres: { dsn: 'postgresql://soma:pw@127.0.0.1:30116/somabrain' },
      kafka: { brokers: 'kafka://127.0.0.1:30112' },
    });
    expect(t.sources.postgres).toBe('SOMABRAIN_POSTGRES_DSN (container host somabrain_postgres reached at 127.0.0.1:30116)');
  });
  it("asks the project's own stores for what its code needs; with no project, for nothing", async () => {
    const agent = await localTopology(dirWith('GATEWAY_PORT=20016\nKAFKA_PORT=20000\nPOSTGRES_PORT=20002\n'), {});
    expect(agent.project).toBe('somaagent01');
    expect(agent.services).toMatchObject({ kafka: { requiredBy: ['somaagent01'] }, postgres: { requiredBy: ['somaagent01'] } });
    const none = await localTopology(dirWith(), {});
    expect(none.services.kafka).not.toHaveProperty('requiredBy');
  });
  it('refuses a port that is not a number, naming the key', async () => {
    await expect(localTopology(dirWith('GATEWAY_PORT=abc\n'), {})).rejects.toThrow(ConfigError);
    await expect(localTopology(dirWith('GATEWAY_PORT=abc\n'), {})).rejects.toThrow(/GATEWAY_PORT=abc: not a port/);
  });
  it('refuses a malformed .env naming the line', async () => {
    await expect(localTopology(dirWith('# ok\nGATEWAY_PORT=1\nthis is not an assignment\n'), {})).rejects.toThrow(/\.env: line 3/);
  });
});
