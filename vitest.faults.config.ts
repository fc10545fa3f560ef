// `npm run test:faults`: the fault suite, with a real Postfix in front (test/faults/). One file at
// a time: each runs its own PostgreSQL, ticket-mx and MTA, and they would only slow each other.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    pool: 'forks',
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
});
