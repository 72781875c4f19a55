// src/clients/http-thread.ts when its thread misbehaves: the exchanges it was given end, with
// an answer or a failure that names the cause, and nothing is sent to a server twice. Each case
// runs a real worker thread on a small script standing in for the HTTP thread.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpThread } from '../../src/clients/http-thread.js';

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

async function threadRunning(source: string): Promise<HttpThread> {
  const file = join(dir, `thread-${Math.random().toString(36).slice(2)}.mjs`);
  await writeFile(file, source);
  return new HttpThread(new Worker(file));
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
});
