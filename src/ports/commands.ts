// What each `soma-ports` command does, as functions returning data (the CLI renders them).
// Failures the user must fix are CommandError with the exit code they deserve.
import { access, constants as fsConstants, realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { EnvParseError, envValues, parseEnvFile, readEnvFile, setEnvValues, type EnvFile } from '../envfile.js';
import { FileReadError } from '../read-file.js';
import { writeFileAtomic } from '../write-file.js';
import { allocate, NoFreePortError, type Assignment } from './allocate.js';
import { acquireLock, LockTimeoutError, type Lock } from './lock.js';
import { applyPoolEnv, detectProject, detectProjectCandidates, loadPlan, PlanError, type PlanProject, type PortPlan } from './plan.js';
import { describeHolder, ephemeralPorts, ephemeralWarning, findHolders, isEphemeral, isFree, PortProber, rangeInsideEphemeral, type PortHolder, type PortState } from './probe.js';
import {
  ensureStateDir,
  lockPath,
  pruneMissing,
  readRegistry,
  RegistryError,
  sameEntry,
  stateDir,
  writeRegistry,
  type Registry,
  type RegistryEntry,
} from './registry.js';

export class CommandError extends Error {
  override name = 'CommandError';
  constructor(
    message: string,
    /** 1: conflict, check failed, lock timeout; 2: usage or bad input. */
    readonly exitCode: 1 | 2,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface CommonOptions {
  cwd: string;
  env: Record<string, string | undefined>;
  project?: string;
  envFile?: string;
  /** Called with the lock once taken, so that an interrupt can release it. */
  onLock?: (lock: Lock | undefined) => void;
}

const LOCK_TIMEOUT_MS = 10_000;

/** Turn the known failure types of the building blocks into CommandErrors. */
async function guarded<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof CommandError) throw error;
    if (error instanceof PlanError || error instanceof RegistryError || error instanceof FileReadError) {
      throw new CommandError(error.message, 2, { cause: error });
    }
    if (error instanceof LockTimeoutError || error instanceof NoFreePortError) throw new CommandError(error.message, 1, { cause: error });
    throw error;
  }
}

/**
 * Run `work` on the state folder `dir` (lock, registry); a file-system failure there (a full
 * disk, a read-only mount) is one message naming `dir`, exit 2.
 */
async function inStateDir<T>(dir: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (error instanceof LockTimeoutError || typeof code !== 'string' || !code.startsWith('E')) throw error;
    throw new CommandError(`cannot write the state folder ${dir}: ${(error as Error).message}; nothing was changed`, 2, { cause: error });
  }
}

/** The registry's lock in `dir`, waiting as SOMA_PORTS_LOCK_TIMEOUT_MS says. */
function lockStateDir(dir: string, env: CommonOptions['env']): Promise<Lock> {
  return inStateDir(dir, () => acquireLock(lockPath(dir), { timeoutMs: Number(env.SOMA_PORTS_LOCK_TIMEOUT_MS) || LOCK_TIMEOUT_MS }));
}

interface Target {
  plan: PortPlan;
  project: string;
  projectPlan: PlanProject;
  envPath: string;
  /** Absolute, symlinks resolved: the registry key. */
  envKey: string;
  file: EnvFile | undefined;
  values: Map<string, string>;
}

async function resolveTarget(options: CommonOptions): Promise<Target> {
  const envPath = resolve(options.cwd, options.envFile ?? '.env');
  let file: EnvFile | undefined;
  try {
    file = await readEnvFile(envPath);
  } catch (error) {
    if (error instanceof EnvParseError) {
      throw new CommandError(`cannot parse ${envPath}, ${error.message}; fix that line, the file was left untouched`, 2, { cause: error });
    }
    if (error instanceof FileReadError) throw new CommandError(`${error.message}; it was left untouched`, 2, { cause: error });
    throw new CommandError(`cannot read ${envPath}: ${(error as Error).message}`, 2, { cause: error });
  }
  const values = file ? envValues(file) : new Map<string, string>();
  const basePlan = await loadPlan(options.cwd);
  let project = options.project;
  if (project !== undefined) {
    if (!basePlan.projects[project]) {
      throw new CommandError(`unknown project "${project}"; known: ${Object.keys(basePlan.projects).join(', ')}`, 2);
    }
  } else {
    project = detectProject(basePlan, values.keys());
    if (project === undefined) {
      const candidates = detectProjectCandidates(basePlan, values.keys());
      throw new CommandError(
        candidates.length > 1
          ? `cannot tell whether ${envPath} belongs to ${candidates.join(' or ')}: pass --project`
          : `no project's port keys in ${file ? envPath : `${envPath} (missing)`}: pass --project (${Object.keys(basePlan.projects).join(', ')})`,
        2,
      );
    }
  }
  // The process environment wins over the .env, as with docker compose.
  const plan = applyPoolEnv(basePlan, { ...Object.fromEntries(values), ...options.env });
  const envKey = await realpath(envPath).catch(async () => join(await realpath(dirname(envPath)).catch(() => dirname(envPath)), basename(envPath)));
  return { plan, project, projectPlan: plan.projects[project] as PlanProject, envPath, envKey, file, values };
}

function describeEntry(entry: RegistryEntry): string {
  return `${entry.project} (${entry.envFile})`;
}

/** Ports registered to every entry but this `.env`'s own. */
function takenBy(registry: Registry, project: string, envKey: string): Map<number, string> {
  const taken = new Map<number, string>();
  for (const entry of registry.entries) {
    if (sameEntry(entry, project, envKey)) continue;
    for (const port of Object.values(entry.ports)) taken.set(port, describeEntry(entry));
  }
  return taken;
}

function holderLookup(prober: PortProber): (port: number) => string | undefined {
  let holders: Map<number, PortHolder> | undefined;
  return (port) => {
    // One /proc scan for every port found in use so far, done only if someone asks.
    holders ??= findHolders(prober.seen.filter((s) => s.bound).map((s) => s.port));
    return describeHolder(holders.get(port));
  };
}

export interface AssignResult {
  project: string;
  envFile: string;
  assignments: Assignment[];
  /** key -> port after the run. */
  ports: Record<string, number>;
  /** True when `.env` changed (or would, with --dry-run). */
  changed: boolean;
  created: boolean;
  dryRun: boolean;
  oldText: string;
  newText: string;
  /** Said once on stderr: e.g. the range lies inside the ephemeral range. */
  warnings: string[];
}

export async function assign(options: CommonOptions & { dryRun: boolean }): Promise<AssignResult> {
  return guarded(async () => {
    // Read once to refuse bad input before waiting for the lock...
    let target = await resolveTarget(options);
    if (!options.dryRun) await assertWritable(target.envPath, target.file !== undefined);

    const dir = stateDir(options.env);
    let lock: Lock | undefined;
    if (!options.dryRun) {
      await ensureStateDir(dir).catch((error: unknown) => {
        throw new CommandError(`cannot create the state folder ${dir}: ${(error as Error).message}`, 2, { cause: error });
      });
      lock = await lockStateDir(dir, options.env);
      options.onLock?.(lock);
    }
    try {
      // ...and again under it: another run, or an editor, may have written `.env` while this one waited.
      if (lock) target = await resolveTarget(options);
      const { project, envPath, envKey, file } = target;
      const stored = await readRegistry(dir);
      const registry = await pruneMissing(stored);
      const ownEntry = registry.entries.find((e) => sameEntry(e, project, envKey));
      const prober = new PortProber();
      const ephemeral = ephemeralPorts();
      const assignments = await allocate({
        project,
        plan: target.projectPlan,
        current: target.values,
        taken: takenBy(registry, project, envKey),
        own: ownEntry?.ports ?? {},
        ephemeral,
        prober,
        holderOf: holderLookup(prober),
      });

      const ports = Object.fromEntries(assignments.map((a) => [a.key, a.port]));
      const changes: Record<string, string> = {};
      for (const a of assignments) if (target.values.get(a.key) !== String(a.port)) changes[a.key] = String(a.port);
      const oldText = file?.text ?? '';
      const newText = setEnvValues(file ?? parseEnvFile(''), changes);
      const changed = newText !== oldText || file === undefined;
      const result: AssignResult = {
        project,
        envFile: envPath,
        assignments,
        ports,
        changed,
        created: file === undefined,
        dryRun: options.dryRun,
        oldText,
        newText,
        warnings:
          ephemeral && rangeInsideEphemeral(ephemeral, target.projectPlan.range)
            ? [ephemeralWarning(project, target.projectPlan.range, ephemeral)]
            : [],
      };
      if (options.dryRun) return result;

      // Registry first: once it is written, no other run can hand these ports out, even if this
      // process dies before `.env` is written (the next run here then finds them as its own).
      const samePorts = ownEntry && JSON.stringify(ownEntry.ports) === JSON.stringify(ports);
      if (!samePorts || registry.entries.length !== stored.entries.length) {
        const entries = registry.entries.filter((e) => !sameEntry(e, project, envKey));
        entries.push({ project, envFile: envKey, ports, updatedAt: new Date().toISOString() });
        await inStateDir(dir, () => writeRegistry(dir, { version: 1, entries }));
      }
      if (changed) {
        // An editor does not take the lock: what it saved while the ports were probed is not
        // overwritten.
        const now = await readEnvFile(envPath).catch(() => null);
        if (now === null || now?.text !== file?.text) {
          await writeRegistry(dir, stored).catch(() => {});
          throw new CommandError(`${envPath} changed while soma-ports was assigning; it was left as it is now: run it again`, 1);
        }
        try {
          await writeFileAtomic(envPath, newText);
        } catch (error) {
          await writeRegistry(dir, stored).catch(() => {});
          throw new CommandError(`cannot write ${envPath}: ${(error as Error).message}`, 2, { cause: error });
        }
      }
      return result;
    } finally {
      await lock?.release();
      options.onLock?.(undefined);
    }
  });
}

/** Fail before taking the lock when `.env` (or its folder, for a new file) is not writable. */
async function assertWritable(envPath: string, exists: boolean): Promise<void> {
  // The atomic write creates a temporary file next to the target, so the folder must be writable
  // in both cases.
  const checks = exists ? [envPath, dirname(envPath)] : [dirname(envPath)];
  for (const path of checks) {
    try {
      await access(path, fsConstants.W_OK);
    } catch (error) {
      throw new CommandError(`cannot write ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, 2, { cause: error });
    }
  }
}

export type Expectation = 'free' | 'listening';

export interface CheckRow {
  service: string;
  key: string;
  port: number | undefined;
  state: 'free' | 'listening' | 'missing' | 'invalid';
  holder?: string;
  ok: boolean;
  problem?: string;
}

export interface CheckResult {
  project: string;
  envFile: string;
  expect: Expectation | undefined;
  rows: CheckRow[];
  conflicts: string[];
  ok: boolean;
  warnings: string[];
}

export async function check(options: CommonOptions & { expect?: Expectation }): Promise<CheckResult> {
  return guarded(async () => {
    const target = await resolveTarget(options);
    const { project, projectPlan, values, envKey } = target;
    const registry = await readRegistry(stateDir(options.env));
    const services = Object.entries(projectPlan.services);
    const portOf = (key: string): number | undefined => {
      const raw = values.get(key)?.trim();
      return raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : undefined;
    };
    const prober = new PortProber();
    const states = await prober.probeAll(services.map(([, s]) => portOf(s.key)).filter((p): p is number => p !== undefined));
    const holders = findHolders([...states.values()].filter((s) => s.bound).map((s) => s.port));

    const conflicts: string[] = [];
    const byPort = new Map<number, string[]>();
    for (const [, s] of services) {
      const port = portOf(s.key);
      if (port !== undefined) byPort.set(port, [...(byPort.get(port) ?? []), s.key]);
    }
    for (const [port, keys] of byPort) if (keys.length > 1) conflicts.push(`${port} is used by ${keys.join(' and ')} in ${target.envPath}`);
    const taken = takenBy(registry, project, envKey);
    for (const [port, keys] of byPort) {
      const owner = taken.get(port);
      if (owner) conflicts.push(`${port} (${keys.join(', ')}) is also registered to ${owner}`);
    }
    // Conflicts between other projects of the machine, from the registry alone.
    const registered = new Map<number, string[]>();
    for (const entry of registry.entries) {
      if (sameEntry(entry, project, envKey)) continue;
      for (const port of new Set(Object.values(entry.ports))) registered.set(port, [...(registered.get(port) ?? []), describeEntry(entry)]);
    }
    for (const [port, owners] of registered) if (owners.length > 1) conflicts.push(`${port} is registered to ${owners.join(' and ')}`);

    const rows: CheckRow[] = services.map(([service, s]) => {
      const raw = values.get(s.key);
      const port = portOf(s.key);
      if (raw === undefined) {
        return { service, key: s.key, port, state: 'missing', ok: options.expect === undefined, problem: 'not in .env: run soma-ports assign' };
      }
      if (port === undefined) return { service, key: s.key, port, state: 'invalid', ok: false, problem: 'not a port number' };
      const state = states.get(port) as PortState;
      const listening = !isFree(state);
      const holder = describeHolder(holders.get(port)) ?? (state.bound ? undefined : state.answered ? 'answers connections' : undefined);
      const row: CheckRow = { service, key: s.key, port, state: listening ? 'listening' : 'free', ok: true };
      if (holder) row.holder = holder;
      if (options.expect === 'free' && listening) {
        row.ok = false;
        row.problem = `in use${holder ? ` by ${holder}` : ''}: stop it or run soma-ports assign`;
      } else if (options.expect === 'listening' && !listening) {
        row.ok = false;
        row.problem = 'nothing listens: is the stack up?';
      }
      return row;
    });
    // Free now is all a port inside the ephemeral range can promise: say so once.
    const ephemeral = ephemeralPorts();
    const inside = rangeInsideEphemeral(ephemeral, projectPlan.range) && rows.some((r) => r.port !== undefined && isEphemeral(ephemeral, r.port));
    return {
      project,
      envFile: target.envPath,
      expect: options.expect,
      rows,
      conflicts,
      ok: conflicts.length === 0 && rows.every((r) => r.ok),
      warnings: ephemeral && inside ? [ephemeralWarning(project, projectPlan.range, ephemeral)] : [],
    };
  });
}

export interface ShowResult {
  plan: PortPlan;
  registry: Registry;
  stateDir: string;
}

export async function show(options: { cwd: string; env: Record<string, string | undefined> }): Promise<ShowResult> {
  return guarded(async () => {
    const base = await loadPlan(options.cwd);
    const plan = applyPoolEnv(base, options.env);
    const dir = stateDir(options.env);
    return { plan, registry: await readRegistry(dir), stateDir: dir };
  });
}

export interface ReleaseResult {
  released: RegistryEntry[];
}

/**
 * Forget registry entries: every entry of `--project` (narrowed to `--env-file` when given), or,
 * without `--project`, the entry of the detected project for this `.env`.
 */
export async function release(options: CommonOptions): Promise<ReleaseResult> {
  return guarded(async () => {
    let match: (e: RegistryEntry) => boolean;
    if (options.project !== undefined && options.envFile === undefined) {
      const plan = await loadPlan(options.cwd);
      if (!plan.projects[options.project]) {
        throw new CommandError(`unknown project "${options.project}"; known: ${Object.keys(plan.projects).join(', ')}`, 2);
      }
      const project = options.project;
      match = (e) => e.project === project;
    } else {
      const target = await resolveTarget(options);
      match = (e) => sameEntry(e, target.project, target.envKey);
    }
    const dir = stateDir(options.env);
    await ensureStateDir(dir);
    const lock = await lockStateDir(dir, options.env);
    options.onLock?.(lock);
    try {
      const registry = await readRegistry(dir);
      const released = registry.entries.filter(match);
      if (released.length > 0) await inStateDir(dir, () => writeRegistry(dir, { version: 1, entries: registry.entries.filter((e) => !match(e)) }));
      return { released };
    } finally {
      await lock.release();
      options.onLock?.(undefined);
    }
  });
}
