// Deleting finished outbox rows once they are older than OUTBOX_KEEP_SENT: at `serve` start and every
// 10 minutes, 500 rows a transaction, never waiting for a lock (pruneOutbox in src/db/outbox.ts).
// Whatever goes wrong is logged (OUTBOX_PRUNE_FAILED) and tried again at the next turn: pruning never
// stops the service. What later mail needs of a notification is kept in notification_messages.
import { showDuration } from '../config.js';
import { FINISHED_STATUSES, type FinishedStatus, pruneOutbox } from '../db/outbox.js';
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';

export const PRUNE_INTERVAL_MS = 10 * 60_000;
export const PRUNE_BATCH = 500;
/** A lock on the outbox held elsewhere (a migration, `lock table`) ends a batch after this. */
const LOCK_TIMEOUT_MS = 250;
const STATEMENT_TIMEOUT_MS = 10_000;

export interface PruneOptions {
  pool: Pool;
  /** OUTBOX_KEEP_SENT; 0: nothing is ever deleted. */
  keepMs: number;
  log: Logger;
  /** Counts what went: the pruned metric. */
  onPruned?: (status: FinishedStatus, rows: number) => void;
  intervalMs?: number;
  batch?: number;
}

export interface PruneResult {
  count: number;
  byStatus: Record<FinishedStatus, number>;
  /** The error that ended the run early, if one did (it is logged). */
  error: Error | null;
}

export class OutboxPruner {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<PruneResult> | null = null;
  private stopping = false;

  constructor(private readonly o: PruneOptions) {}

  /** Prunes now and then every interval; the timer never keeps the process alive. Off with keepMs 0. */
  start(): void {
    if (!this.o.keepMs || this.timer) return;
    void this.run();
    this.timer = setInterval(() => void this.run(), this.o.intervalMs ?? PRUNE_INTERVAL_MS);
    this.timer.unref();
  }

  /**
   * One turn: batches until one comes back short (or a stop). A turn still under way is joined, not
   * doubled. Never rejects.
   */
  run(): Promise<PruneResult> {
    this.running ??= this.prune().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** No more turns; a batch under way finishes (it is short), the rest of its turn is left for the next start. */
  async close(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  private async prune(): Promise<PruneResult> {
    const started = performance.now();
    const byStatus = Object.fromEntries(FINISHED_STATUSES.map((s) => [s, 0])) as Record<FinishedStatus, number>;
    let count = 0;
    let error: Error | null = null;
    const limit = this.o.batch ?? PRUNE_BATCH;
    try {
      while (this.o.keepMs && !this.stopping) {
        const deleted = await pruneOutbox(this.o.pool, {
          olderThanMs: this.o.keepMs,
          limit,
          lockTimeoutMs: LOCK_TIMEOUT_MS,
          statementTimeoutMs: STATEMENT_TIMEOUT_MS,
        });
        let rows = 0;
        for (const [status, n] of Object.entries(deleted) as [FinishedStatus, number][]) {
          byStatus[status] += n;
          rows += n;
          this.o.onPruned?.(status, n);
        }
        count += rows;
        // short: nothing older is left but rows other transactions hold, which the next turn takes
        if (rows < limit) break;
      }
    } catch (err) {
      error = err as Error;
    }
    const ms = Math.round(performance.now() - started);
    const keep = showDuration(this.o.keepMs);
    if (count)
      this.o.log.info(
        { code: 'OUTBOX_PRUNED', count, byStatus, keep, ms },
        `outbox: ${count} finished rows older than ${keep} deleted`,
      );
    if (error)
      this.o.log.warn(
        { code: 'OUTBOX_PRUNE_FAILED', err: error.message, pgCode: (error as { code?: string }).code, count, ms },
        `outbox: pruning rows older than ${keep} failed (tried again in ${showDuration(this.o.intervalMs ?? PRUNE_INTERVAL_MS)})`,
      );
    return { count, byStatus, error };
  }
}
