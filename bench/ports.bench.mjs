// `soma-ports assign` for the three projects (25 services), Node start-up included, against the
// stack scripts' approach: one `lsof -iTCP:<port> -sTCP:LISTEN` call per candidate port.
// Loopback only, temp dirs only; stops by itself. Needs `npm run build` first.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { reportRow } from './measure.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'bin', 'soma-ports.js');
const plan = JSON.parse(readFileSync(join(root, 'ports.json'), 'utf8'));
const REPS = 7;
const BUDGET_MS = 300;

// SFM's namespace 40000-40199 lies inside Linux's default ephemeral range (32768-60999), where
// soma-ports refuses to assign: benchmark it on a stand-in range below that, same offsets.
const [ephemeralLow] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
const overrides = {};
for (const [name, project] of Object.entries(plan.projects)) {
  if (project.range[1] >= ephemeralLow) overrides[name] = { range: [24000, 24199] };
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const time = (fn) => {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
};

const work = mkdtempSync(join(tmpdir(), 'soma-ports-bench-'));
try {
  const perProject = Object.fromEntries(Object.keys(plan.projects).map((name) => [name, []]));
  const whole = [];
  for (let rep = 0; rep < REPS; rep++) {
    const state = join(work, `state-${rep}`);
    const dirs = Object.keys(plan.projects).map((name) => {
      const dir = join(work, `rep-${rep}`, name);
      mkdirSync(dir, { recursive: true });
      // A realistic .env: comments, a secret, and no port keys yet.
      writeFileSync(join(dir, '.env'), `# ${name} local settings\nPOSTGRES_PASSWORD=bench-only\n`);
      if (Object.keys(overrides).length > 0) writeFileSync(join(dir, 'ports.json'), JSON.stringify({ projects: overrides }));
      return { name, dir };
    });
    whole.push(
      time(() => {
        for (const { name, dir } of dirs) {
          let run;
          const ms = time(() => {
            run = spawnSync(process.execPath, [bin, 'assign', '--project', name, '--json'], {
              cwd: dir,
              env: { ...process.env, SOMA_PORTS_STATE_DIR: state },
              encoding: 'utf8',
              timeout: 30_000,
            });
          });
          if (run.status !== 0) throw new Error(`soma-ports assign --project ${name} failed (${run.status}): ${run.stderr}`);
          perProject[name].push(ms);
        }
      }),
    );
  }

  // The old way: for every service, lsof on its candidate port (the preferred one; the scripts
  // then walked on port by port when it was taken, which only adds calls).
  const services = Object.values(plan.projects).flatMap((p) => Object.values(p.services));
  const script = services.map((s) => `if ! lsof -nP -iTCP:${s.preferred} -sTCP:LISTEN -t >/dev/null 2>&1; then echo "${s.key}=${s.preferred}"; fi`).join('\n');
  const lsofRuns = [];
  for (let rep = 0; rep < REPS; rep++) {
    lsofRuns.push(
      time(() => {
        const run = spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 120_000 });
        if (run.error) throw run.error;
      }),
    );
  }

  const rows = [
    ...Object.entries(perProject).map(([name, runs]) => [`soma-ports assign --project ${name}`, median(runs)]),
    [`soma-ports assign, all 3 projects (${services.length} services)`, median(whole)],
    [`lsof per port, ${services.length} ports (stack scripts)`, median(lsofRuns)],
  ];
  console.log(`median of ${REPS} runs, Node start-up included${Object.keys(overrides).length ? `; ${Object.keys(overrides).join(', ')} benchmarked on 24000-24199 (default range is ephemeral here)` : ''}`);
  for (const [label, ms] of rows) console.log(`${label.padEnd(62)} ${ms.toFixed(0).padStart(6)} ms`);
  const slowest = Math.max(...Object.values(perProject).map(median));
  reportRow('soma-ports assign, slowest project', `${slowest.toFixed(0)} ms, Node start-up included`, `< ${BUDGET_MS} ms`, slowest < BUDGET_MS);
  const ours = median(whole);
  const theirs = median(lsofRuns);
  const ratio = ours < theirs ? `${(theirs / ours).toFixed(2)}x faster` : `${(ours / theirs).toFixed(2)}x slower`;
  reportRow(`soma-ports assign, 3 projects, ${services.length} ports / lsof loop`, `${ours.toFixed(0)} / ${theirs.toFixed(0)} ms: ${ratio}`, 'faster', ours < theirs);
} finally {
  rmSync(work, { recursive: true, force: true });
}
