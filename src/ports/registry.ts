// The machine-wide registry of port assignments, shared by the three projects on this machine.
// It is needed because somabrain's and SFM's `.env` files use the same key names
// (POSTGRES_HOST_PORT, REDIS_HOST_PORT) in different files: only a common record tells one
// project that a port is already promised to the other, even while nothing listens on it.
//
// An entry is keyed by project + absolute `.env` path and holds `key -> port` only, never any
// other value of the `.env` (the stack's old script copied secrets into its ports.json).
import { mkdir, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { FileReadError, MiB, readRegularFile } from '../read-file.js';
import { writeFileAtomic } from '../write-file.js';

export interface RegistryEntry {
  project: string;
  /** Absolute path of the `.env` file the ports were written to. */
  envFile: string;
  ports: Record<string, number>;
  updatedAt: string;
}

export interface Registry {
  version: 1;
  entries: RegistryEntry[];
}

export class RegistryError extends Error {
  override name = 'RegistryError';
}

/** `$SOMA_PORTS_STATE_DIR`, else `$XDG_STATE_HOME/soma-ports`, else `~/.local/state/soma-ports`. */
export function stateDir(env: Record<string, string | undefined> = process.env): string {
  if (env.SOMA_PORTS_STATE_DIR) return env.SOMA_PORTS_STATE_DIR;
  if (env.XDG_STATE_HOME) return join(env.XDG_STATE_HOME, 'soma-ports');
  return join(homedir(), '.local', 'state', 'soma-ports');
}

export function registryPath(dir: string): string {
  return join(dir, 'registry.json');
}

export function lockPath(dir: string): string {
  return join(dir, 'registry.lock');
}

export async function ensureStateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

function isEntry(value: unknown): value is RegistryEntry {
  if (typeof value !== 'object' || value === null) return false;
  const e = value as Record<string, unknown>;
  return (
    typeof e.project === 'string' &&
    typeof e.envFile === 'string' &&
    typeof e.ports === 'object' &&
    e.ports !== null &&
    Object.values(e.ports).every((p) => Number.isInteger(p))
  );
}

/** The registry in `dir`; empty when there is none yet. */
export async function readRegistry(dir: string): Promise<Registry> {
  const path = registryPath(dir);
  let text: string;
  try {
    text = (await readRegularFile(path, 16 * MiB)).toString('utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, entries: [] };
    throw new RegistryError(error instanceof FileReadError ? error.message : `cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new RegistryError(`${path} is not valid JSON (fix or delete it): ${(error as Error).message}`, { cause: error });
  }
  const entries = typeof parsed === 'object' && parsed !== null ? (parsed as { entries?: unknown }).entries : undefined;
  if (!Array.isArray(entries) || !entries.every(isEntry)) {
    throw new RegistryError(`${path} does not look like a soma-ports registry (fix or delete it)`);
  }
  return { version: 1, entries };
}

export async function writeRegistry(dir: string, registry: Registry): Promise<void> {
  await writeFileAtomic(registryPath(dir), `${JSON.stringify(registry, null, 2)}\n`);
}

export function sameEntry(entry: RegistryEntry, project: string, envFile: string): boolean {
  return entry.project === project && entry.envFile === envFile;
}

/** Drop entries whose `.env` no longer exists: their projects are gone from this machine. */
export async function pruneMissing(registry: Registry): Promise<Registry> {
  const kept: RegistryEntry[] = [];
  for (const entry of registry.entries) {
    try {
      await stat(entry.envFile);
      kept.push(entry);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') kept.push(entry);
    }
  }
  return { version: 1, entries: kept };
}
