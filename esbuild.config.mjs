// Bundles the two CLIs (our code and every dependency) into dist/bundle as CommonJS files that
// bin/ runs through launch.cjs with a V8 code cache (src/code-cache.ts). Node's module loader
// spends more time resolving and compiling hundreds of small files than the checks take to run,
// and its ES module loader takes no code cache on Node 20: resolving, linking and compiling ES
// chunks was a third of a verification's own time. tsc still type-checks and emits dist/src,
// dist/checks for the tests; of those, only the declarations of the public entry
// (dist/src/index.d.ts, check.d.ts) are published.
//
// The large libraries are built apart, in dist/bundle/vendor, and loaded on demand, each with a
// code cache of its own. Every file a cache is kept for has a hash of its content in its name, so
// a cache never outlives its build.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { build as esbuild } from 'esbuild';

/** Every source file bundled, to list the licences of the packages they come from. */
const bundledInputs = new Set();
const build = async (options) => {
  const out = await esbuild({ ...options, metafile: true });
  for (const input of Object.keys(out.metafile.inputs)) bundledInputs.add(input);
  return out;
};

rmSync('dist/bundle', { recursive: true, force: true }); // chunk names change with every build

/** The libraries the bundle takes from dist/bundle/vendor, each built from its package. */
const VENDORED = ['kafkajs', 'picomatch', 'cli-table3', 'yaml', 'yargs', 'prom-client'];

// Whitespace and comments out, names kept (a stack trace still names its functions): a run reads
// every byte of the files it loads, and a comment with one non-ASCII character made V8 hold a
// whole bundle as a two-byte string.
const compact = { minifyWhitespace: true, minifySyntax: true, charset: 'ascii' };

/** `import.meta.url` for ES module sources built as CommonJS. */
const importMetaUrlInCommonJs = {
  define: { 'import.meta.url': '__importMetaUrl' },
  banner: { js: "const __importMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
};

mkdirSync('dist/bundle/vendor', { recursive: true });
const vendorFile = {};
for (const name of VENDORED) {
  const out = await build({
    entryPoints: [name],
    write: false,
    outfile: `dist/bundle/vendor/${name}.cjs`,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    logLevel: 'warning',
    ...compact,
    ...importMetaUrlInCommonJs, // yargs is an ES module that asks for its own URL
  });
  const code = out.outputFiles[0].contents;
  // The name carries a hash of the content: a cache built for it can never meet another build.
  vendorFile[name] = `${name}-${createHash('sha256').update(code).digest('hex').slice(0, 12)}.cjs`;
  writeFileSync(`dist/bundle/vendor/${vendorFile[name]}`, code);
}

// `import x from 'yaml'` in our code becomes a module that takes the library from the cache
// loader, with the same default and named exports Node's ESM loader would give.
const requireHere = createRequire(import.meta.url);
const loader = resolve('src/code-cache.ts');
const vendorPlugin = {
  name: 'code-cache',
  setup(b) {
    b.onResolve({ filter: new RegExp(`^(${VENDORED.join('|')})$`) }, (args) => ({ path: args.path, namespace: 'vendor' }));
    b.onLoad({ filter: /.*/, namespace: 'vendor' }, (args) => {
      const exportsOf = requireHere(resolve('dist/bundle/vendor', vendorFile[args.path]));
      const names = Object.keys(exportsOf).filter((k) => k !== 'default' && k !== '__esModule' && /^[A-Za-z_$][\w$]*$/.test(k));
      return {
        resolveDir: process.cwd(),
        contents: [
          `import { loadVendor } from ${JSON.stringify(loader)};`,
          `const m = loadVendor(${JSON.stringify(vendorFile[args.path])});`,
          'export default m && m.__esModule ? m.default : m;',
          // Named through a local: some export names could be keywords.
          ...names.map((n, i) => `const e${i} = m[${JSON.stringify(n)}]; export { e${i} as ${n} };`),
        ].join('\n'),
      };
    });
  },
};

// Each CLI, the HTTP thread and launch.cjs as one CommonJS file each.
// src/import-module.ts stays a file of its own, which Node loads: import() needs that (it says why).
const importModuleApart = {
  name: 'import-module-apart',
  setup(b) {
    b.onResolve({ filter: /[\\/]import-module\.js$/ }, () => ({ path: './import-module.cjs', external: true }));
  },
};
const commonJs = {
  ...compact,
  outdir: 'dist/bundle/cli',
  outExtension: { '.js': '.cjs' },
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  plugins: [vendorPlugin, importModuleApart],
  ...importMetaUrlInCommonJs,
};
await build({ ...commonJs, entryPoints: { 'import-module': 'src/import-module.ts' }, plugins: [] });
// http-worker: the HTTP thread's entry, found beside the CLI (src/clients/http-thread.ts).
await build({ ...commonJs, entryPoints: { 'http-worker': 'src/clients/http-worker.ts' } });
const cliBundles = {};
for (const cli of ['soma-verify', 'soma-ports']) {
  const out = await build({ ...commonJs, entryPoints: { [cli]: `src/cli/${cli}.ts` }, entryNames: '[name]-[hash]', metafile: true });
  cliBundles[cli] = Object.keys(out.metafile.outputs).find((f) => f.endsWith('.cjs')).split('/').pop();
}
await build({ ...commonJs, entryPoints: { launch: 'src/cli/launch.ts' }, define: { ...importMetaUrlInCommonJs.define, CLI_BUNDLES: JSON.stringify(cliBundles) } });

// The public entry a plugin imports (`import { defineCheck } from 'soma-verify'`).
await build({
  entryPoints: { index: 'src/index.ts' },
  outdir: 'dist/bundle',
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});

// The bundles carry other people's code: their licences go with it (minifying drops comments).
const packages = new Map();
for (const input of bundledInputs) {
  const at = input.lastIndexOf('node_modules/');
  if (at < 0) continue;
  const name = /^(@[^/]+\/[^/]+|[^/]+)/.exec(input.slice(at + 'node_modules/'.length))[1];
  packages.set(name, `${input.slice(0, at)}node_modules/${name}`);
}
const notices = [...packages].sort(([a], [b]) => a.localeCompare(b)).map(([name, root]) => {
  const pkg = JSON.parse(readFileSync(`${root}/package.json`, 'utf8'));
  const file = readdirSync(root).find((f) => /^(licen[cs]e|copying)/i.test(f));
  const text = file ? readFileSync(`${root}/${file}`, 'utf8').trim() : `(no licence file; package.json says ${pkg.license ?? 'nothing'})`;
  return `${name}@${pkg.version} (${pkg.license ?? 'see below'})\n\n${text}\n`;
});
writeFileSync('dist/bundle/THIRD-PARTY-LICENSES.txt', `Packages bundled into soma-verify's dist/bundle, with their licences.\n\n${notices.join(`\n${'-'.repeat(72)}\n\n`)}`);
