// The TCP client: open a connection and close it at once. It proves a listener exists, nothing more.
import { connect } from 'node:net';
import type { Unanswered } from '../check.js';
import { describeNetworkError, noAnswer, unansweredFor } from './network.js';

export interface TcpFacts {
  /** How long the connection took, when it was made. */
  connectMs?: number;
  /** Why no connection was made. */
  failure?: string;
  /** Set when no connection was made: where, and whether the host refused it. */
  unanswered?: Unanswered;
}

export function connectTcp(host: string, port: number, timeoutMs: number, signal: AbortSignal): Promise<TcpFacts> {
  const where = `${host}:${port}`;
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const finish = (facts: TcpFacts) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(facts);
    };
    const onAbort = () => finish({ failure: `connect to ${where} timed out after ${timeoutMs} ms`, unanswered: noAnswer(host, port) });
    const timer = setTimeout(onAbort, timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => finish({ connectMs: performance.now() - started }));
    socket.once('error', (err: NodeJS.ErrnoException) =>
      finish({
        failure: describeNetworkError(err.code, where, host) ?? `connect to ${where} failed: ${err.code ?? err.message}`,
        unanswered: unansweredFor(err.code, host, port) ?? noAnswer(host, port),
      }),
    );
  });
}
