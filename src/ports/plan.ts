// The port plan: which services each SomaStack project publishes on the host, under which `.env`
// key, at which preferred port, inside which range. The default plan is the package's top-level
// `ports.json`; a `ports.json` in the working directory extends or overrides it. The plan holds
// no secrets and no assignments (those live in `.env` files and the registry).
//
// Validation is hand-written rather than a zod schema: importing zod costs ~70 ms, a quarter of
// the 300 ms budget of `soma-ports assign`, for a dozen checks.
import { realpath } from 'node:fs/promises';
import { FileReadError, MiB, readRegularFile } from '../read-file.js';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PlanService {
  /** The `.env` key that holds the host port. */
  key: string;
  preferred: number;
  note?: string;
}

export interface PlanProject {
  /** Inclusive range of host ports the project may use. */
  range: [number, number];
  services: Record<string, PlanService>;
  /** Environment variables that move the range (somaagent01: PORT_POOL_START / PORT_POOL_MAX). */
  poolEnv?: { start: string; max: string };
  note?: string;
}

export interface PortPlan {
  projects: Record<string, PlanProject>;
  /** The files the plan was read from, default first. */
  sources: string[];
}

/** A broken plan file or override; the CLI reports it with exit 2. */
export class PlanError extends Error {
  override name = 'PlanError';
}

const MIN_PORT = 1024;
const MAX_PORT = 65535;

/** The package's own ports.json: two levels up from src/ports, three from dist/src/ports. */
async function defaultPlanPath(): Promise<string> {
  for (const relative of ['../../ports.json', '../../../ports.json']) {
    const candidate = fileURLToPath(new URL(relative, import.meta.url));
    try {
      return await realpath(candidate);
    } catch {
      /* try the next layout */
    }
  }
  throw new PlanError('the default ports.json of soma-ports is missing from its package');
}

async function readJson(path: string): Promise<unknown | undefined> {
  let text: string;
  try {
    text = (await readRegularFile(path, MiB)).toString('utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (error instanceof FileReadError) throw new PlanError(error.message, { cause: error });
    throw new PlanError(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new PlanError(`${path} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isPort(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= MIN_PORT && (value as number) <= MAX_PORT;
}

function isRange(value: unknown): value is [number, number] {
  return Array.isArray(value) && value.length === 2 && isPort(value[0]) && isPort(value[1]) && value[0] <= value[1];
}

const KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_.]*$/;

/**
 * Merge one plan file into `into`. An override may change a project's range (preferred ports it
 * does not restate move with the range start), add or change services, and remove one with
 * `null`.
 */
function mergePlanFile(into: Record<string, PlanProject>, raw: unknown, file: string): void {
  const fail = (where: string, what: string): never => {
    throw new PlanError(`${file}: ${where} ${what}`);
  };
  if (!isObject(raw) || !isObject(raw.projects)) fail('top level', 'must be an object with "projects"');
  for (const [name, rawProject] of Object.entries((raw as { projects: Record<string, unknown> }).projects)) {
    const where = `projects.${name}`;
    if (rawProject === null) {
      delete into[name];
      continue;
    }
    if (!isObject(rawProject)) fail(where, 'must be an object');
    const p = rawProject as Record<string, unknown>;
    const existing = into[name];
    if (p.range !== undefined && !isRange(p.range)) fail(`${where}.range`, `must be [first, last] ports within ${MIN_PORT}-${MAX_PORT}`);
    if (!existing && p.range === undefined) fail(`${where}.range`, 'is required for a new project');
    if (p.poolEnv !== undefined) {
      const pool = p.poolEnv;
      if (!isObject(pool) || typeof pool.start !== 'string' || typeof pool.max !== 'string') {
        fail(`${where}.poolEnv`, 'must be {"start": "VAR", "max": "VAR"}');
      }
    }
    if (p.note !== undefined && typeof p.note !== 'string') fail(`${where}.note`, 'must be a string');
    if (p.services !== undefined && !isObject(p.services)) fail(`${where}.services`, 'must be an object');

    const oldRange = existing?.range;
    const range = (p.range as [number, number] | undefined) ?? (oldRange as [number, number]);
    const shift = oldRange ? range[0] - oldRange[0] : 0;
    const services: Record<string, PlanService> = {};
    for (const [svc, old] of Object.entries(existing?.services ?? {})) {
      services[svc] = { ...old, preferred: old.preferred + shift };
    }
    for (const [svc, rawService] of Object.entries((p.services as Record<string, unknown> | undefined) ?? {})) {
      const sWhere = `${where}.services.${svc}`;
      if (rawService === null) {
        delete services[svc];
        continue;
      }
      if (!isObject(rawService)) fail(sWhere, 'must be an object');
      const s = rawService as Record<string, unknown>;
      const merged = { ...services[svc], ...s } as Record<string, unknown>;
      if (typeof merged.key !== 'string' || !KEY_PATTERN.test(merged.key)) fail(`${sWhere}.key`, 'must be an .env key');
      if (!isPort(merged.preferred)) fail(`${sWhere}.preferred`, `must be a port within ${MIN_PORT}-${MAX_PORT}`);
      if (merged.note !== undefined && typeof merged.note !== 'string') fail(`${sWhere}.note`, 'must be a string');
      services[svc] = {
        key: merged.key as string,
        preferred: merged.preferred as number,
        ...(merged.note !== undefined ? { note: merged.note as string } : {}),
      };
    }
    const project: PlanProject = { range: [range[0], range[1]], services };
    const poolEnv = (p.poolEnv as PlanProject['poolEnv']) ?? existing?.poolEnv;
    if (poolEnv) project.poolEnv = { start: poolEnv.start, max: poolEnv.max };
    const note = (p.note as string | undefined) ?? existing?.note;
    if (note !== undefined) project.note = note;
    into[name] = project;
  }
}

/** Reject a plan whose services could never be placed consistently. */
export function validatePlan(plan: PortPlan): void {
  const where = plan.sources.join(' + ');
  for (const [name, project] of Object.entries(plan.projects)) {
    const [first, last] = project.range;
    const keys = new Map<string, string>();
    const preferred = new Map<number, string>();
    for (const [svc, service] of Object.entries(project.services)) {
      if (service.preferred < first || service.preferred > last) {
        throw new PlanError(`${where}: ${name}/${svc} prefers ${service.preferred}, outside its range ${first}-${last}`);
      }
      const sameKey = keys.get(service.key);
      if (sameKey) throw new PlanError(`${where}: ${name}/${svc} and ${name}/${sameKey} share the key ${service.key}`);
      keys.set(service.key, svc);
      const samePort = preferred.get(service.preferred);
      if (samePort) throw new PlanError(`${where}: ${name}/${svc} and ${name}/${samePort} both prefer ${service.preferred}`);
      preferred.set(service.preferred, svc);
    }
    if (Object.keys(project.services).length > last - first + 1) {
      throw new PlanError(`${where}: ${name} has more services than ports in ${first}-${last}`);
    }
  }
}

/** The default plan extended by `<cwd>/ports.json` when there is one. */
export async function loadPlan(cwd: string = process.cwd()): Promise<PortPlan> {
  const defaultPath = await defaultPlanPath();
  const projects: Record<string, PlanProject> = {};
  const sources = [defaultPath];
  const defaults = await readJson(defaultPath);
  if (defaults === undefined) throw new PlanError(`${defaultPath} is missing`);
  mergePlanFile(projects, defaults, defaultPath);

  const overridePath = join(cwd, 'ports.json');
  const resolvedOverride = await realpath(overridePath).catch(() => overridePath);
  if (resolvedOverride !== defaultPath) {
    const override = await readJson(overridePath);
    if (override !== undefined) {
      mergePlanFile(projects, override, overridePath);
      sources.push(overridePath);
    }
  }
  const plan: PortPlan = { projects, sources };
  validatePlan(plan);
  return plan;
}

/**
 * Move the ranges of projects that declare `poolEnv` (somaagent01's PORT_POOL_START /
 * PORT_POOL_MAX) according to `env`. Preferred ports keep their offset from the range start;
 * those that fall beyond the new end are dropped to "next free" by the allocator (it never leaves
 * the range). Returns a new plan.
 */
export function applyPoolEnv(plan: PortPlan, env: Record<string, string | undefined>): PortPlan {
  const projects: Record<string, PlanProject> = {};
  for (const [name, project] of Object.entries(plan.projects)) {
    projects[name] = project;
    if (!project.poolEnv) continue;
    const read = (variable: string): number | undefined => {
      const raw = env[variable];
      if (raw === undefined || raw.trim() === '') return undefined;
      const port = Number(raw.trim());
      if (!isPort(port)) throw new PlanError(`${variable}=${raw.slice(0, 20)} is not a port within ${MIN_PORT}-${MAX_PORT}`);
      return port;
    };
    const [oldStart, oldMax] = project.range;
    const start = read(project.poolEnv.start) ?? oldStart;
    const max = read(project.poolEnv.max) ?? (start === oldStart ? oldMax : Math.min(MAX_PORT, start + (oldMax - oldStart)));
    if (max < start) throw new PlanError(`${project.poolEnv.max}=${max} is below ${project.poolEnv.start}=${start}`);
    if (start === oldStart && max === oldMax) continue;
    const services: Record<string, PlanService> = {};
    for (const [svc, service] of Object.entries(project.services)) {
      services[svc] = { ...service, preferred: service.preferred - oldStart + start };
    }
    projects[name] = { ...project, range: [start, max], services };
  }
  return { ...plan, projects };
}

interface ProjectScore {
  name: string;
  /** Keys present in the .env that only this project uses. */
  unique: number;
  /** Keys present in the .env that other projects use too. */
  shared: number;
}

function scoreProjects(plan: PortPlan, envKeys: Iterable<string>): ProjectScore[] {
  const present = new Set(envKeys);
  const owners = new Map<string, number>();
  for (const project of Object.values(plan.projects)) {
    for (const service of Object.values(project.services)) owners.set(service.key, (owners.get(service.key) ?? 0) + 1);
  }
  const scored: ProjectScore[] = [];
  for (const [name, project] of Object.entries(plan.projects)) {
    const score = { name, unique: 0, shared: 0 };
    for (const service of Object.values(project.services)) {
      if (!present.has(service.key)) continue;
      if (owners.get(service.key) === 1) score.unique++;
      else score.shared++;
    }
    if (score.unique + score.shared > 0) scored.push(score);
  }
  return scored.sort((a, b) => b.unique - a.unique || b.shared - a.shared);
}

/** Every project whose keys appear in `envKeys`, best match first (for "did you mean" messages). */
export function detectProjectCandidates(plan: PortPlan, envKeys: Iterable<string>): string[] {
  return scoreProjects(plan, envKeys).map((s) => s.name);
}

/**
 * The project an `.env` belongs to, judged by the keys only it uses (somabrain and SFM share
 * POSTGRES_HOST_PORT and REDIS_HOST_PORT). Undefined when no project or more than one matches.
 */
export function detectProject(plan: PortPlan, envKeys: Iterable<string>): string | undefined {
  const scored = scoreProjects(plan, envKeys);
  const withUnique = scored.filter((s) => s.unique > 0);
  if (withUnique.length === 1) return withUnique[0]?.name;
  if (withUnique.length === 0 && scored.length === 1) return scored[0]?.name;
  return undefined;
}
