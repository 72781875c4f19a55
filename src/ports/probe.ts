// Is a host port free? Two observations, because either alone misses cases:
// - a bind probe (get-port) on 0.0.0.0, ::, 127.0.0.1, ::1 and the other local addresses finds
//   every local listener, IPv4 or IPv6;
// - a connect probe to 127.0.0.1 and ::1 finds ports that answer without a local listener in our
//   network namespace (a port that Docker forwards, rootless or through iptables).
// Both are bounded: a bind answers at once, a connect gets CONNECT_TIMEOUT_MS.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { connect } from 'node:net';
import getPort, { clearLockedPorts } from 'get-port';

export interface PortState {
  port: number;
  /** Some local socket already listens on the port (the bind probe failed). */
  bound: boolean;
  /** Something accepted a TCP connection on 127.0.0.1 or ::1. */
  answered: boolean;
}

export const isFree = (state: PortState): boolean => !state.bound && !state.answered;

const CONNECT_TIMEOUT_MS = 150;

function answersConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (answered: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answered);
    };
    // No answer within the bound (a filtered port) counts as "nothing answers".
    const timer = setTimeout(() => done(false), CONNECT_TIMEOUT_MS);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false)); // refused, or ::1 unavailable without IPv6
  });
}

async function bindFree(port: number): Promise<boolean> {
  // get-port remembers every port it returned for 15 s and then refuses it to the same process;
  // this prober decides itself what to remember, so start from a clean slate each time.
  clearLockedPorts();
  // get-port answers the port itself when every local address accepts a bind, else another port.
  return (await getPort({ port })) === port;
}

async function probeOne(port: number): Promise<PortState> {
  const bound = !(await bindFree(port));
  // A local listener already settles "in use"; connecting to it would only add a log line to the
  // service holding it.
  const answered = bound ? false : (await Promise.all([answersConnect('127.0.0.1', port), answersConnect('::1', port)])).some(Boolean);
  return { port, bound, answered };
}

/** Probes ports at most once each per instance, a few at a time. */
export class PortProber {
  private readonly cache = new Map<number, Promise<PortState>>();
  /** Every state probed so far, for naming the holders of the ports in use. */
  readonly seen: PortState[] = [];

  constructor(private readonly concurrency = 16) {}

  probe(port: number): Promise<PortState> {
    let state = this.cache.get(port);
    if (!state) {
      state = probeOne(port).then((result) => {
        this.seen.push(result);
        return result;
      });
      this.cache.set(port, state);
    }
    return state;
  }

  async probeAll(ports: Iterable<number>): Promise<Map<number, PortState>> {
    const list = [...new Set(ports)];
    const results = new Map<number, PortState>();
    for (let i = 0; i < list.length; i += this.concurrency) {
      const batch = await Promise.all(list.slice(i, i + this.concurrency).map((p) => this.probe(p)));
      for (const state of batch) results.set(state.port, state);
    }
    return results;
  }
}

/**
 * The kernel's ephemeral range, which outgoing connections draw from at random, minus the ports
 * reserved from it with the net.ipv4.ip_local_reserved_ports sysctl (the way to let a project
 * keep a namespace that lies inside the ephemeral range, as SFM's 40000-40199 does on Linux).
 */
export interface EphemeralPorts {
  range: [number, number];
  reserved: ReadonlyArray<[number, number]>;
}

export function ephemeralPorts(): EphemeralPorts | undefined {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (!Number.isInteger(low) || !Number.isInteger(high)) return undefined;
    const reserved: Array<[number, number]> = [];
    try {
      for (const part of readFileSync('/proc/sys/net/ipv4/ip_local_reserved_ports', 'utf8').trim().split(',')) {
        if (!part) continue;
        const [a, b] = part.split('-').map(Number);
        if (Number.isInteger(a)) reserved.push([a as number, Number.isInteger(b) ? (b as number) : (a as number)]);
      }
    } catch {
      /* no reserved ports */
    }
    return { range: [low as number, high as number], reserved };
  } catch {
    return undefined; // not Linux, or /proc hidden: no ephemeral range to avoid
  }
}

export function isEphemeral(ports: EphemeralPorts | undefined, port: number): boolean {
  if (!ports || port < ports.range[0] || port > ports.range[1]) return false;
  return !ports.reserved.some(([a, b]) => port >= a && port <= b);
}

/** True when every port of `range` is ephemeral (and not reserved). */
export function rangeInsideEphemeral(ports: EphemeralPorts | undefined, [first, last]: readonly [number, number]): boolean {
  for (let port = first; port <= last; port++) if (!isEphemeral(ports, port)) return false;
  return true;
}

/**
 * The warning for ports given inside the ephemeral range, with the sysctl line that reserves
 * them (the kernel's list is replaced by a write, so the line keeps what is already reserved).
 */
export function ephemeralWarning(project: string, range: readonly [number, number], ports: EphemeralPorts): string {
  const reserve = [...ports.reserved.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)), `${range[0]}-${range[1]}`].join(',');
  return (
    `${project}'s range ${range[0]}-${range[1]} lies inside the kernel's ephemeral range ${ports.range.join('-')}: ` +
    `an outgoing connection may take one of its ports before docker compose binds it. ` +
    `Reserve the range (as root; add it to /etc/sysctl.d/ to keep it): sysctl -w net.ipv4.ip_local_reserved_ports=${reserve}; ` +
    `until then, run soma-ports check --expect free right before docker compose up`
  );
}

export interface PortHolder {
  pid?: number;
  command?: string;
  /** Owner uid of the listening socket, when the process itself is not visible (another user). */
  uid?: number;
}

const HOLDER_BUDGET_MS = 250;

/**
 * Best effort: which process listens on each of `ports`. Reads the LISTEN sockets of
 * /proc/net/tcp and tcp6, then finds the inodes among /proc/<pid>/fd links. Bounded by a time
 * budget, because a machine can have many processes; only called for ports already in use.
 */
export function findHolders(ports: Iterable<number>): Map<number, PortHolder> {
  const wanted = new Set(ports);
  const byInode = new Map<string, number>();
  const holders = new Map<number, PortHolder>();
  if (wanted.size === 0) return holders;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const row of text.split('\n').slice(1)) {
      const fields = row.trim().split(/\s+/);
      const [, local, , state, , , , uid, , inode] = fields;
      if (state !== '0A' || !local || !inode) continue; // 0A = LISTEN
      const port = parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
      if (!wanted.has(port)) continue;
      byInode.set(inode, port);
      if (!holders.has(port)) holders.set(port, { uid: Number(uid) });
    }
  }
  if (byInode.size === 0) return holders;

  const deadline = Date.now() + HOLDER_BUDGET_MS;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return holders;
  }
  for (const pid of pids) {
    if (Date.now() > deadline || byInode.size === 0) break;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or another user's process
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (!link.startsWith('socket:[')) continue;
      const inode = link.slice(8, -1);
      const port = byInode.get(inode);
      if (port === undefined) continue;
      byInode.delete(inode);
      let command: string | undefined;
      try {
        command = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        /* exited meanwhile */
      }
      holders.set(port, { pid: Number(pid), ...(command ? { command } : {}) });
    }
  }
  return holders;
}

/** "pid 4242 (redis-server)", "a process of uid 0", or undefined when nothing is known. */
export function describeHolder(holder: PortHolder | undefined): string | undefined {
  if (!holder) return undefined;
  if (holder.pid !== undefined) return `pid ${holder.pid}${holder.command ? ` (${holder.command})` : ''}`;
  if (holder.uid !== undefined) return `a process of uid ${holder.uid}`;
  return undefined;
}
