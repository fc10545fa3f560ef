// Settings that contradict each other are refused at start (found in the second review: each test
// failed before its rule).
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const problemsOf = (env: Record<string, string>): string[] => {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

describe('settings that contradict each other', () => {
  // The DATA deadline aborts the worker before its CPU watchdog can refuse the message 550 5.6.0:
  // a message over its CPU budget then gets 451 DATA_DEADLINE, on every retry.
  it('refuses PIPELINE_CPU_LIMIT_MS at or above HOOK_TIMEOUT_MS', () => {
    expect(problemsOf({ HOOK_TIMEOUT_MS: '30000', PIPELINE_CPU_LIMIT_MS: '60000' })).toEqual([
      expect.stringMatching(/^PIPELINE_CPU_LIMIT_MS: /),
    ]);
  });

  // AUTH_DNS_BUDGET_MS's default makes room for the other two: PIPELINE_CPU_LIMIT_MS=15000 alone
  // (10 s + 15 s < 30 s) stopped the start with an error naming AUTH_DNS_BUDGET_MS, never set
  it('starts with PIPELINE_CPU_LIMIT_MS=15000 alone: the DNS budget takes what the deadline leaves', () => {
    expect(problemsOf({ PIPELINE_CPU_LIMIT_MS: '15000' })).toEqual([]);
    expect(loadConfig({ PIPELINE_CPU_LIMIT_MS: '15000' }).authDnsBudgetMs).toBe(4_000);
    expect(loadConfig({}).authDnsBudgetMs).toBe(7_500);
    expect(problemsOf({ PIPELINE_CPU_LIMIT_MS: '15000', AUTH_DNS_BUDGET_MS: '7500' })).toEqual([
      expect.stringMatching(/^AUTH_DNS_BUDGET_MS: /),
    ]);
  });

  // src/pipeline/pool.ts holds 4096 slots; the 4097th message at once gets 451 [INTERNAL]
  // ("more pipeline tasks at once than the clock board holds") on every attempt while it lasts.
  it('refuses PIPELINE_MAX_MESSAGES above what the worker pool can track (4096)', () => {
    expect(problemsOf({ PIPELINE_MAX_MESSAGES: '5000' })).toEqual([expect.stringMatching(/^PIPELINE_MAX_MESSAGES: /)]);
  });
});
