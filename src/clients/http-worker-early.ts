// The HTTP thread (./http-thread.ts) takes about 50 ms to boot on a 2-core machine, longer than
// the CLI takes to load, read its config and plan: started by the CLI, it was what the first
// HTTP exchange waited for. So the launcher (../cli/launch.ts) starts it before it loads the
// CLI, and the CLI adopts it. They are two bundles: the handover is a global, and what the
// thread says before it is adopted (that it loaded, or that it failed or exited) is kept for it.
import type { Worker } from 'node:worker_threads';

const HANDOVER = Symbol.for('soma-verify.http-worker');

/** A started thread, with what it said before anyone listened. */
export interface EarlyWorker {
  worker: Worker;
  /** Replayed by the adopter, in order, then no longer recorded. */
  events: Array<{ event: 'message' | 'error' | 'exit'; value: unknown }>;
  stopRecording(): void;
}

/** Worker options of the HTTP thread, wherever it starts. */
export const HTTP_WORKER_OPTIONS = {
  // Not this process's flags (`--input-type`, `--eval` and others are refused in a worker).
  execArgv: [] as string[],
  // A small young generation: the thread holds little, and memory counts at 1000 endpoints.
  resourceLimits: { maxYoungGenerationSizeMb: 2 },
};

/** Start the HTTP thread from `file` now, for the CLI to adopt. Best effort: the CLI starts its own if this fails. */
export function startHttpWorkerEarly(file: string): void {
  if (process.env.SOMA_VERIFY_HTTP_THREAD === 'off') return;
  try {
    const { Worker } = process.getBuiltinModule('node:worker_threads');
    const worker = new Worker(file, HTTP_WORKER_OPTIONS);
    const events: EarlyWorker['events'] = [];
    const record = (event: 'message' | 'error' | 'exit') => (value: unknown) => events.push({ event, value });
    const listeners = { message: record('message'), error: record('error'), exit: record('exit') };
    for (const [event, listener] of Object.entries(listeners)) worker.on(event, listener);
    // Never what keeps the process alive: a command that makes no HTTP exchange exits as before.
    worker.unref();
    const early: EarlyWorker = {
      worker,
      events,
      stopRecording: () => {
        for (const [event, listener] of Object.entries(listeners)) worker.off(event, listener);
      },
    };
    (globalThis as Record<symbol, unknown>)[HANDOVER] = early;
  } catch {
    // no thread now: the CLI tries again, then makes its exchanges itself
  }
}

/** The thread the launcher started, once: undefined if it started none. */
export function adoptEarlyHttpWorker(): EarlyWorker | undefined {
  const holder = globalThis as Record<symbol, unknown>;
  const early = holder[HANDOVER] as EarlyWorker | undefined;
  delete holder[HANDOVER];
  return early;
}
