// A TCP proxy on loopback that counts the connections it accepts, so a test can tell how many
// connections a client opened to reach the peer behind it.
import { connect, createServer } from 'node:net';
import { serveOnLoopback, type TcpPeer } from './faults.js';

export interface CountingProxy extends TcpPeer {
  /** Connections accepted so far. */
  accepted(): number;
}

/** Forward every connection to host:port, byte for byte, and count them. */
export async function countingProxy(host: string, port: number): Promise<CountingProxy> {
  let accepted = 0;
  const peer = await serveOnLoopback(
    createServer({ noDelay: true }, (client) => {
      accepted += 1;
      const upstream = connect({ host, port, noDelay: true });
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
    }),
  );
  return { ...peer, accepted: () => accepted };
}
