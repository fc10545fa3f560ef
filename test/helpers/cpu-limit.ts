// A CPU limit that a dear message runs well past on the machine the tests run on. What a message
// costs depends on the machine and the moment: the 4.5 MB of HTML entities took 530 ms of a warm
// worker thread's CPU one time here and under 500 ms on the CI machine, where the fixed 500 ms limit
// let them through with 250 and the tests of what happens at the limit failed. So the tests measure the
// message first, on a server of their own that does not stop it, and set the limit below that.
import type { TestDnsServer } from './dns-server.js';
import { startTestServer } from './server.js';
import { deliver } from './smtp-client.js';

/** The limit is what the message costs divided by this... */
export const CPU_MARGIN = 3;
/** ...or by at least this where that would be under the least limit there is (100 ms). */
const LEAST_MARGIN = 2;

export interface Measured {
  /** The lower of what two of the messages took, in ms of the worker thread's CPU. */
  costMs: number;
  /** costMs / CPU_MARGIN, at most `most` and at least the 100 ms PIPELINE_CPU_LIMIT_MS allows. */
  limitMs: number;
}

/**
 * What `sample(-1)` and `sample(-2)` (two messages of one kind, for `to` from `from`) cost on one
 * warm worker thread, and the CPU limit they run well past. Fails, saying why, when the machine is
 * so fast that they do not cost LEAST_MARGIN times the least limit there is.
 */
export async function cpuLimitBelow(
  databaseUrl: string,
  dns: TestDnsServer,
  sample: (i: number) => string | Buffer,
  opts: { from: string; to: string; most: number },
): Promise<Measured> {
  const server = await startTestServer(
    databaseUrl,
    {
      STAFF_SENDERS: opts.from.replace(/^[^@]*/, ''),
      TICKET_MAX_MESSAGES_PER_HOUR: '0',
      OUTBOX_SEND_IN_SERVE: 'false',
      LOG_LEVEL: 'info',
      PIPELINE_WORKERS: '1',
      PIPELINE_INLINE_MAX_BYTES: '0',
      PIPELINE_CPU_LIMIT_MS: '30000',
      HOOK_TIMEOUT_MS: '60000',
    },
    dns,
  );
  try {
    const costs: number[] = [];
    for (const i of [-1, -2]) {
      const r = await deliver(server.port, { ip: '127.0.0.1', from: opts.from, to: [opts.to], message: sample(i) });
      const line = server.logsWithCode('DATA_COMMITTED').at(-1);
      if (r.short !== '250 2.0.0' || typeof line?.cpuMs !== 'number')
        throw new Error(`the sample message was not committed with its CPU on the record: ${r.code} ${r.text}`);
      costs.push(line.cpuMs);
    }
    const costMs = Math.min(...costs);
    const limitMs = Math.max(100, Math.min(opts.most, Math.floor(costMs / CPU_MARGIN)));
    if (costMs < LEAST_MARGIN * limitMs)
      throw new Error(`the sample message takes only ${costMs} ms of CPU here: make it dearer for this machine`);
    return { costMs, limitMs };
  } finally {
    await server.close();
  }
}
