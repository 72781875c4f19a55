// The zero-config `local` environment: the SomaStack topology at its documented host ports,
// moved by `.env` in the working directory and by the process environment (which wins), so that
// after `soma-ports assign` the verifier finds the stack where it was put.
//
// Host ports come from the port plan (ports.json) under the keys soma-ports writes. somabrain's
// and SFM's `.env` files share key names (POSTGRES_HOST_PORT, REDIS_HOST_PORT), so the project is
// detected from the `.env` keys first and its stores are the ones checked. Connection strings in
// `.env` usually name compose containers (`somabrain_postgres:5432`); from the host those are
// reached at 127.0.0.1 on the published port, with the string's credentials and database.
import { join } from 'node:path';
import { ConfigError } from '../config/issues.js';
import { resolveSecret, type Env } from '../config/secrets.js';
import { FileReadError } from '../read-file.js';
import type { EnvironmentConfig } from '../config/schema.js';

export interface LocalTopology {
  services: Record<string, unknown>;
  /** The project whose `.env` was found (somabrain, somafractalmemory, somaagent01), if any. */
  project?: string;
  /** Where each service's address came from, for --list and --verbose. */
  sources: Record<string, string>;
  /** Secret values resolved from the environment, for the redactor. */
  secrets: string[];
}

const DOCUMENTED_SFM_PORT = 9595; // gen1 API (contracts section 1)
const HOST_ALIASES = new Set(['localhost', '127.0.0.1', '::1', '[::1]', 'host.docker.internal', 'host-gateway']);

export async function localTopology(cwd: string, processEnv: Env): Promise<LocalTopology> {
  const { readEnvFile, composeValues, EnvParseError } = await import('../envfile.js');
  const { loadPlan, detectProject, PlanError } = await import('../ports/plan.js');
  const envPath = join(cwd, '.env');
  let dotenv: Map<string, string> = new Map();
  try {
    const file = await readEnvFile(envPath);
    // What compose gives the services: ${VAR} references resolved as it resolves them.
    if (file) dotenv = composeValues(file, processEnv);
  } catch (err) {
    if (err instanceof EnvParseError) throw new ConfigError([`${envPath}: ${err.message}`]);
    if (err instanceof FileReadError) throw new ConfigError([err.message]);
    throw new ConfigError([`${envPath}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]);
  }
  let plan;
  try {
    plan = await loadPlan(cwd);
  } catch (err) {
    if (err instanceof PlanError) throw new ConfigError([err.message]);
    throw err;
  }
  const env: Env = { ...Object.fromEntries(dotenv), ...processEnv };
  const project = detectProject(plan, dotenv.keys());
  const secrets: string[] = [];
  const sources: Record<string, string> = {};
  const secret = (...keys: string[]) => {
    for (const key of keys) {
      const found = resolveSecret(key, env);
      if (found) {
        secrets.push(found.value);
        return found.value;
      }
    }
    return undefined;
  };
  const portIn = (key: string): number | undefined => {
    const raw = env[key]?.trim();
    if (!raw) return undefined;
    const port = Number(raw);
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new ConfigError([`${key}=${raw.slice(0, 20)}: not a port (from ${key in processEnv ? 'the environment' : envPath})`]);
    return port;
  };

  // The detected project's plan first, then the others: the first that publishes `service` wins.
  const order = [project, 'somabrain', 'somafractalmemory', 'somaagent01'].filter(
    (p, i, all): p is string => !!p && all.indexOf(p) === i && !!plan.projects[p],
  );
  const hostPort = (service: string): { port: number; from: string } => {
    for (const name of order) {
      const entry = Object.entries(plan.projects[name]!.services).find(
        ([svc]) => svc === service || svc.startsWith(`${service}-`),
      )?.[1];
      if (!entry) continue;
      const port = portIn(entry.key);
      return port ? { port, from: entry.key } : { port: entry.preferred, from: `${name} default` };
    }
    throw new ConfigError([`the port plan publishes no ${service} service`]);
  };

  /** A variable's name, saying so when the process environment set it (it wins over .env). */
  const named = (key: string) => (processEnv[key] ? `${key} from the environment` : key);

  /** A connection string from the first set variable, its container host mapped to the host port. */
  const fromVariable = (service: string, keys: string[], scheme: string) => {
    const published = hostPort(service);
    for (const key of keys) {
      const value = env[key]?.trim();
      if (!value) continue;
      const mapped = mapToHost(value, scheme, published.port);
      sources[service] = mapped.note ? `${named(key)} (${mapped.note})` : named(key);
      return mapped.value;
    }
    sources[service] = `${named(published.from)} (${published.port})`;
    return undefined;
  };
  const byProject = <T>(choices: Record<string, T[]>, fallback: T[]): T[] =>
    [...(project ? (choices[project] ?? []) : []), ...fallback].filter((v, i, all) => all.indexOf(v) === i);

  const api = (service: string, key: string, fallbackPort: number) => {
    const given = portIn(key);
    const port = given ?? fallbackPort;
    sources[service] = given ? `${named(key)} (${port})` : `default (${port})`;
    return `http://127.0.0.1:${port}`;
  };
  const services: Record<string, unknown> = {};
  services.somabrain = {
    url: api('somabrain', 'SOMABRAIN_HOST_PORT', plan.projects.somabrain?.services.api?.preferred ?? 30101),
    token: secret('SOMABRAIN_API_TOKEN'),
  };
  const memoryEndpoint = env.SOMABRAIN_MEMORY_HTTP_ENDPOINT;
  const sfmPort =
    project === 'somafractalmemory' || !project ? portIn('API_PORT') : undefined;
  const endpointPort = memoryEndpoint ? portOfUrl(memoryEndpoint) : undefined;
  services.sfm = {
    url: `http://127.0.0.1:${sfmPort ?? endpointPort ?? DOCUMENTED_SFM_PORT}`,
    token: secret('SOMA_API_TOKEN', 'SOMABRAIN_MEMORY_HTTP_TOKEN'),
  };
  sources.sfm = sfmPort ? `API_PORT (${sfmPort})` : endpointPort ? `SOMABRAIN_MEMORY_HTTP_ENDPOINT (${endpointPort})` : `default (${DOCUMENTED_SFM_PORT})`;
  services.gateway = { url: api('gateway', 'GATEWAY_PORT', plan.projects.somaagent01?.services.gateway?.preferred ?? 20016) };

  const pg = hostPort('postgres');
  const dsn = fromVariable(
    'postgres',
    byProject({ somaagent01: ['SA01_DB_DSN'], somafractalmemory: ['SOMA_POSTGRES_URL'] }, ['SOMABRAIN_POSTGRES_DSN', 'SA01_DB_DSN', 'SOMA_POSTGRES_URL']),
    'postgresql',
  );
  const pgUser = env.POSTGRES_USER || 'postgres';
  const pgPassword = secret('POSTGRES_PASSWORD');
  services.postgres = {
    dsn: dsn ?? `postgresql://${encodeURIComponent(pgUser)}${pgPassword ? `:${encodeURIComponent(pgPassword)}` : ''}@127.0.0.1:${pg.port}/${encodeURIComponent(env.POSTGRES_DB || 'postgres')}`,
  };
  const redis = hostPort('redis');
  const redisPassword = secret('REDIS_PASSWORD');
  services.redis = {
    url:
      fromVariable('redis', byProject({ somaagent01: ['SA01_REDIS_URL'] }, ['SOMABRAIN_REDIS_URL', 'SA01_REDIS_URL', 'REDIS_URL']), 'redis') ??
      `redis://${redisPassword ? `:${encodeURIComponent(redisPassword)}@` : ''}127.0.0.1:${redis.port}`,
  };
  const kafka = hostPort('kafka');
  const brokers = fromVariable('kafka', ['SOMABRAIN_KAFKA_URL', 'KAFKA_BOOTSTRAP_SERVERS'], 'kafka');
  services.kafka = { brokers: brokers ?? `127.0.0.1:${kafka.port}` };
  const qdrant = hostPort('qdrant');
  services.qdrant = {
    url: fromVariable('qdrant', ['QDRANT_URL'], 'http') ?? `http://127.0.0.1:${qdrant.port}`,
    apiKey: secret('QDRANT_API_KEY'),
  };
  const opa = hostPort('opa');
  services.opa = {
    url: fromVariable('opa', ['SOMABRAIN_OPA_URL', 'OPA_URL'], 'http') ?? `http://127.0.0.1:${opa.port}`,
  };
  // The project's own stores must hold what its code needs (SomaAgent01's old stack check did
  // exactly this: its topics, group conversation-worker, table sessions.events).
  if (project === 'somaagent01' || project === 'somabrain') {
    const requiredBy = [project];
    Object.assign(services.kafka as object, { requiredBy });
    if (project === 'somaagent01') Object.assign(services.postgres as object, { requiredBy });
  }
  return { services: dropUndefined(services), project, sources, secrets };
}

/** The local environment as a config environment, ready for the planner. */
export function localEnvironmentConfig(topology: LocalTopology): unknown {
  return { services: topology.services, checks: [] } satisfies Partial<Record<keyof EnvironmentConfig, unknown>>;
}

/**
 * Map every host of a URL, DSN or broker list that names a compose container to 127.0.0.1 on
 * the published port; `host.docker.internal` becomes 127.0.0.1 on the same port.
 */
export function mapToHost(value: string, scheme: string, publishedPort: number): { value: string; note?: string } {
  const notes: string[] = [];
  const mapOne = (item: string): string => {
    const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(item);
    let url: URL;
    try {
      url = new URL(hasScheme ? item : `${scheme}://${item}`);
    } catch {
      return item;
    }
    const host = url.hostname;
    if (HOST_ALIASES.has(host) || host.includes('.') || host.includes(':')) {
      if (host === 'host.docker.internal' || host === 'host-gateway') {
        notes.push(`${host} is 127.0.0.1 from the host`);
        url.hostname = '127.0.0.1';
      } else return item;
    } else {
      notes.push(`container host ${host} reached at 127.0.0.1:${publishedPort}`);
      url.hostname = '127.0.0.1';
      url.port = String(publishedPort);
    }
    if (!hasScheme) return url.host;
    return url.href.replace(/\/$/, item.endsWith('/') ? '/' : '');
  };
  const mapped = value.split(',').map((s) => mapOne(s.trim())).join(',');
  return notes.length ? { value: mapped, note: [...new Set(notes)].join('; ') } : { value: mapped };
}

function portOfUrl(value: string): number | undefined {
  try {
    const url = new URL(value);
    return url.port ? Number(url.port) : undefined;
  } catch {
    return undefined;
  }
}

function dropUndefined(services: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(services).map(([k, v]) => [
      k,
      Object.fromEntries(Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined)),
    ]),
  );
}
