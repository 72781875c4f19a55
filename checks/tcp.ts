// `tcp`: connect, and nothing more. It proves a listener exists, not that it is the right one:
// prefer a protocol check where one exists.
import { connect } from 'node:net';
import { z } from 'zod';
import { defineCheck } from '../src/check.js';

const options = z
  .object({
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535),
  })
  .strict();
type Options = z.infer<typeof options>;

export default defineCheck<Options>({
  kind: 'tcp',
  options,
  target: (o) => `${o.host}:${o.port}`,
  run(o, ctx) {
    const where = `${o.host}:${o.port}`;
    const started = performance.now();
    return new Promise((resolve) => {
      const socket = connect({ host: o.host, port: o.port });
      const finish = (status: 'pass' | 'fail', message: string) => {
        clearTimeout(timer);
        ctx.signal.removeEventListener('abort', onAbort);
        socket.destroy();
        const connectMs = Math.round((performance.now() - started) * 10) / 10;
        resolve({ status, message, details: status === 'pass' ? { connectMs } : {} });
      };
      const onAbort = () => finish('fail', `connect to ${where} timed out after ${ctx.timeoutMs} ms`);
      const timer = setTimeout(onAbort, ctx.timeoutMs);
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      socket.once('connect', () =>
        finish('pass', `connected to ${where} in ${Math.round(performance.now() - started)} ms`),
      );
      socket.once('error', (err: NodeJS.ErrnoException) =>
        finish(
          'fail',
          err.code === 'ECONNREFUSED'
            ? `connection refused on ${where}`
            : err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN'
              ? `host not found: ${o.host}`
              : `connect to ${where} failed: ${err.code ?? err.message}`,
        ),
      );
    });
  },
});
