import os from 'node:os';
import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // the fault suite has a config of its own (npm run test:faults)
    exclude: [...configDefaults.exclude, 'test/faults/**'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    // Each file gets its own database cloned from a migrated template, so files may run in parallel.
    pool: 'forks',
    // Vitest's default is half the cores: one file at a time on a 2-core machine, where the files
    // mostly wait (PostgreSQL, SMTP, timers). Two at a time there: 344 s instead of 743 s for
    // npm test, the same 2,194 tests passing (twice in a row).
    maxWorkers: Math.max(2, Math.floor(os.availableParallelism() / 2)),
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
});
