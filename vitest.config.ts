import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Peers (Postgres clusters, kcat, redis-server) are started per file: keep the 2 cores busy
    // without starving them.
    maxWorkers: 3,
  },
});
