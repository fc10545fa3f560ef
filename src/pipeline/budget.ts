// How many messages are processed at once and what they may cost together. A message is charged
// what processing it really costs in memory (costOf its size: measured, see README), not its raw
// bytes; one that does not fit waits its turn, networks with the fewest messages in process first,
// and is told to come back (451 4.3.1) rather than wait past its time.
import { addCount } from '../counts.js';

/**
 * Peak memory of processing one message: the raw bytes as they arrive, the worker's parse, decoded
 * attachments, text and HTML strings, the rows. Measured with `npm run bench:memory` (a fresh
 * server's peak RSS over its resting RSS, messages of mostly base64 attachments), over the size:
 * Node 20: 1 MB 11.1–13.4×, 5 MB 9.3–10.6×, 25 MB 3.3–3.7× (12.8–12.9× before the bytes went to
 * PostgreSQL by reference, src/db/bind.ts; 5.4–5.5× before growing-buffer.ts); Node 24: 1 MB
 * 14.3–16.2× (the build before growing-buffer.ts the same), 5 MB 9.3–10.5×, 25 MB 3.9–4.9×.
 * A small message's part is mostly fixed (heap growth), a large one's mostly its bytes held once
 * or twice, so no one ratio fits: a flat 12× charged the 25 MB message 300 MB for its 98–122, and a
 * 1 GiB budget took three of them at once where eight fit. The charge follows the measurement:
 * 16× up to about 2.7 MB, then 34 MB + 3.5× (1 MiB 16.25 MiB, 5 MiB 51.75 MiB, 25 MiB 121.75 MiB:
 * 16.3×, 10.4×, 4.9×, about the dearest measured on Node 24; the run when it was set, Node 24:
 * 14.5×, 9.2×, 4.6×).
 */
export const COST_PER_BYTE_SMALL = 16;
/** What a large message costs besides its bytes (parser, strings, heap growth)… */
export const COST_LARGE_FIXED = 34 * 1024 * 1024;
/** …and per byte of it (the raw bytes and the decoded attachment, held until the commit). */
export const COST_PER_BYTE_LARGE = 3.5;
/** What any message costs at least: the parser's and the rows' fixed part. */
export const COST_BASE = 256 * 1024;

/**
 * What a control character (\x00–\x1f but tab, CR, LF, and \x7f; src/mail/bytes.ts LineEndings.controls)
 * costs besides: a body of them is laid out, cut and stored as text like any, but costs more than
 * the bytes' figure above. Measured (test/integration/control-characters.test.ts, a real serve's
 * peak RSS over its resting RSS, Node 24): 20 MB of them 167–181 MB where costOf charged 104 MiB,
 * 25 MB ~217 MB where it charged 122 MiB: 3.2–3.8 more per byte.
 */
export const COST_PER_CONTROL_BYTE = 4;

export const costOf = (bytes: number, controls = 0): number =>
  COST_BASE +
  Math.ceil(Math.min(COST_PER_BYTE_SMALL * bytes, COST_LARGE_FIXED + COST_PER_BYTE_LARGE * bytes)) +
  COST_PER_CONTROL_BYTE * Math.min(controls, bytes);

/** Waited longer than the queue allows, or the caller gave up (its deadline). */
export class Overloaded extends Error {
  override name = 'Overloaded';
}

interface Waiter {
  cost: number;
  network: string;
  grant: (release: () => void) => void;
}

export interface BudgetState {
  messages: number;
  bytes: number;
  waiting: number;
}

export class WorkBudget {
  private messages = 0;
  private bytes = 0;
  private running = new Map<string, number>();
  private waiting: Waiter[] = [];

  constructor(
    private readonly maxMessages: number,
    private readonly maxBytes: number,
  ) {}

  get state(): BudgetState {
    return { messages: this.messages, bytes: this.bytes, waiting: this.waiting.length };
  }

  /**
   * Resolves with the release function once the message may be processed; rejects with
   * Overloaded after `waitMs` or when `signal` aborts. A message dearer than the whole budget
   * still runs, alone.
   */
  acquire(cost: number, network: string, waitMs: number, signal?: AbortSignal): Promise<() => void> {
    if (!this.waiting.length && this.fits(cost)) return Promise.resolve(this.take(cost, network));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        cost,
        network,
        grant: (release) => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', giveUp);
          resolve(release);
        },
      };
      const giveUp = () => {
        const i = this.waiting.indexOf(waiter);
        if (i < 0) return;
        this.waiting.splice(i, 1);
        clearTimeout(timer);
        reject(new Overloaded(`no processing slot within ${waitMs} ms`));
        this.admit(); // a dear message leaving may let cheaper ones in
      };
      const timer = setTimeout(giveUp, waitMs);
      signal?.addEventListener('abort', giveUp, { once: true });
      this.waiting.push(waiter);
    });
  }

  private fits(cost: number): boolean {
    return this.messages < this.maxMessages && (this.messages === 0 || this.bytes + cost <= this.maxBytes);
  }

  private take(cost: number, network: string): () => void {
    this.messages++;
    this.bytes += cost;
    addCount(this.running, network, 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.messages--;
      this.bytes -= cost;
      addCount(this.running, network, -1);
      this.admit();
    };
  }

  /** Lets in whoever fits: the network with the fewest messages in process first, then the oldest. */
  private admit(): void {
    for (;;) {
      let best = -1;
      for (let i = 0; i < this.waiting.length; i++) {
        const w = this.waiting[i]!;
        if (!this.fits(w.cost)) continue;
        if (best < 0 || (this.running.get(w.network) ?? 0) < (this.running.get(this.waiting[best]!.network) ?? 0))
          best = i;
      }
      if (best < 0) return;
      const [w] = this.waiting.splice(best, 1);
      w!.grant(this.take(w!.cost, w!.network));
    }
  }
}
