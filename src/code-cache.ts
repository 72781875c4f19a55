// The built CLI (dist/bundle/cli/soma-verify-<hash>.cjs) and its libraries (kafkajs, yaml,
// yargs... in dist/bundle/vendor/) are CommonJS files run here with a V8 code cache, so that a
// run does not parse and compile megabytes of JavaScript again each time: that was the largest
// part of the tool's own time (issue 11). Hand-written because Node 20 has no
// module.enableCompileCache (Node 22 does) and its ES module loader takes no cache; vm.Script's
// cachedData is the documented way. The cache lives in $XDG_CACHE_HOME/soma-verify (else
// ~/.cache/soma-verify), one file per build of a file and Node version; a missing, stale, corrupt
// or unwritable cache only costs the compilation: V8 rejects data that does not match and the file
// is compiled from its source, so results never depend on the cache.
// Only the esbuild bundle uses this file (esbuild.config.mjs routes the imports here); tsc's
// output and the tests that import src/ load the libraries from node_modules as usual.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

const loaded = new Map<string, unknown>();
const toSave: Array<{ script: Script; filename: string; cacheFile: string }> = [];
/** Set once the V8 flags changed: a cache written now would not fit a run with the usual ones. */
let kept = false;

/** From now on, the caches on disk stay as they are (the caller changed V8's flags). */
export function keepCodeCaches(): void {
  kept = true;
  toSave.length = 0;
}

/** The folder of the code cache, or undefined when the user turned it off (SOMA_VERIFY_CACHE=off). */
export function cacheDir(env = process.env): string | undefined {
  if (env.SOMA_VERIFY_CACHE === 'off') return undefined;
  // The XDG spec: a relative XDG_CACHE_HOME is invalid and must be ignored.
  const base = env.XDG_CACHE_HOME && isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'soma-verify');
}

/**
 * module.exports of one vendored library. `file` is its build's name in dist/bundle/vendor/
 * (content-hashed, so a new build never meets an old cache under the same name).
 */
export function loadVendor(file: string): unknown {
  return runCommonJs(fileURLToPath(new URL(`../vendor/${file}`, import.meta.url)));
}

/**
 * Runs a CommonJS file once, as require() would, and returns its module.exports. Its name must
 * change with its content (a hash in it): V8 checks a cache against the source's length only.
 */
export function runCommonJs(filename: string): unknown {
  const known = loaded.get(filename);
  if (known) return known;
  const source = readFileSync(filename, 'utf8');
  const dir = cacheDir();
  const cacheFile = dir && join(dir, cacheName(basename(filename, '.cjs')));
  let cachedData: Buffer | undefined;
  try {
    if (cacheFile) cachedData = readFileSync(cacheFile);
  } catch {
    // none yet, or unreadable: compile from source
  }
  // Node's own CommonJS wrapper, so the file sees exports, require, module as it expects.
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename,
    cachedData,
  });
  const module = { exports: {} as unknown };
  const fn = script.runInThisContext() as (...args: unknown[]) => void;
  loaded.set(filename, module.exports); // a cycle sees the exports in progress, as with require()
  fn.call(module.exports, module.exports, createRequire(filename), module, filename, dirname(filename));
  loaded.set(filename, module.exports);
  if (cacheFile && !kept && (!cachedData || script.cachedDataRejected)) {
    if (toSave.length === 0) process.once('exit', saveCaches);
    toSave.push({ script, filename, cacheFile });
  }
  return module.exports;
}

/**
 * Written at exit, not at load: by then V8 has compiled the functions this run used, and the
 * cache holds them too. Atomic (temporary file, then rename), so a reader never sees half a file.
 */
function saveCaches() {
  let written: { folder: string; bundleRoot: string } | undefined;
  for (const { script, filename, cacheFile } of toSave.splice(0)) {
    const temporary = `${cacheFile}.${process.pid}.tmp`;
    try {
      mkdirSync(dirname(cacheFile), { recursive: true, mode: 0o700 });
      writeFileSync(temporary, script.createCachedData(), { mode: 0o600 });
      renameSync(temporary, cacheFile);
      written = { folder: dirname(cacheFile), bundleRoot: dirname(dirname(filename)) };
    } catch {
      // An unwritable cache folder only means the next run compiles again; one this user may
      // not even look into (another's, mode 0700) refuses the clean-up too, and that is no error.
      try {
        rmSync(temporary, { force: true });
      } catch {}
    }
  }
  // Once, after every cache of this run is written: all live in one folder.
  try {
    if (written) dropStale(written.folder, written.bundleRoot);
  } catch {
    // a folder we may not list keeps what it has
  }
}

/** `<file, content hash in its name>-<node version>-<arch>.v8cache` */
function cacheName(build: string) {
  return `${build}-${process.version}-${process.arch}.v8cache`;
}

/**
 * The folder keeps the caches of this install's files for this Node only: those of an older
 * build, of a library no longer shipped or of another Node go when a new one is written (that
 * is, after a build or an upgrade), instead of piling up.
 */
function dropStale(folder: string, bundleRoot: string) {
  const current = new Set<string>();
  for (const part of ['cli', 'vendor']) {
    for (const file of readdirSync(join(bundleRoot, part))) if (file.endsWith('.cjs')) current.add(cacheName(basename(file, '.cjs')));
  }
  for (const name of readdirSync(folder)) if (name.endsWith('.v8cache') && !current.has(name)) rmSync(join(folder, name), { force: true });
}
