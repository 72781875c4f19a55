// The plan: the default ports.json, overrides from the working directory, the PORT_POOL range
// move of somaagent01, and project detection from .env keys.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applyPoolEnv, detectProject, loadPlan, PlanError } from '../../src/ports/plan.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});
async function cwdWith(plan?: unknown): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'soma-plan-'));
  dirs.push(dir);
  if (plan !== undefined) await writeFile(join(dir, 'ports.json'), typeof plan === 'string' ? plan : JSON.stringify(plan));
  return dir;
}

describe('loadPlan', () => {
  it('reads the default plan of contracts section 5', async () => {
    const plan = await loadPlan(await cwdWith());
    expect(plan.projects.somaagent01?.range).toEqual([20000, 20199]);
    expect(plan.projects.somaagent01?.services.gateway).toEqual({ key: 'GATEWAY_PORT', preferred: 20016 });
    expect(plan.projects.somabrain?.services.redis).toEqual({ key: 'REDIS_HOST_PORT', preferred: 30100 });
    expect(plan.projects.somafractalmemory?.services.api?.note).toContain('9595');
    const services = Object.values(plan.projects).flatMap((p) => Object.values(p.services));
    expect(services).toHaveLength(12 + 9 + 4);
  });

  it('an override moves a range (preferred ports follow), changes, adds and removes services', async () => {
    const plan = await loadPlan(
      await cwdWith({
        projects: {
          somabrain: { range: [31000, 31199], services: { 'schema-registry': null, extra: { key: 'EXTRA_PORT', preferred: 31150 } } },
          somafractalmemory: { services: { api: { preferred: 40030 } } },
        },
      }),
    );
    expect(plan.projects.somabrain?.services.redis?.preferred).toBe(31100);
    expect(plan.projects.somabrain?.services['schema-registry']).toBeUndefined();
    expect(plan.projects.somabrain?.services.extra).toEqual({ key: 'EXTRA_PORT', preferred: 31150 });
    expect(plan.projects.somafractalmemory?.services.api?.preferred).toBe(40030);
    expect(plan.sources).toHaveLength(2);
  });

  it('rejects a broken override with a message naming the file and the field', async () => {
    await expect(loadPlan(await cwdWith('{ not json'))).rejects.toThrow(PlanError);
    await expect(loadPlan(await cwdWith({ projects: { somabrain: { services: { redis: { preferred: 80 } } } } }))).rejects.toThrow(
      /ports\.json: projects\.somabrain\.services\.redis\.preferred must be a port within 1024-65535/,
    );
    await expect(loadPlan(await cwdWith({ projects: { somabrain: { services: { redis: { preferred: 30101 } } } } }))).rejects.toThrow(/both prefer 30101/);
  });
});

describe('applyPoolEnv and detectProject', () => {
  it('PORT_POOL_START / PORT_POOL_MAX move somaagent01 only', async () => {
    const plan = applyPoolEnv(await loadPlan(await cwdWith()), { PORT_POOL_START: '21000', PORT_POOL_MAX: '21099' });
    expect(plan.projects.somaagent01?.range).toEqual([21000, 21099]);
    expect(plan.projects.somaagent01?.services.gateway?.preferred).toBe(21016);
    expect(plan.projects.somabrain?.range).toEqual([30000, 30199]);
    expect(() => applyPoolEnv(plan, { PORT_POOL_START: 'abc' })).toThrow('PORT_POOL_START=abc is not a port');
  });

  it('detects the project from the keys it alone uses; shared keys alone are ambiguous', async () => {
    const plan = await loadPlan(await cwdWith());
    expect(detectProject(plan, ['GATEWAY_PORT', 'PASSWORD'])).toBe('somaagent01');
    expect(detectProject(plan, ['POSTGRES_HOST_PORT', 'SOMABRAIN_HOST_PORT'])).toBe('somabrain');
    expect(detectProject(plan, ['POSTGRES_HOST_PORT', 'API_PORT'])).toBe('somafractalmemory');
    expect(detectProject(plan, ['POSTGRES_HOST_PORT', 'REDIS_HOST_PORT'])).toBeUndefined();
    expect(detectProject(plan, ['SOMABRAIN_HOST_PORT', 'API_PORT'])).toBeUndefined();
    expect(detectProject(plan, [])).toBeUndefined();
  });
});
