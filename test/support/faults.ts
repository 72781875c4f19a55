// Misbehaving peers for fault tests: a port nobody listens on, a socket that accepts and never
// answers, and a raw TCP server that answers whatever bytes it is given.
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TcpPeer {
  port: number;
  url(scheme?: string): string;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function tcpPeer(server: Server, port: number, sockets: Set<Socket>): TcpPeer {
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

/** A loopback port with no listener: connecting is refused at once. */
export async function refusedPort(): Promise<number> {
  const server = createServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Accepts connections and never sends a byte. */
export async function silentServer(): Promise<TcpPeer> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  return tcpPeer(server, await listen(server), sockets);
}

/** Answers each connection's first bytes with `reply` (e.g. non-HTTP garbage), then closes. */
export async function rawServer(reply: string | Buffer, { close = true } = {}): Promise<TcpPeer> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.once('data', () => {
      s.write(reply);
      if (close) s.end();
    });
  });
  return tcpPeer(server, await listen(server), sockets);
}
