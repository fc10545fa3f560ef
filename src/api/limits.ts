// How much one API response may carry: the caps the read routes pass to the bounded queries of
// src/db/queries.ts. Not settings: a CRM reads everything piece by piece whatever they are.

/** What a page of messages (or the ticket document's messages) adds up to, as JSON, at most. */
export const PAGE_BYTES = 4 * 1024 * 1024;

/** Characters each long text (text, fullText, removedText, html, forwarded.text) keeps in a message's JSON. */
export const TEXT_PREVIEW_CHARS = 64 * 1024;

/** Characters one piece of GET /v1/tickets/{id}/messages/{messageId}/{field} carries (at most 6 bytes each as JSON). */
export const TEXT_PIECE_CHARS = 512 * 1024;

/** Messages one page (and the ticket document) returns at most. */
export const PAGE_MESSAGES = 1000;
