// The HTTP thread's entry (see ./http-thread.ts): makes each exchange it is sent, in this thread,
// and replies with the answer as it came off the wire, or the failure.
import { createServer } from 'node:http';
import { parentPort } from 'node:worker_threads';
import { exchangeHttp, HttpError } from './http.js';
import type { ThreadReply, ThreadRequest } from './http-thread.js';

const port = parentPort!;
const WARM_UP_MS = 250;
const inFlight = new Map<number, AbortController>();

// Replies go back in batches, one message per turn of this thread's event loop: each message
// wakes the other thread, and the time an exchange took is measured here, not on arrival there.
let replies: ThreadReply[] = [];
let transfers: ArrayBuffer[] = [];
function reply(message: ThreadReply, transfer?: ArrayBuffer) {
  if (replies.length === 0) setImmediate(flush);
  replies.push(message);
  if (transfer) transfers.push(transfer);
}
function flush() {
  port.postMessage(replies, transfers);
  replies = [];
  transfers = [];
}

// One exchange with a throwaway server of our own first: a fresh thread runs Node's HTTP client
// and this file cold, and that one-time work would otherwise land inside the first checks'
// exchanges, between the request written and the answer read. Bounded, and best effort.
void warmUp()
  .catch(() => {})
  .then(() => {
    port.on('message', (messages: ThreadRequest[]) => {
      for (const message of messages) receive(message);
    });
    port.postMessage([] satisfies ThreadReply[]); // loaded: see HttpThread
  });

async function warmUp() {
  const server = createServer((req, res) => {
    req.resume();
    res.end('{}');
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  try {
    const { port: local } = server.address() as { port: number };
    await exchangeHttp({ url: `http://127.0.0.1:${local}/`, timeoutMs: WARM_UP_MS });
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

function receive(message: ThreadRequest) {
  if ('abort' in message) {
    const timeout = message.abort === 'timeout';
    inFlight.get(message.id)?.abort(new DOMException(timeout ? 'The operation timed out.' : 'The operation was aborted.', timeout ? 'TimeoutError' : 'AbortError'));
    return;
  }
  const { id } = message;
  const controller = new AbortController();
  inFlight.set(id, controller);
  exchangeHttp({ ...message.request, signal: controller.signal })
    .then(
      ({ body, ...answer }) => {
        // A copy of its own: a small Buffer is a view into a shared pool, which cannot be moved.
        const bytes = new Uint8Array(body);
        reply({ id, answer: { ...answer, body: bytes.buffer } }, bytes.buffer);
      },
      (err: unknown) => {
        // Not an HttpError (a CA file that cannot be read): the caller gets it as it would here.
        const e = err as { message?: string; code?: unknown };
        const code = typeof e?.code === 'string' ? e.code : 'ERROR';
        reply({ id, error: { message: String(e?.message ?? err), code, http: err instanceof HttpError } });
      },
    )
    .finally(() => inFlight.delete(id));
}
