// The `postgres` check: is the database there, on the expected version and role, with the tables
// and migrations the services need? src/clients/postgres.ts connects (sslmode honoured, libpq
// semantics) and reads the facts; `judge` compares them with the options. It only reads: catalog
// lookups and SELECTs on the migration tables, never a write.
import * as v from 'valibot';
import { defineCheck, type CheckOutcome } from '../src/check.js';
import { maskCredentials } from '../src/redact.js';
import { dsnProblem, parseDsn, pgWhere, queryPostgres, type PostgresFacts } from '../src/clients/postgres.js';

const options = v.strictObject({
  // The message names what is wrong without echoing the DSN, which may hold a password.
  dsn: v.pipe(v.string(), v.check((dsn) => !dsnProblem(dsn), (issue) => dsnProblem(issue.input)!)),
  tables: v.optional(v.array(v.pipe(v.string(), v.minLength(1)))),
  migrations: v.optional(v.union([v.boolean(), v.picklist(['alembic', 'django'])])),
  minVersion: v.optional(v.pipe(v.string(), v.regex(/^\d+(\.\d+)?$/, 'minVersion must look like "15" or "15.4" (major.minor)'))),
  /** true: must be a primary (not in recovery); false: must be a standby. */
  primary: v.optional(v.boolean()),
});
export type PostgresOptions = v.InferOutput<typeof options>;

const RELKIND_NAMES: Record<string, string> = {
  // A materialized view takes no writes (a plain view, often auto-updatable, and a foreign table pass).
  m: 'a materialized view',
  i: 'an index',
  I: 'a partitioned index',
  S: 'a sequence',
  c: 'a composite type',
  t: 'a TOAST table',
};

/** [major, minor] of the server, from server_version_num (e.g. 150020 -> [15, 20]). */
function versionParts(versionNum: number): number[] {
  if (versionNum >= 100000) return [Math.floor(versionNum / 10000), versionNum % 10000];
  // Before 10 the major version had two parts: 90624 is 9.6.24.
  return [Math.floor(versionNum / 10000), Math.floor(versionNum / 100) % 100, versionNum % 100];
}

function versionBelow(actual: number[], wanted: number[]): boolean {
  for (let i = 0; i < Math.max(actual.length, wanted.length); i++) {
    const a = actual[i] ?? 0;
    const w = wanted[i] ?? 0;
    if (a !== w) return a < w;
  }
  return false;
}

/** The verdict on what the server said; pure, so it is tested without a server. */
export function judge(f: PostgresFacts, o: Omit<PostgresOptions, 'dsn'>): CheckOutcome {
  const at = pgWhere(f);
  const details: Record<string, unknown> = { host: f.host, port: f.port, user: f.user, database: f.database, sslMode: f.sslMode };
  if (f.tls !== undefined) details.tls = f.tls;
  if (f.latencyMs !== undefined) details.latencyMs = Math.round(f.latencyMs * 100) / 100;
  if (f.serverVersion !== undefined) {
    Object.assign(details, { serverVersion: f.serverVersion, serverVersionNum: f.serverVersionNum, inRecovery: f.inRecovery });
  }
  if (f.failure) {
    return f.failure.stage === 'setup'
      ? { status: 'fail', message: f.failure.message }
      : { status: 'fail', message: f.failure.message, details, unanswered: f.failure.unanswered };
  }
  const version = f.serverVersion!.split(' ')[0];
  const problems: string[] = [];
  if (o.minVersion && versionBelow(versionParts(f.serverVersionNum!), o.minVersion.split('.').map(Number))) {
    problems.push(`server version ${version} is below the required ${o.minVersion}`);
  }
  if (o.primary === true && f.inRecovery) problems.push(`${at} is a standby (in recovery), expected a primary`);
  if (o.primary === false && !f.inRecovery) problems.push(`${at} is a primary, expected a standby (in recovery)`);
  // The DSN's own target_session_attrs: libpq refuses such a session, so the service would too.
  const wanted = f.targetSessionAttrs;
  if (wanted === 'read-write' && f.readOnly) problems.push(`${at} gives a read-only session (target_session_attrs=read-write)`);
  if (wanted === 'read-only' && f.readOnly === false) problems.push(`${at} gives a read-write session (target_session_attrs=read-only)`);
  if (wanted === 'primary' && f.inRecovery) problems.push(`${at} is a standby (target_session_attrs=primary)`);
  if (wanted === 'standby' && f.inRecovery === false) problems.push(`${at} is not a standby (target_session_attrs=standby)`);
  if (f.tables) problems.push(...judgeTables(f.tables, details));
  if (o.migrations) problems.push(...judgeMigrations(f, o.migrations, details));

  if (problems.length) return { status: 'fail', message: problems.join('; '), details };
  return {
    status: 'pass',
    message: `PostgreSQL ${version} on ${at} answers (${details.latencyMs} ms)${f.inRecovery ? ', standby' : ''}`,
    details,
  };
}

function judgeTables(rows: NonNullable<PostgresFacts['tables']>, details: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const missing = rows.filter((r) => r.relkind === null).map((r) => r.name);
  const notTables = rows.filter((r) => r.relkind !== null && RELKIND_NAMES[r.relkind]);
  details.tablesFound = rows.length - missing.length - notTables.length;
  if (missing.length) details.tablesMissing = missing;
  if (missing.length === 1) problems.push(`table ${missing[0]} missing`);
  if (missing.length > 1) problems.push(`tables ${missing.join(', ')} missing`);
  for (const r of notTables) problems.push(`${r.name} is ${RELKIND_NAMES[r.relkind!]}, not a table`);
  return problems;
}

function judgeMigrations(
  f: PostgresFacts,
  wanted: NonNullable<PostgresOptions['migrations']>,
  details: Record<string, unknown>,
): string[] {
  const problems: string[] = [];
  if (f.alembicHeads) {
    details.migrations = 'alembic';
    details.alembicHeads = f.alembicHeads;
    if (f.alembicHeads.length === 0) problems.push('alembic_version is empty: no migration applied');
  }
  if (f.django) {
    details.migrations = details.migrations ? 'alembic+django' : 'django';
    details.djangoMigrations = f.django.count;
    if (f.django.lastApplied) details.djangoLastApplied = f.django.lastApplied;
    if (f.django.count === 0) problems.push('django_migrations is empty: no migration applied');
  }
  if (!f.alembicHeads && !f.django) {
    const which =
      wanted === 'alembic'
        ? 'table alembic_version'
        : wanted === 'django'
          ? 'table django_migrations'
          : 'tables alembic_version and django_migrations';
    problems.push(`migrations not applied: ${which} missing in database ${f.database}`);
  }
  return problems;
}

export default defineCheck<PostgresOptions>({
  kind: 'postgres',
  options,
  target: (o) => maskCredentials(o.dsn),
  async run(o, ctx) {
    const facts = await queryPostgres(parseDsn(o.dsn), { tables: o.tables, migrations: o.migrations }, ctx);
    return judge(facts, o);
  },
});
