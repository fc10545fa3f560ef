// The sender: wakes on LISTEN (a slow poll only as a safety net, and a timer for the next retry),
// claims due rows with FOR UPDATE SKIP LOCKED so that any number of senders never take one row
// twice, hands each to the Delivery of its kind, and marks the outcome: sent; deferred with
// exponential backoff until OUTBOX_MAX_AGE; failed with the remote reply kept. A sender that dies
// mid-send leaves a claim whose lease ends, and the row is sent again (the same bytes, the same
// Message-ID): at most one duplicate, never a loss. Stop: sends in flight finish or are put back.
// Each kind has its own OUTBOX_CONCURRENCY slots (a CRM that hangs never holds back mail to people,
// nor a slow relay the CRM), and after a timeout a kind sends one at a time until one goes through.
import os from 'node:os';
import pg from 'pg';
import {
  type ClaimedRow,
  claimOutbox,
  listenForOutbox,
  markOutboxDeferred,
  markOutboxFailed,
  markOutboxSent,
  saveOutboxContent,
  secondsUntilNextDue,
} from '../db/outbox.js';
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import { type Delivery, type DeliveryResult, PermanentFailure } from './delivery.js';

export interface SenderOptions {
  pool: Pool;
  /** For the LISTEN connection, which is the sender's own (never one of the pool's). */
  databaseUrl: string;
  deliveries: Delivery[];
  log: Logger;
  /** Deliveries of each kind in flight at once. */
  concurrency: number;
  sendTimeoutMs: number;
  retryDelayMs: number;
  maxAgeMs: number;
  /** Safety net in case a NOTIFY is missed (the LISTEN connection was down): 30 s. */
  pollMs?: number;
  /** How long a stop waits for sends in flight before putting them back: 10 s. */
  stopGraceMs?: number;
  /** Counts every outcome: the sends metric. */
  onOutcome?: (kind: string, outcome: DeliveryResult['outcome']) => void;
}

export interface SendCounts {
  sent: number;
  deferred: number;
  failed: number;
}

const MAX_RETRY_DELAY_MS = 3_600_000;

/** The wait after the `attempt`-th attempt failed temporarily: doubling from `first`, at most 1 h, ±10%. */
export function retryDelay(attempt: number, firstMs: number, random = Math.random): number {
  const base = Math.min(firstMs * 2 ** Math.max(0, attempt - 1), MAX_RETRY_DELAY_MS);
  return Math.round(base * (0.9 + 0.2 * random()));
}

interface Task {
  row: ClaimedRow;
  controller: AbortController;
  done: Promise<void>;
}

export class Sender {
  private readonly byKind: Map<string, Delivery>;
  private readonly kinds: string[];
  private readonly claimedBy = `${os.hostname()}:${process.pid}`;
  private readonly inFlight = new Map<string, Task>();
  /** Rows a stop put back: whatever their send still answers is not marked. */
  private readonly putBack = new Set<string>();
  private readonly counts: SendCounts = { sent: 0, deferred: 0, failed: 0 };
  private stopping = false;
  private continuous = false;
  private pumping: Promise<void> | null = null;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private listener: pg.Client | null = null;
  private relistenDelayMs = 500;
  /**
   * Kinds whose last attempt ran out of time: they send one at a time until one is delivered, since
   * more at once to a destination that does not answer only queues more timeouts.
   */
  private readonly probing = new Set<string>();

  constructor(private readonly o: SenderOptions) {
    this.byKind = new Map(o.deliveries.map((d) => [d.kind, d]));
    this.kinds = [...this.byKind.keys()];
  }

  /** Where each kind goes, for the banner. */
  get targets(): Record<string, string> {
    return Object.fromEntries(this.o.deliveries.map((d) => [d.kind, d.target]));
  }

  /** The claim's lease: a row claimed by a sender that died is taken again after this. */
  private get leaseSeconds() {
    return (2 * this.o.sendTimeoutMs) / 1000;
  }

  /** Runs until close(): LISTEN, then deliver whatever is due now and whenever something becomes due. */
  async start(): Promise<void> {
    this.continuous = true;
    await this.listen();
    this.o.log.info(
      {
        code: 'OUTBOX_SENDER_STARTED',
        kinds: this.kinds,
        targets: this.targets,
        concurrency: this.o.concurrency,
      },
      `outbox sender started: ${this.o.deliveries.map((d) => `${d.kind} → ${d.target}`).join(', ')}`,
    );
    this.wake();
  }

  /** `outbox run --once`: delivers what is due now (one attempt each), waits for the sends, returns. */
  async runOnce(): Promise<SendCounts> {
    for (;;) {
      let claimed = 0;
      for (const kind of this.kinds) {
        const free = this.free(kind);
        const rows = free > 0 && !this.stopping ? await this.claim(kind, free) : [];
        for (const row of rows) this.run(row);
        claimed += rows.length;
      }
      if (!this.inFlight.size) return { ...this.counts };
      if (!claimed || this.kinds.every((k) => this.free(k) <= 0))
        await Promise.race([...this.inFlight.values()].map((t) => t.done));
    }
  }

  /** The slots of this kind not in use: OUTBOX_CONCURRENCY of its own, one while it is probing after a timeout. */
  private free(kind: string): number {
    let busy = 0;
    for (const task of this.inFlight.values()) if (task.row.kind === kind) busy++;
    return (this.probing.has(kind) ? 1 : this.o.concurrency) - busy;
  }

  /** A NOTIFY arrived, a send finished, or the timer rang: claim what is due. */
  wake = (): void => {
    if (this.stopping || !this.continuous) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = this.pump().finally(() => {
      this.pumping = null;
      if (this.again) {
        this.again = false;
        this.wake();
      }
    });
  };

  private async pump(): Promise<void> {
    let delayMs: number;
    try {
      // a kind with no free slot is woken by its next finishing send; the others claim what is due
      const waiting: string[] = [];
      for (const kind of this.kinds) {
        for (;;) {
          const free = this.free(kind);
          if (free <= 0) break;
          const rows = await this.claim(kind, free);
          for (const row of rows) this.stopping ? await this.giveBack(row) : this.run(row);
          if (this.stopping) return;
          if (rows.length < free) {
            if (this.free(kind) > 0) waiting.push(kind);
            break;
          }
        }
      }
      // the timer is for the kinds with room: a retry of theirs falling due while another kind is busy
      if (!waiting.length) return;
      const seconds = await secondsUntilNextDue(this.o.pool, waiting);
      const pollMs = this.o.pollMs ?? 30_000;
      // overdue but not claimable: another sender is claiming it this very moment
      delayMs = seconds === null ? pollMs : Math.min(pollMs, Math.max(250, Math.ceil(seconds * 1000)));
    } catch (err) {
      this.o.log.warn({ code: 'OUTBOX_DB_ERROR', err: (err as Error).message }, 'outbox: database error, retrying');
      delayMs = 5_000;
    }
    if (this.stopping) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(this.wake, delayMs);
    this.timer.unref();
  }

  private claim(kind: string, limit: number): Promise<ClaimedRow[]> {
    return claimOutbox(this.o.pool, {
      kinds: [kind],
      limit,
      leaseSeconds: this.leaseSeconds,
      claimedBy: this.claimedBy,
    });
  }

  private run(row: ClaimedRow): void {
    const controller = new AbortController();
    const done = this.attempt(row, controller)
      .catch((err: Error) =>
        this.o.log.error({ code: 'OUTBOX_DB_ERROR', id: row.id, err: err.message }, 'outbox: could not mark a row'),
      )
      .finally(() => {
        this.inFlight.delete(row.id);
        this.wake();
      });
    this.inFlight.set(row.id, { row, controller, done });
  }

  private async attempt(row: ClaimedRow, controller: AbortController): Promise<void> {
    const delivery = this.byKind.get(row.kind)!;
    const started = performance.now();
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      controller.abort(new Error(`no answer within ${this.o.sendTimeoutMs} ms`));
    }, this.o.sendTimeoutMs);
    let result: DeliveryResult;
    try {
      let content = row.content;
      if (!content) {
        content = await delivery.prepare(row);
        // stored before the first byte goes out: a resend after a crash sends exactly this
        if (!(await saveOutboxContent(this.o.pool, row.id, row.attempts, content))) return this.lost(row);
      }
      result = await abortable(delivery.deliver(row, content, controller.signal), controller.signal);
    } catch (err) {
      const reply = (err as Error)?.message ?? String(err);
      result =
        err instanceof PermanentFailure
          ? { outcome: 'failed', reply }
          : { outcome: 'deferred', reply, timedOut: late && !this.stopping };
    } finally {
      clearTimeout(timer);
    }
    if (this.putBack.has(row.id)) return;
    this.pace(row.kind, result);
    await this.finish(row, result, Math.round(performance.now() - started));
  }

  /** A timeout puts the kind on one slot; the first delivery that goes through gives it all of them back. */
  private pace(kind: string, result: DeliveryResult): void {
    if (result.outcome === 'deferred' && result.timedOut && !this.probing.has(kind)) {
      this.probing.add(kind);
      this.o.log.warn(
        { code: 'OUTBOX_ONE_AT_A_TIME', kind, reply: result.reply },
        `outbox: ${kind} timed out; sending ${kind} one at a time until one is delivered`,
      );
    } else if (result.outcome === 'sent' && this.probing.delete(kind))
      this.o.log.info(
        { code: 'OUTBOX_ALL_SLOTS', kind, concurrency: this.o.concurrency },
        `outbox: ${kind} answers again; ${this.o.concurrency} at a time`,
      );
  }

  private async finish(row: ClaimedRow, result: DeliveryResult, ms: number): Promise<void> {
    const fields = {
      id: row.id,
      kind: row.kind,
      event: row.event,
      ticket: row.ticketId,
      to: row.recipient,
      attempt: row.attempts,
      reply: result.reply,
      ms,
    };
    const { pool, log } = this.o;
    if (result.outcome === 'sent') {
      if (!(await markOutboxSent(pool, row.id, row.attempts, result.reply))) return this.lost(row);
      this.count(row.kind, 'sent');
      log.info({ code: 'OUTBOX_SENT', ...fields }, `OUTBOX_SENT ${row.kind} ${row.id} to ${row.recipient}`);
      return;
    }
    const age = Date.now() - row.queuedAt.getTime();
    if (result.outcome === 'failed' || age >= this.o.maxAgeMs) {
      const reply =
        result.outcome === 'failed'
          ? result.reply
          : `gave up after ${row.attempts} attempts over ${Math.round(age / 60_000)} min: ${result.reply}`;
      if (!(await markOutboxFailed(pool, row.id, row.attempts, reply))) return this.lost(row);
      this.count(row.kind, 'failed');
      log.warn({ code: 'OUTBOX_FAILED', ...fields, reply }, `OUTBOX_FAILED ${row.kind} ${row.id}: ${reply}`);
      return;
    }
    const delayMs = retryDelay(row.attempts, this.o.retryDelayMs);
    if (!(await markOutboxDeferred(pool, row.id, row.attempts, result.reply, delayMs / 1000))) return this.lost(row);
    this.count(row.kind, 'deferred');
    log.warn(
      { code: 'OUTBOX_DEFERRED', ...fields, retryInS: Math.round(delayMs / 100) / 10 },
      `OUTBOX_DEFERRED ${row.kind} ${row.id}: ${result.reply}`,
    );
  }

  private count(kind: string, outcome: DeliveryResult['outcome']) {
    this.counts[outcome]++;
    this.o.onOutcome?.(kind, outcome);
  }

  /** Our claim ended (the lease ran out and another sender took the row): its outcome is theirs. */
  private lost(row: ClaimedRow): void {
    this.o.log.warn(
      { code: 'OUTBOX_CLAIM_LOST', id: row.id, attempt: row.attempts },
      'outbox: the claim on this row ended before the attempt did; another sender has it',
    );
  }

  private async giveBack(row: ClaimedRow): Promise<void> {
    this.putBack.add(row.id);
    await markOutboxDeferred(this.o.pool, row.id, row.attempts, 'interrupted: the sender stopped', 0);
    this.o.log.info({ code: 'OUTBOX_PUT_BACK', id: row.id, kind: row.kind }, 'outbox: row put back on stop');
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.o.databaseUrl,
      application_name: 'ticket-mx outbox',
      keepAlive: true,
      connectionTimeoutMillis: 5_000,
    });
    const lost = (err?: Error) => this.relisten(client, err);
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', () => this.wake());
    try {
      await client.connect();
      await listenForOutbox(client);
    } catch (err) {
      client.removeAllListeners('end');
      await client.end().catch(() => {});
      throw err;
    }
    if (this.stopping) {
      await client.end().catch(() => {});
      return;
    }
    this.listener = client;
    this.relistenDelayMs = 500;
  }

  /** The LISTEN connection went away: connect again (backing off), then look for what was missed. */
  private relisten(client: pg.Client, err?: Error): void {
    if (this.stopping || this.listener !== client) return;
    this.listener = null;
    client.end().catch(() => {});
    this.o.log.warn(
      { code: 'OUTBOX_LISTEN_LOST', err: err?.message ?? 'connection ended', retryInMs: this.relistenDelayMs },
      'outbox: LISTEN connection lost; polling until it is back',
    );
    this.scheduleListen();
    this.wake();
  }

  private scheduleListen(): void {
    const delay = this.relistenDelayMs;
    this.relistenDelayMs = Math.min(delay * 2, 30_000);
    const retry = setTimeout(() => {
      if (this.stopping) return;
      this.listen().then(this.wake, () => this.scheduleListen());
    }, delay);
    retry.unref();
  }

  /** Stops claiming; sends in flight get stopGraceMs to finish, then are put back (due again at once). */
  async close(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    const listener = this.listener;
    this.listener = null;
    await listener?.end().catch(() => {});
    await this.pumping;
    const grace = new Promise<void>((resolve) => setTimeout(resolve, this.o.stopGraceMs ?? 10_000).unref());
    await Promise.race([Promise.allSettled([...this.inFlight.values()].map((t) => t.done)), grace]);
    for (const task of this.inFlight.values()) {
      await this.giveBack(task.row).catch(() => {});
      task.controller.abort(new Error('the sender stopped'));
    }
    await Promise.all(this.o.deliveries.map((d) => d.close().catch(() => {})));
  }
}

/** Settles with the work, or rejects as soon as the signal aborts (the deadline, or a stop). */
function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
