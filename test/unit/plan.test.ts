import * as valibot from 'valibot';
import { describe, expect, it } from 'vitest';
import { KindRegistry } from '../../src/run/kinds.js';
import { buildPlan, selectChecks } from '../../src/run/plan.js';
import { ConfigError } from '../../src/config/issues.js';
import { specsForEnvironment } from '../../src/stack/index.js';
import { environment } from '../../src/config/schema.js';

const kinds = await KindRegistry.create([], process.cwd());
const env = (value: unknown) => valibot.parse(environment, value);
const problemsOf = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

describe('plan', () => {
  it('gives each SomaStack service the checks it needs', async () => {
    const specs = specsForEnvironment(
      env({ services: { somabrain: { url: 'http://b:1' }, sfm: { url: 'http://s:1', metrics: false }, gateway: { url: 'http://g:1' }, opa: { url: 'http://o:1' } } }),
      'staging',
    );
    const plan = await buildPlan(specs, kinds, 5000);
    expect(plan.map((c) => c.id)).toEqual(['somabrain.health', 'somabrain.metrics', 'sfm.health', 'gateway.health', 'opa']);
    expect(plan.find((c) => c.id === 'somabrain.metrics')!.dependsOn).toEqual(['somabrain.health']);
    // SomaBrain gen2 health aggregates 3 s inner checks: it gets 30 s unless told otherwise.
    expect(plan[0]!.timeoutMs).toBe(30_000);
    // deny by default is SomaStack's OPA contract
    expect(plan.at(-1)!.options).toMatchObject({ decisions: [{ path: 'soma/policy/allow', expect: false }] });
  });
  it('validates store options with their kind and reports every problem with its path', async () => {
    const specs = specsForEnvironment(env({ services: { redis: { url: 42 }, qdrant: {} } }), 'staging');
    const problems = await problemsOf(buildPlan(specs, kinds, 5000));
    expect(problems.some((p) => p.startsWith('environments.staging.services.redis.url:'))).toBe(true);
    expect(problems.some((p) => p.startsWith('environments.staging.services.qdrant.url:'))).toBe(true);
  });
  it('rejects unknown kinds, duplicate ids, unknown dependencies and cycles', async () => {
    const specs = specsForEnvironment(
      env({
        checks: [
          { id: 'a', kind: 'tcp', host: 'h', port: 1, dependsOn: ['b'] },
          { id: 'b', kind: 'tcp', host: 'h', port: 1, dependsOn: ['a'] },
          { id: 'b', kind: 'tcp', host: 'h', port: 1 },
          { id: 'c', kind: 'nope' },
          { id: 'd', kind: 'tcp', host: 'h', port: 1, dependsOn: ['zz'] },
          { id: 'd', kind: 'tcp', host: 'h', port: 2, dependsOn: ['yy'] },
        ],
      }),
      'e',
    );
    const problems = await problemsOf(buildPlan(specs, kinds, 5000));
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^environments\.e\.checks\[2\]\.id: "b" is already used/),
        expect.stringMatching(/^environments\.e\.checks\[3\]\.kind: unknown check kind "nope" \(known: http, health/),
        'environments.e.checks[4].dependsOn: unknown check "zz"',
        // the second of two checks with one id is named by its own place
        'environments.e.checks[5].dependsOn: unknown check "yy"',
      ]),
    );
  });
  it('rejects a dependsOn cycle, naming it', async () => {
    const specs = specsForEnvironment(
      env({
        checks: [
          { id: 'a', kind: 'tcp', host: 'h', port: 1, dependsOn: ['b'] },
          { id: 'b', kind: 'tcp', host: 'h', port: 1, dependsOn: ['a'] },
        ],
      }),
      'e',
    );
    expect(await problemsOf(buildPlan(specs, kinds, 5000))).toEqual(['dependsOn forms a cycle: a -> b -> a']);
  });
  it("adds what the named projects' code needs to a store's own list, once each", async () => {
    const specs = specsForEnvironment(
      env({
        services: {
          kafka: { brokers: 'k:9092', topics: [{ name: 'conversation.inbound', partitions: 6 }, 'extra'], requiredBy: ['somaagent01', 'somabrain'] },
          postgres: { dsn: 'postgresql://u@db/x', requiredBy: ['somaagent01'] },
          redis: { url: 'redis://r:6379', requiredBy: ['somabrain'] },
        },
      }),
      's',
    );
    const plan = await buildPlan(specs, kinds, 5000);
    const kafka = plan.find((c) => c.id === 'kafka')!.options as { topics: unknown[]; groups: string[] };
    expect(kafka.topics).toEqual(
      expect.arrayContaining([{ name: 'conversation.inbound', partitions: 6 }, 'extra', 'tool.results', 'cog.segments']),
    );
    expect(kafka.topics).toHaveLength(2 + 5 + 8);
    expect(kafka.groups).toEqual(['conversation-worker', 'tool-executor']);
    expect(plan.find((c) => c.id === 'postgres')!.options).toMatchObject({ tables: ['sessions.events'] });
    expect(plan.find((c) => c.id === 'redis')!.options).not.toHaveProperty('requiredBy');
  });
  it('rejects a project it knows no needs of', async () => {
    expect(() => env({ services: { kafka: { brokers: 'k', requiredBy: ['somafractalmemory'] } } })).toThrow(/got "somafractalmemory"/);
  });
  it('selects by id glob and drops dependencies left out', async () => {
    const specs = specsForEnvironment(env({ services: { somabrain: { url: 'http://b:1' }, sfm: { url: 'http://s:1' } } }), 's');
    const plan = await buildPlan(specs, kinds, 5000);
    expect((await selectChecks(plan, ['*.metrics'], [])).map((c) => [c.id, c.dependsOn])).toEqual([
      ['somabrain.metrics', []],
      ['sfm.metrics', []],
    ]);
    expect((await selectChecks(plan, [], ['sfm.*', 'somabrain.metrics'])).map((c) => c.id)).toEqual(['somabrain.health']);
  });
});
