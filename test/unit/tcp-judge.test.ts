// judge() of checks/tcp.ts: no peer.
import { describe, expect, it } from 'vitest';
import { judge } from '../../checks/tcp.js';

describe('tcp judge', () => {
  it('passes a connection, with its time', () => {
    expect(judge({ connectMs: 1.26 }, { host: 'h', port: 1 })).toEqual({ status: 'pass', message: 'connected to h:1 in 1 ms', details: { connectMs: 1.3 } });
  });
  it('fails with the client cause', () => {
    expect(judge({ failure: 'connection refused on h:1' }, { host: 'h', port: 1 })).toEqual({ status: 'fail', message: 'connection refused on h:1', details: {} });
  });
});
