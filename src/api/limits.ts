// How much one API response may carry: the caps the read routes pass to the bounded queries of
// src/db/queries.ts. Not settings: a CRM reads everything piece by piece whatever they are.

/** What a page of messages (or the ticket document's messages) adds up to, as JSON, at most. */
export const PAGE_BYTES = 4 * 1024 * 1024;

/** Characters each long text (text, fullText, removedText, html, forwarded.text) keeps in a message's JSON. */
export const TEXT_PREVIEW_CHARS = 64 * 1024;

/** Characters one piece of GET /v1/tickets/{id}/messages/{messageId}/{field} carries (at most 6 bytes each as JSON). */
export const TEXT_PIECE_CHARS = 512 * 1024;

/**
 * Characters (UTF-16 code units) of a message's `html` the API takes (HTML_TOO_LARGE past it): it
 * is sanitized on the main thread, beside SMTP, while the request waits. The dearest HTML of this
 * size we know (one tag of 32,000 attributes, 5,500 links, table cells past the element cap of
 * src/mail/html/tree.ts) costs 9–26 ms of CPU there, 17–42 ms on a loaded 2-core machine; at 1 MB,
 * `<b>x</b>` took 1.5 s before that cap, and links 80–170 ms after it. Mail's HTML goes to the
 * worker threads instead.
 */
export const API_HTML_MAX_CHARS = 256 * 1024;

/** Messages one page (and the ticket document) returns at most. */
export const PAGE_MESSAGES = 1000;

/** Outbox rows, or refusals, one page (and the ticket document) returns at most. */
export const PAGE_ROWS = 1000;

/** What a page of outbox rows or refusals (and each list in the ticket document) adds up to, as JSON, at most. */
export const LIST_BYTES = 1024 * 1024;

/**
 * Levels a JSON body's arrays and objects may nest (JSON_TOO_DEEP past it): our bodies nest a few,
 * and nothing that walks a body recursively (the schema, the Idempotency-Key's hash) comes near the
 * end of the stack.
 */
export const JSON_MAX_DEPTH = 32;

/**
 * What one HTTP connection may take. The clients are a CRM, a scraper and a health check: few
 * connections, quick requests, so that neither a silent socket nor a slow body holds a slot for long.
 */
export const HTTP_LIMITS = {
  /** A connection that has not sent a whole request head within this is closed (Node checks every second). */
  headersMs: 10_000,
  /** The whole request, body included: a body sent slowly is cut with 408 (REQUEST_TIMEOUT). */
  requestMs: 30_000,
  /** A socket with no traffic either way for this long is closed, whatever it was doing. */
  idleMs: 60_000,
  /** A kept-alive connection waits this long for its next request. */
  keepAliveMs: 5_000,
  /** Connections at once; the next one is closed at accept. */
  maxConnections: 256,
};
