// The RCPT-time ticket lookups, batched as the commits are (group-commit.ts): a lookup that finds
// none under way runs at once, alone; the ones asked while a statement is under way share the
// next (`id = any($1)`), each answered from its result. Every RCPT is still answered from the
// database as it is at that moment (nothing is cached); under load there are fewer statements —
// fewer round trips for the main thread and less executor work for PostgreSQL (or for the CRM's
// database behind a tickets view). A failed statement is the failure of each lookup in it. A
// statement still under way after SLOW_MS (no connection free, a lock, a connection that stopped
// answering) holds up no more lookups: the next goes beside it, so that each RCPT still meets the
// trouble of its own statement (DB_UNAVAILABLE when no connection comes) before its deadline.
import type { Db } from './pool.js';
import { findTickets, type Ticket } from './queries.js';

/** Ids in one statement at most; more wait for the next. */
const MAX_IDS = 256;
/** How long the lookups asked meanwhile wait for the newest statement (one takes ~1 ms). */
const SLOW_MS = 50;

interface Waiting {
  id: string;
  resolve: (ticket: Ticket | null) => void;
  reject: (err: unknown) => void;
}

export class TicketLookups {
  private queue: Waiting[] = [];
  /** Statements under way, and when the newest started. */
  private running = 0;
  private newest = 0;
  private timer: NodeJS.Timeout | undefined;

  /** `onStatement` hears the number of lookups each statement answers (a metric, and the tests). */
  constructor(
    private readonly db: Pick<Db, 'query'>,
    private readonly onStatement: (lookups: number) => void = () => {},
  ) {}

  /** The ticket, or null when there is none by this id. */
  find(id: string): Promise<Ticket | null> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (!this.queue.length) return;
    const wait = this.running ? this.newest + SLOW_MS - performance.now() : 0;
    if (wait > 0) {
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.next();
      }, wait).unref();
      return;
    }
    const batch = this.queue.splice(0, MAX_IDS);
    this.running++;
    this.newest = performance.now();
    this.onStatement(batch.length);
    findTickets(this.db, [...new Set(batch.map((w) => w.id))])
      .then(
        (tickets) => {
          const byId = new Map(tickets.map((t) => [t.id, t]));
          for (const w of batch) w.resolve(byId.get(w.id) ?? null);
        },
        (err: unknown) => {
          for (const w of batch) w.reject(err);
        },
      )
      .finally(() => {
        this.running--;
        this.next();
      });
    this.next(); // the lookups left over (more than MAX_IDS) wait for this statement, or not for long
  }
}
