// The allocation rule of `soma-ports assign`, for one project's services:
//   1. keep the port already in `.env` if it is still free (so a second run changes nothing), or
//      if it is in use but registered to this same `.env` (most likely the project's own running
//      container: moving a running stack's port would break it);
//   2. else the preferred port of the plan if free;
//   3. else the next free port of the project's range after the preferred one (wrapping).
// Never two services on one port, never a port outside the range, or registered to another
// project or `.env` (even when nothing listens on it now). Ports inside the kernel's ephemeral
// range are avoided, unless the whole range lies inside it (SFM's documented 40000-40199 on a
// default Linux): the user asked for that namespace, so it is used, and the caller warns.
import type { PlanProject } from './plan.js';
import { isEphemeral, isFree, rangeInsideEphemeral, type EphemeralPorts, type PortProber, type PortState } from './probe.js';

export type AssignReason = 'kept' | 'kept-registered' | 'preferred' | 'moved';

export interface Assignment {
  service: string;
  key: string;
  /** The raw value in `.env` before the run, if any. */
  old: string | undefined;
  port: number;
  reason: AssignReason;
  /** One line for people: "kept", "moved: 30100 in use by pid 42 (redis-server)". */
  why: string;
}

export interface AllocateInput {
  project: string;
  plan: PlanProject;
  /** Current values of the `.env`. */
  current: ReadonlyMap<string, string>;
  /** Ports registered to other projects or `.env` files, with a description of the owner. */
  taken: ReadonlyMap<number, string>;
  /** key -> port registered to this very `.env` by an earlier run. */
  own: Readonly<Record<string, number>>;
  ephemeral: EphemeralPorts | undefined;
  prober: PortProber;
  /** Names the holder of a port in use ("pid 42 (redis-server)"), best effort. */
  holderOf(port: number): string | undefined;
}

export class NoFreePortError extends Error {
  override name = 'NoFreePortError';
}

const SCAN_BATCH = 8;

export async function allocate(input: AllocateInput): Promise<Assignment[]> {
  const { plan, current, taken, own, prober } = input;
  const [first, last] = plan.range;
  const ephemeral = rangeInsideEphemeral(input.ephemeral, plan.range) ? undefined : input.ephemeral;
  const services = Object.entries(plan.services);
  const used = new Map<number, string>(); // port -> key placed on it in this run
  const placed = new Map<string, Assignment>();

  /** Why `port` cannot be used by `key`, or undefined if it can (given its probe state). */
  const obstacle = (port: number, state: PortState | undefined, key: string): string | undefined => {
    if (port < first || port > last) return `${port} outside the range ${first}-${last}`;
    if (isEphemeral(ephemeral, port)) return `${port} inside the ephemeral range ${ephemeral?.range.join('-')}`;
    const owner = taken.get(port);
    if (owner) return `${port} registered to ${owner}`;
    const sibling = used.get(port);
    if (sibling) return `${port} already given to ${sibling}`;
    if (state && !isFree(state)) {
      if (own[key] === port) return undefined; // checked by the caller as "kept-registered"
      const holder = input.holderOf(port);
      return state.bound ? `${port} in use${holder ? ` by ${holder}` : ''}` : `${port} answers connections (a forwarded port?)`;
    }
    return undefined;
  };
  const usable = (port: number): boolean =>
    port >= first && port <= last && !isEphemeral(ephemeral, port) && !taken.has(port) && !used.has(port);

  const currentPort = (key: string): number | undefined => {
    const raw = current.get(key)?.trim();
    if (raw === undefined || !/^\d+$/.test(raw)) return undefined;
    return Number(raw);
  };

  // Probe every current and preferred port at once: they are the answer for almost every run.
  const firstLook = new Set<number>();
  for (const [, service] of services) {
    const c = currentPort(service.key);
    if (c !== undefined && usable(c)) firstLook.add(c);
    if (usable(service.preferred)) firstLook.add(service.preferred);
  }
  const states = await prober.probeAll(firstLook);

  // Pass 1: keep what `.env` already says, when allowed.
  const leftBecause = new Map<string, string>();
  for (const [name, service] of services) {
    const raw = current.get(service.key);
    const c = currentPort(service.key);
    if (raw === undefined) continue;
    if (c === undefined) {
      leftBecause.set(service.key, `"${raw.slice(0, 20)}" is not a port`);
      continue;
    }
    const state = states.get(c);
    const why = obstacle(c, state, service.key);
    if (why) {
      leftBecause.set(service.key, why);
      continue;
    }
    const inUse = state !== undefined && !isFree(state);
    used.set(c, service.key);
    placed.set(service.key, {
      service: name,
      key: service.key,
      old: raw,
      port: c,
      reason: inUse ? 'kept-registered' : 'kept',
      why: inUse ? 'kept: in use, registered to this project' : 'kept',
    });
  }

  // Pass 2: the preferred port.
  const preferredBecause = new Map<string, string>();
  for (const [name, service] of services) {
    if (placed.has(service.key)) continue;
    const p = service.preferred;
    const state = usable(p) ? states.get(p) : undefined;
    // A preferred port in use is never "kept-registered": only the .env's own value is.
    const why = obstacle(p, state, '') ?? (state && !isFree(state) ? `${p} in use` : undefined);
    if (why) {
      preferredBecause.set(service.key, why);
      continue;
    }
    used.set(p, service.key);
    const earlier = leftBecause.get(service.key);
    placed.set(service.key, {
      service: name,
      key: service.key,
      old: current.get(service.key),
      port: p,
      reason: 'preferred',
      why: earlier ? `preferred (moved: ${earlier})` : 'preferred',
    });
  }

  // Pass 3: the next free port after the preferred one, scanning a few candidates at a time.
  for (const [name, service] of services) {
    if (placed.has(service.key)) continue;
    const size = last - first + 1;
    const offset = service.preferred - first;
    let found: number | undefined;
    let step = 1;
    while (found === undefined && step < size) {
      const batch: number[] = [];
      for (; batch.length < SCAN_BATCH && step < size; step++) {
        const port = first + ((offset + step) % size);
        if (usable(port)) batch.push(port);
      }
      const probed = await prober.probeAll(batch);
      found = batch.find((port) => isFree(probed.get(port) as PortState));
    }
    if (found === undefined) {
      throw new NoFreePortError(`no free port left for ${input.project}/${name} (${service.key}) in ${first}-${last}`);
    }
    used.set(found, service.key);
    const because = leftBecause.get(service.key) ?? preferredBecause.get(service.key) ?? 'preferred port unavailable';
    const alsoPreferred = leftBecause.has(service.key) && preferredBecause.has(service.key) && currentPort(service.key) !== service.preferred
      ? `; preferred ${preferredBecause.get(service.key)}`
      : '';
    placed.set(service.key, {
      service: name,
      key: service.key,
      old: current.get(service.key),
      port: found,
      reason: 'moved',
      why: `moved: ${because}${alsoPreferred}`,
    });
  }

  return services.map(([, service]) => placed.get(service.key) as Assignment);
}
