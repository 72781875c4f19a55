// A TCP proxy that holds every chunk for a fixed delay in each direction, so that a loopback peer
// behaves like one across a network (20 ms each way = 40 ms round trip). Loopback only: it
// listens on 127.0.0.1 and forwards to 127.0.0.1. Order is kept: chunks leave in arrival order.
import { createServer, connect } from 'node:net';

/** Start a proxy to 127.0.0.1:targetPort; resolves with { port, close() }. */
export async function startDelayProxy(targetPort, delayMs = 20) {
  const sockets = new Set();
  const delayed = (from, to) => {
    from.on('data', (chunk) => setTimeout(() => to.writable && to.write(chunk), delayMs));
    from.on('end', () => setTimeout(() => to.end(), delayMs));
    from.on('error', () => setTimeout(() => to.destroy(), delayMs));
    from.on('close', () => setTimeout(() => to.destroy(), delayMs + 1));
  };
  const server = createServer({ noDelay: true }, (client) => {
    const upstream = connect({ host: '127.0.0.1', port: targetPort, noDelay: true });
    sockets.add(client).add(upstream);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
    delayed(client, upstream);
    delayed(upstream, client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
