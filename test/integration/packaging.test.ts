// The container image, the Kubernetes and Helm manifests and the GitHub Actions example, checked
// for what can be checked without a Docker engine or a cluster: every file parses, its fields
// say what the README promises, every soma-verify command line in it goes through the CLI's own
// argument parsers (a renamed flag breaks this test), the config it ships loads with tokens read
// through the _FILE variables, and the files the Dockerfile copies into its runtime stage are
// enough to run soma-verify from a folder with no node_modules.
import { createServer } from 'node:http';
import { cp, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { parseFast } from '../../src/cli/verify-options.js';
import { parseServeArgs, type ServeArgs } from '../../src/cli/serve.js';
import { serveOnLoopback, type TcpPeer } from '../support/faults.js';
import { ROOT, tempProject } from '../support/cli.js';

type Doc = Record<string, any>;
const docsOf = async (path: string): Promise<Doc[]> => {
  const text = await readFile(join(ROOT, path), 'utf8');
  return parseAllDocuments(text).map((d) => {
    expect(d.errors, `${path}: ${d.errors.join('; ')}`).toEqual([]);
    return d.toJS() as Doc;
  });
};

/** Values of the chart, substituted as Helm would for the simple `{{ .Values.x }}` used here. */
async function renderChart(path: string): Promise<Doc[]> {
  const values = (await docsOf('deploy/helm/soma-verify-gate/values.yaml'))[0]!;
  const text = (await readFile(join(ROOT, path), 'utf8'))
    .replace(/\{\{ \.Values\.(\w+) \}\}/g, (_m, key: string) => {
      expect(values, `values.yaml lacks ${key}`).toHaveProperty(key);
      return String(values[key]);
    })
    .replace(/\{\{ \.Release\.Name \}\}/g, 'somastack');
  expect(text).not.toContain('{{');
  return parseAllDocuments(text).map((d) => d.toJS() as Doc);
}

/** Every soma-verify command line, parsed: a verification (parseFast) or serve mode. */
function parseCommand(args: string[]): { serve: ServeArgs } | { verify: NonNullable<ReturnType<typeof parseFast>> } {
  if (args[0] === 'serve') {
    const serve = parseServeArgs(args.slice(1));
    if (typeof serve === 'string') throw new Error(`serve ${args.join(' ')}: ${serve}`);
    return { serve };
  }
  const verify = parseFast(args, {});
  if (!verify) throw new Error(`soma-verify does not accept: ${args.join(' ')}`);
  return { verify };
}

/** Restricted Pod Security Standard, and a read-only root with tokens through _FILE variables. */
function expectRestrictedPod(spec: Doc, where: string) {
  expect(spec.securityContext, where).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
  expect(spec.securityContext.runAsUser).toBeGreaterThan(0);
  expect(spec.automountServiceAccountToken).toBe(false);
  for (const c of spec.containers) {
    expect(c.securityContext, where).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    const mounts = Object.fromEntries(c.volumeMounts.map((m: Doc) => [m.name, m]));
    const volumes = Object.fromEntries(spec.volumes.map((v: Doc) => [v.name, v]));
    expect(volumes.config.configMap.name).toBeTruthy();
    expect(mounts.config).toMatchObject({ mountPath: '/config', readOnly: true });
    expect(volumes.tokens.secret.secretName).toBeTruthy();
    expect(mounts.tokens).toMatchObject({ mountPath: '/secrets', readOnly: true });
    // Tokens only through files; no literal value, no secretKeyRef into the environment.
    for (const e of c.env) {
      expect(e.name, where).toMatch(/_FILE$/);
      expect(e.value).toMatch(/^\/secrets\//);
    }
  }
}

describe('deploy/kubernetes', () => {
  it('the ConfigMap holds a config that loads, with every token read from its _FILE', async () => {
    const [configMap] = await docsOf('deploy/kubernetes/configmap.yaml');
    expect(configMap!.kind).toBe('ConfigMap');
    const p = await tempProject({
      'soma-verify.config.yaml': configMap!.data['soma-verify.config.yaml'],
      'secrets/somabrain-api-token': 'brain-token-1\n',
      'secrets/soma-api-token': 'sfm-token-2\n',
      'secrets/sa01-db-dsn': 'postgresql://soma:pw-3@postgres.soma.svc:5432/soma\n',
    });
    try {
      const [job] = await docsOf('deploy/kubernetes/job.yaml');
      const env = Object.fromEntries(
        job!.spec.template.spec.containers[0].env.map((e: Doc) => [e.name, e.value.replace('/secrets/', `${p.dir}/secrets/`)]),
      );
      const loaded = await loadConfig(join(p.dir, 'soma-verify.config.yaml'), env);
      const staging = loaded.config.environments.staging as Doc;
      expect(staging.services.somabrain.token).toBe('brain-token-1');
      expect(staging.services.sfm.token).toBe('sfm-token-2');
      expect(staging.services.postgres.dsn).toBe('postgresql://soma:pw-3@postgres.soma.svc:5432/soma');
    } finally {
      await p.remove();
    }
  });

  it('the Job is the gate: --wait, never retried, bounded, cleaned up, restricted', async () => {
    const [job] = await docsOf('deploy/kubernetes/job.yaml');
    expect(job!.kind).toBe('Job');
    expect(job!.spec.backoffLimit).toBe(0);
    expect(job!.spec.ttlSecondsAfterFinished).toBeGreaterThan(0);
    expect(job!.spec.template.spec.restartPolicy).toBe('Never');
    const args = job!.spec.template.spec.containers[0].args;
    const { verify } = parseCommand(args) as { verify: NonNullable<ReturnType<typeof parseFast>> };
    expect(verify.env).toBe('staging');
    expect(verify.config).toBe('/config/soma-verify.config.yaml');
    expect(verify.output).toMatch(/^\/reports\//);
    // The Job outlives the wait and one last attempt, or Kubernetes would kill the verdict.
    const { parseDuration } = await import('../../src/config/duration.js');
    expect(job!.spec.activeDeadlineSeconds * 1000).toBeGreaterThan(parseDuration(verify.wait!)! + 60_000);
    expectRestrictedPod(job!.spec.template.spec, 'job');
    const volumes = job!.spec.template.spec.volumes.map((v: Doc) => v.name);
    expect(volumes).toContain('reports'); // the only writable place
  });

  it('serve mode: Deployment, Service and ServiceMonitor agree on the port and labels', async () => {
    const docs = await docsOf('deploy/kubernetes/serve.yaml');
    const byKind = Object.fromEntries(docs.map((d) => [d.kind, d]));
    const deployment = byKind.Deployment!;
    const container = deployment.spec.template.spec.containers[0];
    const { serve } = parseCommand(container.args) as { serve: ServeArgs };
    expect(serve.host).toBe('0.0.0.0');
    expect(container.ports[0]).toMatchObject({ name: 'metrics', containerPort: serve.port });
    // Liveness watches the exporter, not the stack: /healthz is 503 whenever the stack fails.
    expect(container.livenessProbe.httpGet.path).toBe('/metrics');
    expectRestrictedPod(deployment.spec.template.spec, 'deployment');
    const podLabels = deployment.spec.template.metadata.labels;
    expect(deployment.spec.selector.matchLabels).toEqual(podLabels);
    const service = byKind.Service!;
    expect(service.spec.selector).toEqual(podLabels);
    expect(service.spec.ports[0]).toMatchObject({ name: 'metrics', targetPort: 'metrics' });
    const monitor = byKind.ServiceMonitor!;
    expect(monitor.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(monitor.spec.selector.matchLabels).toEqual(service.metadata.labels);
    expect(monitor.spec.endpoints[0]).toMatchObject({ port: 'metrics', path: '/metrics' });
  });
});

describe('deploy/helm', () => {
  it('the chart test hook runs the gate with --wait after helm upgrade', async () => {
    const [chart] = await docsOf('deploy/helm/soma-verify-gate/Chart.yaml');
    expect(chart).toMatchObject({ apiVersion: 'v2', name: 'soma-verify-gate' });
    const [pod] = await renderChart('deploy/helm/soma-verify-gate/templates/tests/gate.yaml');
    expect(pod!.kind).toBe('Pod');
    expect(pod!.metadata.annotations['helm.sh/hook']).toBe('test');
    expect(pod!.spec.restartPolicy).toBe('Never');
    expect(pod!.spec.activeDeadlineSeconds).toBeGreaterThan(300);
    const { verify } = parseCommand(pod!.spec.containers[0].args) as { verify: NonNullable<ReturnType<typeof parseFast>> };
    expect(verify.wait).toBe('5m');
    expect(verify.consecutive).toBe(2);
    expectRestrictedPod(pod!.spec, 'helm test');
  });
});

describe('examples/github-actions.yml', () => {
  it('deploys, gates with --wait, and uploads the JUnit report even when the gate fails', async () => {
    const [workflow] = await docsOf('examples/github-actions.yml');
    const steps: Doc[] = workflow!.jobs.deploy.steps;
    const deploy = steps.findIndex((s) => /helm upgrade/.test(s.run ?? ''));
    const gate = steps.findIndex((s) => /^soma-verify /m.test(s.run ?? ''));
    expect(deploy).toBeGreaterThanOrEqual(0);
    expect(gate).toBeGreaterThan(deploy);
    const lines = String(steps[gate]!.run).trim().split('\n');
    const command = lines.find((l) => l.startsWith('soma-verify '))!;
    const { verify } = parseCommand(command.trim().split(/\s+/).slice(1)) as { verify: NonNullable<ReturnType<typeof parseFast>> };
    expect(verify.wait).toBeTruthy();
    expect(verify.format).toBe('junit');
    // The report's folder exists before the gate writes into it (else: ENOENT after a whole --wait).
    expect(lines.slice(0, lines.indexOf(command))).toContain(`mkdir -p ${dirname(verify.output!)}`);
    const upload = steps.slice(gate + 1).find((s) => String(s.uses).startsWith('actions/upload-artifact@'));
    expect(upload?.if).toBe('always()');
    expect(upload!.with.path).toBe(verify.output);
    // Tokens come from secrets, by the names the config interpolates.
    expect(Object.values(steps[gate]!.env).every((v) => /^\$\{\{ secrets\.\w+ \}\}$/.test(String(v)))).toBe(true);
  });
});

describe('Dockerfile', () => {
  let dockerfile: string;
  let runtime: string[];
  beforeAll(async () => {
    dockerfile = await readFile(join(ROOT, 'Dockerfile'), 'utf8');
    runtime = dockerfile.split(/^FROM /m).at(-1)!.split('\n');
  });
  const instruction = (name: string) => runtime.filter((l) => l.startsWith(`${name} `)).map((l) => l.slice(name.length + 1).trim());

  it('gives the reports folder to the user it runs as (a volume Docker creates starts as root\'s)', () => {
    const user = instruction('USER')[0]!;
    expect(instruction('RUN')).toContain(`mkdir /reports && chown ${user} /reports`);
    expect(runtime.findIndex((l) => l.startsWith('RUN mkdir /reports'))).toBeLessThan(runtime.findIndex((l) => l.startsWith('USER ')));
  });

  it('is multi-stage, runs as a numeric non-root user under tini, and keeps secrets out of the context', async () => {
    expect(dockerfile.match(/^FROM /gm)!.length).toBeGreaterThanOrEqual(2);
    expect(instruction('USER').at(-1)).toMatch(/^[1-9]\d*:[1-9]\d*$/);
    const entrypoint = JSON.parse(instruction('ENTRYPOINT').at(-1)!) as string[];
    expect(entrypoint.slice(0, 3)).toEqual(['/sbin/tini', '--', 'node']);
    expect(instruction('RUN').join('\n')).toContain('apk add --no-cache tini');
    expect(instruction('VOLUME').join()).toContain('/reports');
    const ignored = (await readFile(join(ROOT, '.dockerignore'), 'utf8')).split('\n').map((l) => l.trim());
    for (const entry of ['.env', 'node_modules', 'dist', '.git']) expect(ignored).toContain(entry);
  });

  describe('what the runtime stage copies is all soma-verify needs', () => {
    let image: string;
    let remove: () => Promise<void>;
    let peer: TcpPeer;
    let command: string[];
    beforeAll(async () => {
      ({ dir: image, remove } = await tempProject());
      // COPY --from=build /src/a /src/b ./dest  (relative to WORKDIR /app), as Docker would.
      for (const line of instruction('COPY')) {
        const parts = line.split(/\s+/).filter((p) => !p.startsWith('--'));
        const dest = parts.pop()!;
        for (const src of parts) {
          const from = join(ROOT, src.replace(/^\/src\//, ''));
          const to = dest.endsWith('/') ? join(image, 'app', dest, src.split('/').at(-1)!) : join(image, 'app', dest);
          await mkdir(join(to, '..'), { recursive: true });
          await cp(from, to, { recursive: true });
        }
      }
      const entrypoint = JSON.parse(instruction('ENTRYPOINT').at(-1)!) as string[];
      command = entrypoint.slice(3).map((a) => a.replace(/^\/app\//, `${image}/app/`));
      peer = await serveOnLoopback(createServer((_req, res) => res.writeHead(200).end('{"status":"ok"}')));
    });
    afterAll(async () => {
      await peer?.close();
      await remove?.();
    });

    it('copies no node_modules, and the entrypoint with CMD prints the help', async () => {
      expect(await readdir(join(image, 'app'))).not.toContain('node_modules');
      const cmd = JSON.parse(instruction('CMD').at(-1)!) as string[];
      const { spawnSync } = await import('node:child_process');
      const help = spawnSync(process.execPath, [...command, ...cmd], { cwd: image, encoding: 'utf8' });
      expect(help.status).toBe(0);
      expect(help.stdout).toContain('soma-verify [env]');
      const serveHelp = spawnSync(process.execPath, [...command, 'serve', '--help'], { cwd: image, encoding: 'utf8' });
      expect(serveHelp.status).toBe(0);
      expect(serveHelp.stdout).toContain('--interval');
    });

    it('verifies an environment from the copy alone, writing the report to the reports volume', async () => {
      const config = join(image, 'config');
      await mkdir(config, { recursive: true });
      await mkdir(join(image, 'reports'), { recursive: true });
      await writeFile(join(config, 'soma-verify.config.yaml'), JSON.stringify({ environments: { staging: { checks: [{ id: 'web', kind: 'http', url: peer.url() }] } } }));
      const { spawn } = await import('node:child_process');
      const child = spawn(process.execPath, [...command, 'staging', '--wait', '10s', '--format', 'junit', '--output', join(image, 'reports/junit.xml')], {
        cwd: config,
        env: { PATH: process.env.PATH },
      });
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      expect(code).toBe(0);
      expect(await readFile(join(image, 'reports/junit.xml'), 'utf8')).toMatch(/<testcase name="web"/);
    });
  });
});
