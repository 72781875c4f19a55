// `tcp`: connect, and nothing more. It proves a listener exists, not that it is the right one:
// prefer a protocol check where one exists.
import * as v from 'valibot';
import { defineCheck, type CheckOutcome } from '../src/check.js';
import { connectTcp, type TcpFacts } from '../src/clients/tcp.js';

const options = v.strictObject({
  host: v.pipe(v.string(), v.minLength(1)),
  port: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535)),
});
type Options = v.InferOutput<typeof options>;

/** The verdict on the connection attempt; pure, so it is tested without a peer. */
export function judge(f: TcpFacts, o: Options): CheckOutcome {
  if (f.failure !== undefined || f.connectMs === undefined)
    return { status: 'fail', message: f.failure ?? 'no connection', details: {}, ...(f.unanswered ? { unanswered: f.unanswered } : {}) };
  return {
    status: 'pass',
    message: `connected to ${o.host}:${o.port} in ${Math.round(f.connectMs)} ms`,
    details: { connectMs: Math.round(f.connectMs * 10) / 10 },
  };
}

export default defineCheck<Options>({
  kind: 'tcp',
  options,
  target: (o) => `${o.host}:${o.port}`,
  async run(o, ctx) {
    return judge(await connectTcp(o.host, o.port, ctx.timeoutMs, ctx.signal), o);
  },
});
