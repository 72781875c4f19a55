// Misbehaving peers for fault tests: a port nobody listens on, a socket that accepts and never
// answers, and a raw TCP server that answers whatever bytes it is given.
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TcpPeer {
  port: number;
  url(scheme?: string): string;
  close(): Promise<void>;
}

/**
 * Listen on a free loopback port; `close()` also destroys open connections, so a test never waits
 * on a client that keeps one alive. Works for net, http and https servers.
 */
export async function serveOnLoopback(server: Server): Promise<TcpPeer> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: (scheme = 'http') => `${scheme}://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A loopback port with no listener: connecting is refused at once. Taken from 10000-19999, under
 * Linux's ephemeral range (32768 and up) and apart from ports.json's ranges: a port another test
 * got from listen(0) and then closed could be handed to the next listen(0), which made a
 * "refused" port answer now and then while the suite ran in parallel.
 */
export async function refusedPort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 10_000 + Math.floor(Math.random() * 10_000);
    if (await refuses(port)) return port;
  }
  throw new Error('refusedPort: no refused loopback port found in 10000-19999');
}

function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/** Accepts connections and never sends a byte. */
export function silentServer(): Promise<TcpPeer> {
  return serveOnLoopback(createServer((s) => s.on('error', () => {})));
}

/** Answers each connection's first bytes with `reply` (e.g. non-HTTP garbage), then closes. */
export function rawServer(reply: string | Buffer, { close = true } = {}): Promise<TcpPeer> {
  return serveOnLoopback(
    createServer((s) => {
      s.on('error', () => {});
      s.once('data', () => {
        s.write(reply);
        if (close) s.end();
      });
    }),
  );
}

export interface FloodPeer extends TcpPeer {
  /** Bytes handed to the kernel for all connections so far: what a client could have read. */
  sentBytes(): number;
}

/**
 * Floods every connection with `chunk`, over and over, as fast as the client reads, from the
 * moment it connects, until the client closes: a peer of the wrong protocol that never stops.
 */
export async function floodServer(chunk: Buffer): Promise<FloodPeer> {
  let sent = 0;
  const peer = await serveOnLoopback(
    createServer((s) => {
      s.on('error', () => {});
      const pump = () => {
        while (!s.destroyed && s.writable) {
          sent += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
      };
      pump();
    }),
  );
  return { ...peer, sentBytes: () => sent };
}

/**
 * From now on every write of `socket` goes out `bytesPerWrite` bytes at a time, each write of its
 * own after the one before has been flushed (Nagle off): a client must read answers split anywhere.
 */
export function dripWrites(socket: Socket, bytesPerWrite = 1): void {
  socket.setNoDelay(true);
  const write = socket.write.bind(socket) as (chunk: Buffer, done?: () => void) => boolean;
  let queued = Buffer.alloc(0);
  let dripping = false;
  const drip = () => {
    if (queued.length === 0 || socket.destroyed) return void (dripping = false);
    const piece = queued.subarray(0, bytesPerWrite);
    queued = queued.subarray(bytesPerWrite);
    write(piece, () => setImmediate(drip));
  };
  socket.write = ((chunk: string | Buffer) => {
    queued = Buffer.concat([queued, Buffer.from(chunk)]);
    if (!dripping) (dripping = true), drip();
    return true;
  }) as Socket['write'];
}
