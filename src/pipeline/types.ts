// What the pipeline takes and what it gives: the routes RCPT decided, the rows one message writes in
// its one transaction, and a typed outcome for every way a message can end. Below smtp/ (which
// turns an outcome into a reply) and above mail/ and db/ (the steps and the statements).
import type { NewOutboxRow } from '../db/outbox.js';
import type { AttachmentRow, Envelope, Ticket, TicketMessageRow, UnroutedMessageRow } from '../db/queries.js';
import type { AuthDecision, AuthDecisionCode, AuthorRole } from '../mail/authorize.js';
import type { NotAReply } from '../mail/classify.js';

/**
 * What RCPT decided for one recipient; `support` (the bare support@) is resolved at DATA (steps.ts).
 * Mail to a `bounce` route does not enter the pipeline: src/smtp/phases/bounce.ts stores it.
 */
export type Route =
  | { kind: 'ticket'; ticket: Ticket; address: string }
  | { kind: 'postmaster'; address: string }
  | { kind: 'support'; address: string }
  /** A VERP envelope sender of ours with a valid MAC: a delivery report for this outbox row. */
  | { kind: 'bounce'; outboxId: string; address: string };

/** Everything one message writes, in one transaction. New kinds of rows (the outbox) are added here. */
export interface MessageRows {
  ticketMessages: TicketMessageRow[];
  unrouted: UnroutedMessageRow[];
  attachments: AttachmentRow[];
  /** Notifications of the ticket messages, queued in the same transaction (only for rows it inserts). */
  outbox: NewOutboxRow[];
}

/** What a DATA decision's log line says about the message beside its code. */
export interface Facts {
  messageId?: string | null;
  from?: string;
  tickets?: string[];
  /** How the ticket of mail to the bare support@ was found. */
  via?: 'x-ticket-id' | 'subject' | 'in-reply-to';
  notReply?: NotAReply['kind'];
  auth?: AuthDecisionCode;
  role?: AuthorRole;
  authenticatedBy?: AuthDecision['authenticatedBy'];
  wouldReject?: boolean;
  reason?: string;
  attachments?: number;
  rawMessageId?: string | null;
  /** The network the message is counted under (limits.ts networkKey). */
  network?: string;
  /** Worker CPU the message took, in milliseconds (Linux: the thread's own time). */
  cpuMs?: number;
  /** The reply was extracted from the first REPLY_INPUT_MAX_CHARS of the text and HTML (src/mail/reply-text/message.ts). */
  replyInputCut?: true;
  /** Valid DKIM signatures past DKIM_MAX_SIGNATURES, not verified (src/mail/dkim-limit.ts). */
  dkimUnverified?: number;
  /** Where its steps ran: on the main thread (a small message of a simple shape, inline.ts) or in a worker. */
  path?: 'inline' | 'worker';
  err?: string;
}

/** The steps' refusals: each is the same on every retry unless it says otherwise. */
export type Refusal =
  | { kind: 'header-limit'; what: 'bytes' | 'lines'; limit: number }
  | { kind: 'duplicate-header'; field: string; count: number }
  | { kind: 'bare-newline'; which: 'LF' | 'CR' }
  /** `parser`: mailparser refused the bytes (its words are the log line's err); else nothing in them shows. */
  | { kind: 'unparseable'; parser: boolean }
  /** More MIME parts than the parser takes (src/mail/parse.ts MAX_MIME_PARTS). */
  | { kind: 'too-many-parts'; limit: number }
  | { kind: 'no-ticket' }
  /** Mail to the bare support@ whose ticket is closed (TICKET_CLOSED_STATUSES). */
  | { kind: 'ticket-closed'; ticket: string }
  | { kind: 'auth'; decision: AuthDecision }
  | { kind: 'attachments-limit'; why: string }
  | { kind: 'unrouted-too-big'; size: number; limit: number }
  /** Temporary: the network's byte budget for unrouted mail is spent for today. */
  | { kind: 'unrouted-quota'; limit: number }
  /** Temporary: all networks' byte budget for unrouted mail (UNROUTED_MAX_BYTES_PER_DAY) is spent for today. */
  | { kind: 'unrouted-full'; limit: number }
  /** The message took more than its CPU or memory budget in the worker. */
  | { kind: 'too-complex'; limit: 'cpu' | 'memory'; budget: number };

/** What the steps before storage decided: rows to store, or a refusal. */
export type Analysis =
  | {
      kind: 'store';
      rows: MessageRows;
      /** Nothing of it goes to a ticket: charged to the network's unrouted budget. */
      unroutedOnly: boolean;
      notReply: NotAReply | null;
      facts: Facts;
    }
  | (Refusal & { facts: Facts });

/** How a message ended, after storage: the DATA phase turns this into the reply. */
export type Outcome =
  | (Refusal & { facts: Facts })
  | { kind: 'committed'; rawMessageId: string; facts: Facts }
  | { kind: 'not-a-reply'; rawMessageId: string; notReply: NotAReply; facts: Facts }
  | { kind: 'duplicate'; rawMessageId: string; facts: Facts }
  | { kind: 'ticket-rate-limited'; ticket: string; limit: number; facts: Facts };

export type { Envelope };
