// src/clients/network.ts: the shared wording, address helpers, TLS sniff and foreign-byte preview
// (pure), and the byte guard on a real loopback socket.
import { connect, createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  describeNetworkError,
  guardForeignBytes,
  isIpAddress,
  isTlsRecord,
  previewForeignBytes,
  socketHost,
  tlsServerName,
} from '../../src/clients/network.js';
import { serveOnLoopback } from '../support/faults.js';

describe('network wording and addresses', () => {
  it('words refused, unresolved and unreachable the same for every client', () => {
    expect(describeNetworkError('ECONNREFUSED', 'h:1', 'h')).toBe('connection refused on h:1');
    expect(describeNetworkError('ENOTFOUND', 'h:1', 'h')).toBe('cannot resolve host h');
    expect(describeNetworkError('EAI_AGAIN', 'h:1', 'h')).toBe('cannot resolve host h');
    expect(describeNetworkError('EHOSTUNREACH', 'h:1', 'h')).toBe('no route to h:1 (EHOSTUNREACH)');
    expect(describeNetworkError('ECONNRESET', 'h:1', 'h')).toBeUndefined();
  });

  it('tells IP literals from names, with or without brackets, and sends SNI only for names', () => {
    expect(isIpAddress('10.0.0.1')).toBe(true);
    expect(isIpAddress('[::1]')).toBe(true);
    expect(isIpAddress('db.example')).toBe(false);
    expect(isIpAddress('1234.example')).toBe(false);
    expect(socketHost(new URL('redis://[::1]:6379'))).toBe('::1');
    expect(tlsServerName('::1')).toEqual({});
    expect(tlsServerName('db.example')).toEqual({ servername: 'db.example' });
  });

  it('sniffs a TLS record and previews foreign bytes on one printable line', () => {
    expect(isTlsRecord(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02]))).toBe(true);
    expect(isTlsRecord(Buffer.from('HTTP/1.1'))).toBe(false);
    expect(previewForeignBytes(Buffer.from('HTTP/1.1 400 Bad Request\r\nServer: x\r\n'))).toBe('HTTP/1.1 400 Bad Request');
    expect(previewForeignBytes(Buffer.from('\x00\x01ab\x02cd'))).toBe('ab cd');
    expect(previewForeignBytes(Buffer.alloc(100, 'a'))).toBe(`${'a'.repeat(60)}...`);
  });
});

describe('guardForeignBytes', () => {
  async function exchange(replies: Buffer[], accepts: (chunk: Buffer, first: boolean) => boolean, maxBytes = 1 << 20) {
    const peer = await serveOnLoopback(
      createServer((s) => {
        s.on('error', () => {});
        // One write per reply, apart, so each arrives as its own chunk.
        replies.reduce((p, r) => p.then(() => new Promise<void>((done) => s.write(r, () => setTimeout(done, 20)))), Promise.resolve());
      }),
    );
    const socket: Socket = connect({ host: '127.0.0.1', port: peer.port });
    const guard = guardForeignBytes(socket, { protocol: 'Test', accepts, maxBytes });
    const delivered: string[] = [];
    socket.on('data', (chunk: Buffer) => delivered.push(chunk.toString()));
    const error = await new Promise<Error | undefined>((done) => {
      socket.once('error', done);
      socket.once('close', () => done(undefined));
      setTimeout(() => {
        socket.destroy();
      }, 500);
    });
    await peer.close();
    return { guard, delivered, error };
  }

  it('cuts at a first answer of another protocol, and the driver never sees it', async () => {
    const r = await exchange([Buffer.from('HTTP/1.1 400 Bad Request\r\n')], (chunk, first) => !first || chunk[0] === 0x2b);
    expect(r.delivered).toEqual([]);
    expect(r.error?.message).toBe('the peer does not speak Test (it answered "HTTP/1.1 400 Bad Request")');
    expect(r.guard.tripped?.reason).toBe('first answer');
  });

  it('passes what the protocol accepts, and cuts at a later chunk it refuses', async () => {
    const r = await exchange([Buffer.from('+OK'), Buffer.from('junk')], (chunk) => chunk[0] === 0x2b);
    expect(r.delivered).toEqual(['+OK']);
    expect(r.guard.tripped?.reason).toBe('later answer');
    expect(r.error?.message).toBe('the peer sent bytes that are not Test');
  });

  it('cuts past its byte cap', async () => {
    const r = await exchange([Buffer.alloc(600, '+'), Buffer.alloc(600, '+')], () => true, 1000);
    expect(r.delivered.join('').length).toBe(600);
    expect(r.error?.message).toBe('the peer sent more than 1000 bytes, more than any Test answer this check asks for');
  });
});
