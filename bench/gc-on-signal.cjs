// Preloaded into serve mode by bench/wait.bench.mjs (with --expose-gc): SIGUSR2 runs a full
// collection, so that the heap the bench then scrapes is what the runs left behind, not garbage
// that a major collection has not reached yet.
process.on('SIGUSR2', () => globalThis.gc?.());
