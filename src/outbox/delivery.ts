// What the sender asks of a kind of delivery (mail.ts, webhook.ts): fix the content at
// the first attempt, deliver it, say how it went. The sender owns claiming, retries and marking.
import type { ClaimedRow } from '../db/outbox.js';

export type DeliveryResult =
  /** Handed over: the remote side accepted it (its reply is kept). */
  | { outcome: 'sent'; reply: string }
  /**
   * Try again later: a 4xx, a timeout, a refused connection, anything on our side. `timedOut`: the
   * other side did not answer in time (the sender then sends this kind one at a time for a while).
   */
  | { outcome: 'deferred'; reply: string; timedOut?: boolean }
  /** Never: the remote side refused it for good (a 5xx); the reply is kept. */
  | { outcome: 'failed'; reply: string };

/** Thrown by prepare or deliver when trying again can never help (e.g. the ticket was deleted). */
export class PermanentFailure extends Error {
  override name = 'PermanentFailure';
}

export interface Delivery {
  /** The outbox kind this delivers; a sender only claims rows of the kinds it has. */
  readonly kind: string;
  /** Where it delivers, for the start-up log: "smtp://relay:587", "files in ./data/outbox". */
  readonly target: string;
  /**
   * The exact bytes to deliver, computed at the first attempt and stored with the row, so that every
   * retry (and a resend after a crash) delivers the same thing: same Message-ID, same event id.
   */
  prepare(row: ClaimedRow): Promise<Buffer>;
  /** One attempt. A thrown error counts as deferred (PermanentFailure: as failed). */
  deliver(row: ClaimedRow, content: Buffer, signal: AbortSignal): Promise<DeliveryResult>;
  close(): Promise<void>;
}
