// Group commit: the messages that are ready to be stored at the same moment share one statement,
// one transaction and one COMMIT (store_messages), and each is answered with its own result once
// that commit is done. No timer and no waiting for company: a message that finds no commit under
// way is stored at once, alone; those that arrive while commits are under way go together in the
// next one. Per message, nothing changes: what store_messages does to each is what storing it alone
// does (a copy of an earlier message, in the batch or not, is a duplicate; a ticket's hourly cap, per author,
// counts the batch's earlier messages). A batch that fails on what one message holds is run again
// one message a transaction, so that one message's trouble is only its own. The deadline of a
// message keeps it out of a batch that has not started; a batch under way is cancelled only once
// every message in it has given up (its late commit is the others' answer).
import type { Pool } from './pool.js';
import { type MessageToStore, type StoreResult, storeMessages } from './queries.js';

export interface GroupCommitOptions {
  /** Messages in one transaction at most (1: each alone). */
  maxMessages: number;
  /** Their bytes (raw and attachments) at most: a large message goes alone. */
  maxBytes: number;
  /** Transactions under way at once. */
  inFlight: number;
  /** TICKET_MAX_MESSAGES_PER_HOUR (0: off). */
  maxPerHour: number;
  /** Each commit's number of messages (a metric). */
  onBatch?: (messages: number) => void;
}

interface Waiting {
  message: MessageToStore;
  bytes: number;
  signal: AbortSignal | undefined;
  resolve: (result: StoreResult) => void;
  reject: (err: unknown) => void;
  /** Taken into a batch: its deadline no longer takes it out. */
  taken: boolean;
  done(): void;
}

/**
 * SQLSTATE classes of trouble with what a message holds (data, integrity, PL/pgSQL), of a conflict
 * between two batches (40: serialization, deadlock), or of a lock one message waited for too long
 * (55P03: store_messages' lock_timeout, migration 0008).
 */
const ONE_MESSAGE_TROUBLE = /^(22|23|40|42|P0|55P03)/;

export class GroupCommit {
  private readonly queue: Waiting[] = [];
  private running = 0;

  constructor(
    private readonly pool: Pool,
    private readonly options: GroupCommitOptions,
  ) {}

  /** Stores one message with whatever else is ready; rejects with `signal.reason` if it aborts before its turn. */
  store(message: MessageToStore, signal?: AbortSignal): Promise<StoreResult> {
    return new Promise<StoreResult>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const waiting: Waiting = {
        message,
        bytes: message.bytes.length + message.attachments.reduce((n, a) => n + a.content.length, 0),
        signal,
        resolve,
        reject,
        taken: false,
        done: () => signal?.removeEventListener('abort', leave),
      };
      const leave = () => {
        if (waiting.taken) return;
        this.queue.splice(this.queue.indexOf(waiting), 1);
        waiting.done();
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', leave, { once: true });
      this.queue.push(waiting);
      this.next();
    });
  }

  private next(): void {
    while (this.running < this.options.inFlight && this.queue.length) {
      const batch = [this.queue.shift()!];
      let bytes = batch[0]!.bytes;
      while (
        this.queue.length &&
        batch.length < this.options.maxMessages &&
        bytes + this.queue[0]!.bytes <= this.options.maxBytes
      ) {
        bytes += this.queue[0]!.bytes;
        batch.push(this.queue.shift()!);
      }
      for (const w of batch) w.taken = true;
      this.running++;
      this.commit(batch)
        .catch((err: unknown) => {
          for (const w of batch) w.reject(err);
        })
        .finally(() => {
          for (const w of batch) w.done();
          this.running--;
          this.next();
        });
    }
  }

  private async commit(batch: Waiting[]): Promise<void> {
    // (one message run again alone after its batch failed may have given up meanwhile)
    if (batch.every((w) => w.signal?.aborted)) throw batch[0]!.signal!.reason;
    // cancelled (by withCancellation) only when every message in it has given up
    const everyone = new AbortController();
    const gaveUp = () => {
      if (batch.every((w) => w.signal?.aborted)) everyone.abort(batch[0]!.signal!.reason);
    };
    for (const w of batch) w.signal?.addEventListener('abort', gaveUp, { once: true });
    try {
      this.options.onBatch?.(batch.length);
      const results = await storeMessages(
        this.pool,
        batch.map((w) => w.message),
        this.options.maxPerHour,
        batch.every((w) => w.signal) ? { signal: everyone.signal } : {},
      );
      for (const [i, w] of batch.entries()) w.resolve(results[i]!);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (batch.length === 1 || typeof code !== 'string' || !ONE_MESSAGE_TROUBLE.test(code)) throw err;
      // one message's trouble (or a conflict with another batch): each alone, so that it stays its own;
      // one after another, as in the batch (side by side, none would see the others' rows: a ticket's
      // hourly cap would not count them, and the batch would take as many connections as messages)
      for (const w of batch) await this.commit([w]).catch((e: unknown) => w.reject(e));
    } finally {
      for (const w of batch) w.signal?.removeEventListener('abort', gaveUp);
    }
  }
}
