// An OPA peer for the opa check's tests: a real openpolicyagent/opa container when Docker answers,
// else a small node:http double that follows OPA's public HTTP API for the routes the check uses
// (Health API with ?bundles / ?plugins, Data API POST, bearer-token rejection as OPA answers it).
// Policies come from one small catalogue, written twice: as Rego for the real server and as
// functions of the input for the double, so a test reads the same whichever provider runs it.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { announcePeer, dockerAvailable } from '../docker.js';
import { fetchHttp } from '../../../src/clients/http.js';
import { serveOnLoopback } from '../faults.js';

type Decide = (input: unknown) => unknown;

interface CataloguePolicy {
  /** Rego module loaded through PUT /v1/policies/<id> into a real OPA. */
  rego: string;
  /** The same rules for the double: decision path -> result (undefined: rule undefined). */
  rules: Record<string, Decide>;
}

export const POLICIES = {
  /** SomaStack's shipped default: package soma.policy, deny by default. */
  'soma-deny-by-default': {
    rego: 'package soma.policy\n\ndefault allow := false\n',
    rules: { 'soma/policy/allow': () => false },
  },
  /** Allows admins, denies everyone else: proves the check sends its input. */
  'soma-allow-admins': {
    rego: 'package soma.policy\n\ndefault allow := false\n\nallow if input.user.role == "admin"\n',
    rules: {
      'soma/policy/allow': (input) =>
        (input as { user?: { role?: unknown } } | undefined)?.user?.role === 'admin',
    },
  },
} satisfies Record<string, CataloguePolicy>;
export type PolicyName = keyof typeof POLICIES;

export interface OpaPeerOptions {
  /** Policies to load (none: every decision is undefined). */
  policies?: PolicyName[];
  /** Require `Authorization: Bearer <token>` (OPA's --authentication=token, basic authz). */
  token?: string;
  /**
   * `never`: a bundle is configured whose server cannot be reached, so it never activates
   * (GET /health?bundles and ?plugins answer 500). Default: no bundles, healthy.
   */
  bundle?: 'none' | 'never';
}

export interface OpaPeer {
  provider: 'testcontainers' | 'http-double';
  url: string;
  token?: string;
  close(): Promise<void>;
}

const OPA_IMAGE = 'openpolicyagent/opa:1.4.2';

/** A real OPA in a container when Docker is available, else the HTTP double. */
export async function opaPeer(options: OpaPeerOptions = {}): Promise<OpaPeer> {
  if (await dockerAvailable()) return opaContainer(options);
  return opaHttpDouble(options);
}

async function opaContainer(options: OpaPeerOptions): Promise<OpaPeer> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const args = ['run', '--server', '--addr=0.0.0.0:8181', '--log-level=error'];
  const files: Array<{ content: string; target: string }> = [];
  if (options.token) {
    args.push('--authentication=token', '--authorization=basic', '/etc/opa/authz.rego');
    files.push({
      target: '/etc/opa/authz.rego',
      content: `package system.authz\n\ndefault allow := false\n\nallow if input.identity == ${JSON.stringify(options.token)}\n`,
    });
  }
  if (options.bundle === 'never') {
    args.push('--config-file=/etc/opa/config.yaml');
    files.push({
      target: '/etc/opa/config.yaml',
      // Port 9 (discard) on the container's loopback: nothing answers, the bundle never activates.
      content:
        'services:\n  nowhere:\n    url: http://127.0.0.1:9\nbundles:\n  soma:\n    service: nowhere\n    resource: bundles/soma.tar.gz\n',
    });
  }
  const container = await new GenericContainer(OPA_IMAGE)
    .withCommand(args)
    .withCopyContentToContainer(files)
    .withExposedPorts(8181)
    .withWaitStrategy(
      options.token
        ? Wait.forListeningPorts()
        : Wait.forHttp('/health', 8181).forStatusCode(200),
    )
    .withStartupTimeout(60_000)
    .start();
  const url = `http://${container.getHost()}:${container.getMappedPort(8181)}`;
  try {
    // Test setup, not the check: the check itself never loads policies.
    for (const name of options.policies ?? []) {
      const res = await fetchHttp({
        url: `${url}/v1/policies/${name}`,
        method: 'PUT',
        headers: {
          'content-type': 'text/plain',
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        },
        body: POLICIES[name].rego,
        timeoutMs: 10_000,
      });
      if (res.status !== 200) throw new Error(`loading policy ${name}: HTTP ${res.status} ${res.text}`);
    }
  } catch (err) {
    await container.stop();
    throw err;
  }
  announcePeer('opa', 'testcontainers', `${OPA_IMAGE} ${url}`);
  return { provider: 'testcontainers', url, token: options.token, close: async () => void (await container.stop()) };
}

/** The HTTP double, always. */
export async function opaHttpDouble(options: OpaPeerOptions = {}): Promise<OpaPeer> {
  const rules: Record<string, Decide> = Object.assign(
    {},
    ...(options.policies ?? []).map((name) => POLICIES[name].rules),
  );
  const server = createServer((req, res) => {
    readBody(req)
      .then((body) => answer(req, body, res, options, rules))
      .catch((err: unknown) => sendJson(res, 500, { code: 'internal_error', message: String(err) }));
  });
  const served = await serveOnLoopback(server);
  const url = served.url();
  announcePeer('opa', 'http-double', url);
  return {
    provider: 'http-double',
    url,
    token: options.token,
    close: served.close,
  };
}

function answer(
  req: IncomingMessage,
  body: string,
  res: ServerResponse,
  options: OpaPeerOptions,
  rules: Record<string, Decide>,
): void {
  const url = new URL(req.url ?? '/', 'http://double');
  if (options.token && req.headers.authorization !== `Bearer ${options.token}`) {
    return sendJson(res, 401, { code: 'unauthorized', message: 'request rejected by administrative policy' });
  }
  if (req.method === 'GET' && url.pathname === '/health') {
    const bundlePending = options.bundle === 'never';
    if (url.searchParams.has('bundles') && bundlePending) {
      return sendJson(res, 500, { error: 'not all configured bundles have been activated' });
    }
    // The bundle plugin stays NOT_READY while its bundle has not activated.
    if (url.searchParams.has('plugins') && bundlePending) {
      return sendJson(res, 500, { error: 'not all plugins in OK state' });
    }
    return sendJson(res, 200, {});
  }
  if (req.method === 'POST' && url.pathname.startsWith('/v1/data')) {
    let input: unknown;
    if (body.trim()) {
      try {
        input = (JSON.parse(body) as { input?: unknown }).input;
      } catch (err) {
        return sendJson(res, 400, { code: 'invalid_parameter', message: `body contains malformed input document: ${String(err)}` });
      }
    }
    const path = url.pathname.replace(/^\/v1\/data\/?/, '').split('/').map(decodeURIComponent).join('/');
    const result = evaluate(rules, path, input);
    return sendJson(res, 200, result === undefined ? {} : { result });
  }
  // Go's ServeMux answer for an unknown route.
  res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
}

/** A rule's value, or the document of a package: its defined rules below that path. */
function evaluate(rules: Record<string, Decide>, path: string, input: unknown): unknown {
  const rule = rules[path];
  if (rule) return rule(input);
  const prefix = path ? `${path}/` : '';
  const below = Object.keys(rules).filter((p) => p.startsWith(prefix));
  if (below.length === 0) return undefined;
  const doc: Record<string, unknown> = {};
  for (const p of below) {
    const keys = p.slice(prefix.length).split('/');
    let node = doc;
    for (const k of keys.slice(0, -1)) node = (node[k] ??= {}) as Record<string, unknown>;
    const value = rules[p]!(input);
    if (value !== undefined) node[keys.at(-1)!] = value;
  }
  return doc;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
