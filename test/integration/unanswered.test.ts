// Each built-in kind says when its peer gave no answer at all (CheckOutcome.unanswered, which
// paces --wait): against a port nobody listens on (refused), a peer that accepts and never sends
// a byte (silent), and a peer that answers in another protocol (it answered: no field).
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawServer, refusedPort, serveOnLoopback, silentServer, type TcpPeer } from '../support/faults.js';
import { runCheck } from '../support/run-check.js';

let refused: number;
let silent: TcpPeer;
let foreign: TcpPeer;
let unavailable: TcpPeer;
beforeAll(async () => {
  refused = await refusedPort();
  silent = await silentServer();
  foreign = await rawServer('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
  unavailable = await serveOnLoopback(createServer((_req, res) => res.writeHead(503).end('{"status":"starting"}')));
});
afterAll(async () => {
  await Promise.all([silent.close(), foreign.close(), unavailable.close()]);
});

/** Options of `kind` pointing at 127.0.0.1:port. */
const at: Record<string, (port: number) => unknown> = {
  http: (port) => ({ url: `http://127.0.0.1:${port}/health` }),
  health: (port) => ({ url: `http://127.0.0.1:${port}/health` }),
  metrics: (port) => ({ url: `http://127.0.0.1:${port}/metrics` }),
  opa: (port) => ({ url: `http://127.0.0.1:${port}` }),
  qdrant: (port) => ({ url: `http://127.0.0.1:${port}` }),
  tcp: (port) => ({ host: '127.0.0.1', port }),
  postgres: (port) => ({ dsn: `postgres://u:p@127.0.0.1:${port}/db?sslmode=disable` }),
  redis: (port) => ({ url: `redis://127.0.0.1:${port}` }),
  kafka: (port) => ({ brokers: `127.0.0.1:${port}` }),
};

describe('unanswered, set by the built-in kinds', () => {
  it.each(Object.keys(at))('%s: a refused connection is unanswered and refused', async (kind) => {
    const r = await runCheck(kind, at[kind]!(refused), { timeoutMs: 2000 });
    expect(r.status, r.message).toBe('fail');
    expect(r.message).toMatch(/refused/);
    expect(r.unanswered).toEqual({ host: '127.0.0.1', port: refused, refused: true });
  });

  it.each(Object.keys(at).filter((k) => k !== 'tcp'))('%s: a peer that never sends a byte is unanswered, not refused', async (kind) => {
    const r = await runCheck(kind, at[kind]!(silent.port), { timeoutMs: 800 });
    expect(r.status, r.message).toBe('fail');
    expect(r.unanswered, r.message).toEqual({ host: '127.0.0.1', port: silent.port, refused: false });
  });

  it.each(Object.keys(at).filter((k) => k !== 'tcp'))('%s: a peer that answers something else answered', async (kind) => {
    const r = await runCheck(kind, at[kind]!(foreign.port), { timeoutMs: 2000 });
    expect(r.status, r.message).toBe('fail');
    expect(r.unanswered, r.message).toBeUndefined();
  });

  it.each(['http', 'health', 'metrics', 'opa', 'qdrant'])('%s: an HTTP 503 answered', async (kind) => {
    const r = await runCheck(kind, at[kind]!(unavailable.port), { timeoutMs: 2000 });
    expect(r.status, r.message).toBe('fail');
    expect(r.unanswered, r.message).toBeUndefined();
  });
});
