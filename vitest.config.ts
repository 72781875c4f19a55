import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Builds dist/ first when a source is newer: tests of the CLI never run a stale build.
    globalSetup: ['test/support/build.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Peers (Postgres clusters, kcat, redis-server) are started per file: keep the 2 cores busy
    // without starving them.
    maxWorkers: 3,
  },
});
