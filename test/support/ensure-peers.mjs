// `npm test` runs this first (pretest): the suite needs PostgreSQL on 127.0.0.1:5432, Redis on
// 127.0.0.1:6379 and Debian's `kcat` (librdkafka's mock Kafka cluster). What is missing is brought
// up when this machine allows it (root, the tool present); otherwise the script stops within a
// second and prints the exact command to run. .ci/run calls it too.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdirSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PEERS = {
  postgres: { port: 5432, name: 'PostgreSQL on 127.0.0.1:5432' },
  redis: { port: 6379, name: 'Redis on 127.0.0.1:6379' },
};

const REDIS_DIRS = ['/var/lib/redis', '/var/log/redis'];
const REDIS_START =
  'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log';

/** The shell commands that bring each missing peer up (the Postgres one needs its version). */
export function commandsFor(pgVersion) {
  return {
    postgres: `pg_ctlcluster --skip-systemctl-redirect ${pgVersion ?? '$(ls /etc/postgresql)'} main start`,
    redis: `mkdir -p ${REDIS_DIRS.join(' ')} && ${REDIS_START}`,
    kcat: 'apt-get update && apt-get install -y kcat',
  };
}

/**
 * What to do, from what was found: `run` lists the peers this script starts or installs itself,
 * `ask` the ones the user must bring up (with the command). Pure, so that the rule is tested.
 * @param {{ postgresUp: boolean, redisUp: boolean, kcatFound: boolean, root: boolean, has: (tool: string) => boolean }} state
 */
export function decide(state) {
  const run = [];
  const ask = [];
  const need = (peer, missing, tool) => {
    if (!missing) return;
    (state.root && state.has(tool) ? run : ask).push(peer);
  };
  need('postgres', !state.postgresUp, 'pg_ctlcluster');
  need('redis', !state.redisUp, 'redis-server');
  need('kcat', !state.kcatFound, 'apt-get');
  return { run, ask };
}

/** True when something accepts a TCP connection on 127.0.0.1:port within timeoutMs. */
export function listening(port, timeoutMs = 500) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (up) => {
      socket.destroy();
      resolve(up);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** `command -v`, without a shell: is `tool` an executable in PATH? */
export function inPath(tool, path = process.env.PATH ?? '') {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      /* not here */
    }
  }
  return false;
}

async function waitFor(port, seconds) {
  for (let i = 0; i < seconds * 4; i++) {
    if (await listening(port, 250)) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

function pgVersion() {
  try {
    return readdirSync('/etc/postgresql').sort().at(-1);
  } catch {
    return undefined;
  }
}

function sh(command) {
  process.stderr.write(`ensure-peers: ${command}\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  return spawnSync('sh', ['-c', command], { stdio: ['ignore', 'inherit', 'inherit'], env }).status === 0;
}

async function main() {
  const [postgresUp, redisUp] = await Promise.all([listening(PEERS.postgres.port), listening(PEERS.redis.port)]);
  const state = { postgresUp, redisUp, kcatFound: inPath('kcat'), root: process.getuid?.() === 0, has: (tool) => inPath(tool) };
  const { run, ask } = decide(state);
  const commands = commandsFor(pgVersion());
  if (ask.length > 0) {
    const lines = ask.map((peer) => `  ${peer === 'kcat' ? 'kcat (librdkafka mock Kafka)' : PEERS[peer].name}: ${commands[peer]}`);
    process.stderr.write(
      `ensure-peers: the test suite needs what is missing below; run, as root:\n${lines.join('\n')}\nthen npm test again.\n`,
    );
    process.exit(1);
  }
  for (const peer of run) {
    if (peer === 'redis') for (const dir of REDIS_DIRS) mkdirSync(dir, { recursive: true });
    const ok = sh(peer === 'redis' ? REDIS_START : commands[peer]);
    const up = peer === 'kcat' ? inPath('kcat') : ok && (await waitFor(PEERS[peer].port, 30));
    if (!up) {
      process.stderr.write(`ensure-peers: could not bring up ${peer}; run: ${commands[peer]}\n`);
      process.exit(1);
    }
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
