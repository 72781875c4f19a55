// The Redis check's own RESP client (src/clients/redis.ts) against a TCP peer that speaks RESP2
// the way a network delivers it: replies cut into single bytes, a greeting nobody asked for, an
// error reply in the middle of the pipeline, and bytes RESP cannot hold. Each ends in a clear
// result within the check's timeout. Run in process, from the sources.
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import redis from '../../../checks/redis.js';
import type { CheckOutcome } from '../../../src/check.js';
import { MARGIN_MS } from '../../support/run-check.js';
import { dripWrites } from '../../support/faults.js';

const TIMEOUT_MS = 2000;
let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

const INFO: Record<string, string> = {
  server: '# Server\r\nredis_version:7.2.4\r\nredis_mode:standalone\r\n',
  replication: '# Replication\r\nrole:master\r\nconnected_slaves:0\r\n',
  memory: '# Memory\r\nused_memory:1024\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n',
};
const bulk = (text: string) => `$${Buffer.byteLength(text)}\r\n${text}\r\n`;

/** The commands in what a client sent (RESP arrays of bulk strings), as they complete. */
function commandsOf(onCommand: (args: string[], socket: Socket) => void) {
  return (socket: Socket) => {
    let pending = '';
    socket.on('data', (chunk) => {
      pending += chunk.toString('latin1');
      for (;;) {
        const match = /^\*(\d+)\r\n/.exec(pending);
        if (!match) return;
        let at = match[0].length;
        const args: string[] = [];
        for (let i = 0; i < Number(match[1]); i++) {
          const head = /^\$(\d+)\r\n/.exec(pending.slice(at));
          if (!head || pending.length < at + head[0].length + Number(head[1]) + 2) return;
          args.push(pending.slice(at + head[0].length, at + head[0].length + Number(head[1])));
          at += head[0].length + Number(head[1]) + 2;
        }
        pending = pending.slice(at);
        onCommand(args, socket);
      }
    });
  };
}

/** What a Redis server answers to the check's commands. */
function answer(args: string[], password?: string): string {
  const [name, ...rest] = args;
  if (name === 'AUTH') return rest.at(-1) === password ? '+OK\r\n' : '-WRONGPASS invalid username-password pair or user is disabled.\r\n';
  if (name === 'SELECT') return rest[0] === '0' || rest[0] === '1' ? '+OK\r\n' : '-ERR DB index is out of range\r\n';
  if (name === 'PING') return '+PONG\r\n';
  if (name === 'INFO') return bulk(INFO[rest[0]!] ?? '');
  return `-ERR unknown command '${name}'\r\n`;
}

async function listen(handler: (socket: Socket) => void): Promise<number> {
  server = createServer((socket) => {
    socket.on('error', () => {}); // the check closes its side when it is done
    handler(socket);
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function check(options: object): Promise<{ outcome: CheckOutcome; wallMs: number }> {
  const validated = await redis.options['~standard'].validate(options);
  if ('issues' in validated && validated.issues) throw new Error(JSON.stringify(validated.issues));
  const started = performance.now();
  const outcome = await redis.run(validated.value, { signal: AbortSignal.timeout(TIMEOUT_MS), timeoutMs: TIMEOUT_MS, dependencies: new Map(), log: () => {} });
  return { outcome, wallMs: performance.now() - started };
}

describe('the Redis client on the wire', () => {
  it('reads replies that arrive one byte at a time, and sends every command after connecting in one write', async () => {
    const writes: number[] = [];
    const port = await listen((socket) => {
      socket.on('data', (chunk) => writes.push(chunk.length));
      dripWrites(socket); // every reply, in order, one byte per write
      commandsOf((args) => socket.write(answer(args, 'pw-0123456789')))(socket);
    });
    const { outcome } = await check({ url: `redis://:pw-0123456789@127.0.0.1:${port}/1` });
    expect(outcome.status, outcome.message).toBe('pass');
    expect(outcome.message).toMatch(/^Redis 7\.2\.4 on 127\.0\.0\.1:\d+ answers PONG .+ role master$/);
    expect(outcome.details).toMatchObject({ db: 1, maxmemoryPolicy: 'noeviction', usedMemory: 1024 });
    // AUTH, SELECT, PING and three INFO: one round trip.
    expect(writes).toHaveLength(1);
  });

  it('names the command an error reply answers, even in the middle of the pipeline', async () => {
    const port = await listen(commandsOf((args, s) => s.write(answer(args))));
    const { outcome } = await check({ url: `redis://127.0.0.1:${port}/7` });
    expect(outcome).toMatchObject({ status: 'fail', message: `db index 7 is out of range on 127.0.0.1:${port}` });
  });

  it('fails a wrong password as an authentication failure', async () => {
    const port = await listen(commandsOf((args, s) => s.write(answer(args, 'right-password-1'))));
    const { outcome } = await check({ url: `redis://:wrong-password-2@127.0.0.1:${port}/0` });
    expect(outcome).toMatchObject({ status: 'fail', message: `authentication failed for user default on 127.0.0.1:${port}` });
  });

  it('does not take a greeting nobody asked for as the answer to PING', async () => {
    const port = await listen((socket) => {
      socket.write('+hello\r\n');
      commandsOf((args, s) => s.write(answer(args)))(socket);
    });
    const { outcome, wallMs } = await check({ url: `redis://127.0.0.1:${port}/0` });
    expect(outcome).toMatchObject({ status: 'fail', message: `PING on 127.0.0.1:${port} answered "hello", not PONG` });
    expect(wallMs).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
  });

  it('fails a reply RESP cannot hold as "not a Redis server", within its timeout', async () => {
    for (const reply of ['$5\r\nPONGXYZ\r\n', ':12x\r\n', '+PONG\r\n?what\r\n', `${'*1\r\n'.repeat(5000)}:1\r\n`]) {
      const port = await listen(commandsOf((_args, s) => s.write(reply)));
      const { outcome, wallMs } = await check({ url: `redis://127.0.0.1:${port}/0` });
      expect(outcome.status, reply).toBe('fail');
      expect(outcome.message, reply).toMatch(new RegExp(`^not a Redis server on 127\\.0\\.0\\.1:${port}`));
      expect(wallMs).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
      await new Promise<void>((resolve) => server!.close(() => resolve()));
      server = undefined;
    }
  });
});
