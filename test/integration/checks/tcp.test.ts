// The `tcp` kind against real sockets on loopback.
import { describe, expect, it } from 'vitest';
import { refusedPort, silentServer } from '../../support/faults.js';
import { runCheck } from '../../support/run-check.js';

describe('tcp', () => {
  it('passes when something accepts the connection, reporting the connect time', async () => {
    const peer = await silentServer();
    try {
      const out = await runCheck('tcp', { host: '127.0.0.1', port: peer.port });
      expect(out.status).toBe('pass');
      expect(out.message).toMatch(new RegExp(`^connected to 127\\.0\\.0\\.1:${peer.port} in \\d+ ms$`));
      expect(typeof out.details?.connectMs).toBe('number');
    } finally {
      await peer.close();
    }
  });
  it('fails a refused port, naming it', async () => {
    const port = await refusedPort();
    expect(await runCheck('tcp', { host: '127.0.0.1', port })).toMatchObject({ status: 'fail', message: `connection refused on 127.0.0.1:${port}` });
  });
  it('rejects a port out of range', async () => {
    expect((await runCheck('tcp', { host: '127.0.0.1', port: 70000 })).invalid).toBeDefined();
  });
});
