// The thread that makes a run's HTTP exchanges. One JavaScript thread runs every check: an answer
// that arrives while another check runs its driver or parses a large body is read only once that
// work is done, and its latency would count that work (issue 11). The exchanges go to a worker
// thread whose event loop does nothing else; the checks decode and judge the answers here.
// Only the built code has the thread (http-worker.js beside this module). Run from the TypeScript
// sources (the tests' in-process imports), or when the thread cannot start or stops, the exchange
// is made in the calling thread, by the same code.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { exchangeHttp, HttpError, type HttpRequest, type RawAnswer } from './http.js';
import { adoptEarlyHttpWorker, HTTP_WORKER_OPTIONS, type EarlyWorker } from './http-worker-early.js';

export type ThreadRequest = { id: number; request: Omit<HttpRequest, 'signal'> } | { id: number; abort: 'timeout' | 'aborted' };
/** The thread's messages: batches of replies; its first, empty, says it has loaded. */
export type ThreadReply =
  | { id: number; answer: Omit<RawAnswer, 'body'> & { body: ArrayBuffer } }
  | { id: number; error: { message: string; code: string; http: boolean } };

/** How long past a request's own timeout this side waits for the thread's answer. */
const THREAD_SLACK_MS = 2000;

let thread: HttpThread | null | undefined;

/** The running HTTP thread, started on first use; undefined when there is none. */
export function httpThread(): HttpThread | undefined {
  if (thread === undefined) {
    thread = startThread();
    // A thread the launcher started may have failed before it was adopted.
    if (thread?.gone) thread = null;
  }
  return thread ?? undefined;
}

/** HTTP kinds' `prepare` (the thread starts while other kinds load their drivers); the CLI starts it sooner. */
export async function startHttpThread(): Promise<void> {
  httpThread();
}

function startThread(): HttpThread | null {
  const early = adoptEarlyHttpWorker();
  if (early) return new HttpThread(early.worker, early);
  if (process.env.SOMA_VERIFY_HTTP_THREAD === 'off') return null;
  const file = new URL(import.meta.url.endsWith('.cjs') ? './http-worker.cjs' : './http-worker.js', import.meta.url);
  if (!/\.c?js$/.test(import.meta.url) || !existsSync(fileURLToPath(file))) return null;
  try {
    return new HttpThread(new Worker(file, HTTP_WORKER_OPTIONS));
  } catch {
    return null;
  }
}

interface Pending {
  request: HttpRequest;
  settle(outcome: { answer: RawAnswer } | { error: Error }): void;
}

/** The failure the thread reported, as the exchange would have thrown it in this thread. */
function failureOf({ message, code, http }: { message: string; code: string; http: boolean }): Error {
  return http ? new HttpError(message, code) : Object.assign(new Error(message), { code });
}

export class HttpThread {
  private lastId = 0;
  private readonly pending = new Map<number, Pending>();
  /** The thread has loaded: from then on, what it was given may have reached a server. */
  private loaded = false;
  private outbox: ThreadRequest[] = [];
  /** The thread failed or exited: exchanges are made in the caller's thread. */
  gone = false;

  constructor(
    private readonly worker: Worker,
    early?: EarlyWorker,
  ) {
    const onMessage = (replies: ThreadReply[]) => {
      this.loaded = true;
      for (const reply of replies) {
        const outcome = 'error' in reply ? { error: failureOf(reply.error) } : { answer: { ...reply.answer, body: Buffer.from(reply.answer.body) } };
        this.pending.get(reply.id)?.settle(outcome);
      }
    };
    const onError = (err: Error) => this.stop(`the HTTP thread failed: ${err.message}`);
    const onExit = (code: number) => this.stop(`the HTTP thread stopped (exit code ${code})`);
    worker.on('message', onMessage).on('error', onError).on('exit', onExit);
    // Never what keeps the process alive (each pending exchange holds a timer that does); after
    // the listeners, which would take the reference again.
    worker.unref();
    // What a thread the launcher started said before this listened (see ./http-worker-early.ts).
    early?.stopRecording();
    for (const { event, value } of early?.events ?? []) {
      if (event === 'message') onMessage(value as ThreadReply[]);
      else if (event === 'error') onError(value as Error);
      else onExit(value as number);
    }
  }

  exchange(req: HttpRequest): Promise<RawAnswer> {
    if (this.gone) return exchangeHttp(req);
    const id = ++this.lastId;
    const { signal, ...request } = req;
    const host = new URL(req.url).host;
    return new Promise<RawAnswer>((resolve, reject) => {
      const onAbort = () => this.send({ id, abort: signal?.reason?.name === 'TimeoutError' ? 'timeout' : 'aborted' });
      // The thread bounds the exchange itself; this only covers a thread that never answers.
      const timer = setTimeout(
        () => settle({ error: new HttpError(`no response from ${host} within ${req.timeoutMs} ms`, 'TIMEOUT') }),
        req.timeoutMs + THREAD_SLACK_MS,
      );
      const settle: Pending['settle'] = (outcome) => {
        if (!this.pending.delete(id)) return;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if ('answer' in outcome) resolve(outcome.answer);
        else reject(outcome.error);
      };
      this.pending.set(id, { request: req, settle });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.send({ id, request });
      if (signal?.aborted) onAbort();
    });
  }

  /** Requests go out together, one message for all those made in the same turn. */
  private send(message: ThreadRequest) {
    if (this.outbox.length === 0) queueMicrotask(() => this.worker.postMessage(this.outbox.splice(0)));
    this.outbox.push(message);
  }

  /**
   * The thread is gone, and later exchanges are made in the caller's thread. One that never
   * loaded sent nothing: what it was given is made here instead. Once loaded, what it had in
   * hand may have reached the server, and is not sent twice: it fails.
   */
  private stop(why: string) {
    this.gone = true;
    if (thread === this) thread = null;
    for (const p of [...this.pending.values()]) {
      if (this.loaded) p.settle({ error: new HttpError(`request to ${new URL(p.request.url).host} failed: ${why}`, 'THREAD') });
      else exchangeHttp(p.request).then((answer) => p.settle({ answer }), (error: Error) => p.settle({ error }));
    }
  }
}
