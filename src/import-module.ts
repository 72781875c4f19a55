// import() of a user's plugin file. The built CLI keeps this module apart
// (dist/bundle/cli/import-module.cjs, loaded by Node's own require): on Node 20, code that runs
// from a V8 code cache (./code-cache.ts) has lost what import() needs.
export function importModule(url: string): Promise<unknown> {
  return import(url);
}
