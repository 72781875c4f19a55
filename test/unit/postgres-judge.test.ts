// judge() of checks/postgres.ts on facts as src/clients/postgres.ts reports them: no server.
import { describe, expect, it } from 'vitest';
import { judge } from '../../checks/postgres.js';
import type { PostgresFacts } from '../../src/clients/postgres.js';

const server = (over: Partial<PostgresFacts> = {}): PostgresFacts => ({
  host: '127.0.0.1', port: 5432, user: 'soma', database: 'somamemory', sslMode: 'prefer',
  tls: false, latencyMs: 1.234, serverVersion: '16.4 (Debian 16.4-1)', serverVersionNum: 160004, inRecovery: false,
  ...over,
});

describe('postgres judge', () => {
  it('passes a reachable primary, naming version, place and latency', () => {
    const v = judge(server(), {});
    expect(v).toMatchObject({ status: 'pass', message: 'PostgreSQL 16.4 on 127.0.0.1:5432 answers (1.23 ms)' });
    expect(v.details).toMatchObject({ serverVersion: '16.4 (Debian 16.4-1)', serverVersionNum: 160004, inRecovery: false, tls: false });
  });

  it('says standby in the pass message of a server in recovery', () => {
    expect(judge(server({ inRecovery: true }), {}).message).toMatch(/, standby$/);
  });

  it('reports the client failure as it is, with the endpoint but no server facts', () => {
    const v = judge({ host: 'db', port: 5432, user: 'u', database: 'd', sslMode: 'require', failure: { stage: 'connect', message: 'connection refused on db:5432' } }, {});
    expect(v).toEqual({ status: 'fail', message: 'connection refused on db:5432', details: { host: 'db', port: 5432, user: 'u', database: 'd', sslMode: 'require' } });
  });

  it('gives no details for a failure before any connection (unreadable TLS file)', () => {
    const v = judge({ ...server(), failure: { stage: 'setup', message: 'cannot read TLS file: ENOENT' } }, {});
    expect(v).toEqual({ status: 'fail', message: 'cannot read TLS file: ENOENT' });
  });

  it('compares minVersion by major and minor, pre-10 versions included', () => {
    expect(judge(server(), { minVersion: '16' }).status).toBe('pass');
    expect(judge(server(), { minVersion: '16.5' }).message).toBe('server version 16.4 is below the required 16.5');
    expect(judge(server({ serverVersion: '9.6.24', serverVersionNum: 90624 }), { minVersion: '10' }).message).toBe(
      'server version 9.6.24 is below the required 10',
    );
    expect(judge(server({ serverVersion: '9.6.24', serverVersionNum: 90624 }), { minVersion: '9.6' }).status).toBe('pass');
  });

  it('fails a standby where a primary is wanted, and the reverse', () => {
    expect(judge(server({ inRecovery: true }), { primary: true }).message).toBe('127.0.0.1:5432 is a standby (in recovery), expected a primary');
    expect(judge(server(), { primary: false }).message).toBe('127.0.0.1:5432 is a primary, expected a standby (in recovery)');
  });

  it("judges the DSN's target_session_attrs as libpq would: a read-only session fails read-write, a standby fails primary", () => {
    expect(judge(server({ targetSessionAttrs: 'read-write', inRecovery: true, readOnly: true }), {}).message).toBe('127.0.0.1:5432 gives a read-only session (target_session_attrs=read-write)');
    expect(judge(server({ targetSessionAttrs: 'primary', inRecovery: true, readOnly: true }), {}).message).toBe('127.0.0.1:5432 is a standby (target_session_attrs=primary)');
    expect(judge(server({ targetSessionAttrs: 'read-write', readOnly: false }), {}).status).toBe('pass');
    expect(judge(server({ targetSessionAttrs: 'any', inRecovery: true, readOnly: true }), {}).status).toBe('pass');
  });

  it('names missing tables and relations that are not tables', () => {
    const v = judge(server({ tables: [{ name: 'a.x', relkind: 'r' }, { name: 'a.y', relkind: null }, { name: 'a.z', relkind: null }, { name: 'a.i', relkind: 'i' }] }), { tables: ['a.x', 'a.y', 'a.z', 'a.i'] });
    expect(v.message).toBe('tables a.y, a.z missing; a.i is an index, not a table');
    expect(v.details).toMatchObject({ tablesFound: 1, tablesMissing: ['a.y', 'a.z'] });
    expect(judge(server({ tables: [{ name: 'v', relkind: 'v' }] }), { tables: ['v'] }).status).toBe('pass');
    expect(judge(server({ tables: [{ name: 'mv', relkind: 'm' }] }), { tables: ['mv'] }).message).toBe('mv is a materialized view, not a table');
  });

  it('judges migrations: heads, counts, empties and absence', () => {
    const alembic = judge(server({ alembicHeads: ['abc'] }), { migrations: true });
    expect(alembic.status).toBe('pass');
    expect(alembic.details).toMatchObject({ migrations: 'alembic', alembicHeads: ['abc'] });
    expect(judge(server({ alembicHeads: [] }), { migrations: 'alembic' }).message).toBe('alembic_version is empty: no migration applied');
    const both = judge(server({ alembicHeads: ['abc'], django: { count: 0, lastApplied: undefined } }), { migrations: true });
    expect(both.message).toBe('django_migrations is empty: no migration applied');
    expect(both.details?.migrations).toBe('alembic+django');
    expect(judge(server(), { migrations: true }).message).toBe('migrations not applied: tables alembic_version and django_migrations missing in database somamemory');
    expect(judge(server(), { migrations: 'django' }).message).toBe('migrations not applied: table django_migrations missing in database somamemory');
  });
});
