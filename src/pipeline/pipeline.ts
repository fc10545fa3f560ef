// The pipeline as the SMTP layer sees it: the bytes of one message in, its outcome out. The steps
// (steps.ts) run on the worker pool (pool.ts), the rows are committed here on the main thread
// (deliver.ts); the budget of messages processed at once is budget.ts's.
import type { Config } from '../config.js';
import type { Pool } from '../db/pool.js';
import { deliver } from './deliver.js';
import type { PipelinePool } from './pool.js';
import type { PipelineInput } from './steps.js';
import type { Outcome } from './types.js';

export class Pipeline {
  constructor(
    private readonly workers: PipelinePool,
    private readonly db: Pool,
    private readonly config: Pick<Config, 'ticketMaxMessagesPerHour' | 'unroutedMaxBytesPerNetworkPerDay'>,
  ) {}

  /** `input.raw` is moved to a worker and unusable afterwards. `signal` gives up on the worker's part. */
  async process(input: PipelineInput, signal?: AbortSignal): Promise<Outcome> {
    const { analysis, raw, sha256 } = await this.workers.analyse(input, signal);
    if (analysis.kind !== 'store') return analysis;
    return deliver(this.db, this.config, analysis, { raw, sha256, network: input.network }, signal);
  }

  private closed: Promise<void> | null = null;

  /** Once, however often it is called (stop and abort both may). */
  close(): Promise<void> {
    this.closed ??= this.workers.close();
    return this.closed;
  }
}
