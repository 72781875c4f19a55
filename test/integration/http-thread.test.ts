// src/clients/http-thread.ts when its thread misbehaves: the exchanges it was given end, with
// an answer or a failure that names the cause, and nothing is sent to a server twice. Each case
// runs a real worker thread on a small script standing in for the HTTP thread.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { HttpThread } from '../../src/clients/http-thread.js';
import { adoptEarlyHttpWorker, startHttpWorkerEarly, type EarlyWorker } from '../../src/clients/http-worker-early.js';

let server: Server;
let url: string;
let hits = 0;
let dir: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    hits++;
    req.resume();
    res.end('{"status":"ok"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}/health`;
  dir = await mkdtemp(join(tmpdir(), 'soma-http-thread-'));
});

afterAll(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
});

async function threadFile(source: string): Promise<string> {
  const file = join(dir, `thread-${Math.random().toString(36).slice(2)}.mjs`);
  await writeFile(file, source);
  return file;
}

async function threadRunning(source: string): Promise<HttpThread> {
  return new HttpThread(new Worker(await threadFile(source)));
}

/** A thread started as the launcher starts it, once it has said `count` things nobody listened to. */
async function startedEarly(source: string, count: number): Promise<EarlyWorker> {
  startHttpWorkerEarly(await threadFile(source));
  const early = (globalThis as Record<symbol, EarlyWorker | undefined>)[Symbol.for('soma-verify.http-worker')]!;
  await vi.waitFor(() => expect(early.events.length).toBe(count), { timeout: 5000 });
  return early;
}

describe('the HTTP thread', () => {
  it('that fails to load has sent nothing: its exchanges are made in the calling thread, and answered', async () => {
    const thread = await threadRunning(`throw new Error('cannot load');`);
    const before = hits;
    const answer = await thread.exchange({ url, timeoutMs: 5000 });
    expect(answer.status).toBe(200);
    expect(answer.body.toString()).toBe('{"status":"ok"}');
    expect(hits - before).toBe(1);
  });

  it('that stops with exchanges in hand fails them, naming why, and does not send them again', async () => {
    const thread = await threadRunning(`
      import { parentPort } from 'node:worker_threads';
      parentPort.postMessage([]);
      parentPort.on('message', () => process.exit(3));
    `);
    const before = hits;
    const failure = await thread.exchange({ url, timeoutMs: 5000 }).catch((e: unknown) => e);
    expect((failure as Error).message).toBe(`request to ${new URL(url).host} failed: the HTTP thread stopped (exit code 3)`);
    expect(hits - before).toBe(0);
  });

  it('that never answers is bounded: the exchange fails soon after its own timeout', async () => {
    const thread = await threadRunning(`
      import { parentPort } from 'node:worker_threads';
      parentPort.postMessage([]);
      parentPort.on('message', () => {});
    `);
    const started = performance.now();
    const failure = await thread.exchange({ url, timeoutMs: 300 }).catch((e: unknown) => e);
    expect((failure as Error).message).toBe(`no response from ${new URL(url).host} within 300 ms`);
    expect(performance.now() - started).toBeLessThan(300 + 2000 + 3000);
  });

  it('started by the launcher is adopted with what it said before: it had loaded, so an exchange in hand when it stops fails and is not sent again', async () => {
    await startedEarly(
      `
      import { parentPort } from 'node:worker_threads';
      parentPort.postMessage([]);
      parentPort.on('message', () => process.exit(3));
    `,
      1,
    );
    const early = adoptEarlyHttpWorker()!;
    expect(adoptEarlyHttpWorker()).toBeUndefined(); // handed over once
    const thread = new HttpThread(early.worker, early);
    const before = hits;
    const failure = await thread.exchange({ url, timeoutMs: 5000 }).catch((e: unknown) => e);
    expect((failure as Error).message).toBe(`request to ${new URL(url).host} failed: the HTTP thread stopped (exit code 3)`);
    expect(hits - before).toBe(0);
  });

  it('started by the launcher and gone before it was adopted: exchanges are made in the calling thread, and answered', async () => {
    await startedEarly(`process.exit(4);`, 1);
    vi.resetModules(); // a fresh CLI, which has adopted no thread yet
    const { httpThread } = await import('../../src/clients/http-thread.js');
    const { exchangeHttp } = await import('../../src/clients/http.js');
    expect(httpThread()).toBeUndefined();
    const before = hits;
    const answer = await exchangeHttp({ url, timeoutMs: 5000 });
    expect(answer.status).toBe(200);
    expect(hits - before).toBe(1);
  });
});
