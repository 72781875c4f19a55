// A TCP proxy that holds every chunk for a fixed delay in each direction, so that a loopback peer
// behaves like one across a network (20 ms each way = 40 ms round trip). Connecting costs a round
// trip too, as TCP's handshake does: the proxy accepts at once on loopback, so a client's first
// bytes are held until one round trip after it connected, then the one-way delay. Loopback only:
// it listens on 127.0.0.1 and forwards to 127.0.0.1. Order is kept: chunks leave in arrival order.
import { createServer, connect } from 'node:net';

/** Start a proxy to 127.0.0.1:targetPort; resolves with { port, close() }. */
export async function startDelayProxy(targetPort, delayMs = 20) {
  const sockets = new Set();
  // `ready`: when `from` may first be heard on the far side of the handshake.
  const delayed = (from, to, ready) => {
    let last = 0;
    const later = (action) => {
      const now = performance.now();
      last = Math.max(last, Math.max(now, ready) + delayMs);
      setTimeout(action, last - now);
    };
    from.on('data', (chunk) => later(() => to.writable && to.write(chunk)));
    from.on('end', () => later(() => to.end()));
    from.on('error', () => later(() => to.destroy()));
    from.on('close', () => later(() => setImmediate(() => to.destroy())));
  };
  const server = createServer({ noDelay: true }, (client) => {
    const connectedAt = performance.now();
    const upstream = connect({ host: '127.0.0.1', port: targetPort, noDelay: true });
    sockets.add(client).add(upstream);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
    delayed(client, upstream, connectedAt + 2 * delayMs);
    delayed(upstream, client, connectedAt);
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
