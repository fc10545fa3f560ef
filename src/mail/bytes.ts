// Byte-level checks of a received message before any parser sees it: line endings are CRLF only,
// the header block is found and bounded, and RFC 5322's single-instance fields appear once. Linear,
// and bounded by the header limits, so they can run on the main thread as the first refusals.

/**
 * RFC 5322 3.6 allows each of these once (and RFC 2045 the MIME ones; X-Ticket-ID is ours). DKIM
 * verifies the last instance of a signed field, mailparser reads the first: with two of them, what
 * is authenticated and what is stored would be different bytes.
 */
export const SINGLE_INSTANCE_FIELDS: ReadonlySet<string> = new Set([
  'from',
  'sender',
  'reply-to',
  'to',
  'cc',
  'subject',
  'message-id',
  'date',
  'in-reply-to',
  'references',
  'content-type',
  'content-transfer-encoding',
  'mime-version',
  'x-ticket-id',
]);

export interface HeaderLimits {
  /** Bytes of the header block, its final empty line included. */
  maxBytes: number;
  /** Physical lines of the header block (every folded continuation line counts). */
  maxLines: number;
}

export type HeaderProblem =
  | { kind: 'header-limit'; what: 'bytes' | 'lines'; limit: number }
  | { kind: 'duplicate-header'; field: string; count: number };

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HT = 0x09;
const COLON = 0x3a;

/** Where the body starts: just past the empty line that ends the header block (raw.length without one). */
export function bodyOffset(raw: Buffer): number {
  if (raw[0] === CR && raw[1] === LF) return 2;
  const end = raw.indexOf('\r\n\r\n');
  return end < 0 ? raw.length : end + 4;
}

/**
 * Reads the header block line by line, stopping at its end or at the first limit crossed, so a
 * 2 MB header costs what the limit allows and no more. Field names are compared as mailauth and
 * mailparser read them: up to the colon, trimmed, lower case.
 */
export function inspectHeader(raw: Buffer, limits: HeaderLimits): HeaderProblem | null {
  const counts = new Map<string, number>();
  let duplicate: HeaderProblem | null = null;
  let lines = 0;
  let pos = 0;
  while (pos < raw.length) {
    const lf = raw.indexOf(LF, pos);
    const next = lf < 0 ? raw.length : lf + 1;
    if (next > limits.maxBytes) return { kind: 'header-limit', what: 'bytes', limit: limits.maxBytes };
    const end = lf > pos && raw[lf - 1] === CR ? lf - 1 : lf < 0 ? raw.length : lf;
    if (end === pos) return duplicate; // the empty line: the body follows
    if (++lines > limits.maxLines) return { kind: 'header-limit', what: 'lines', limit: limits.maxLines };
    const first = raw[pos];
    if (!duplicate && first !== SP && first !== HT) {
      const colon = raw.indexOf(COLON, pos);
      if (colon >= 0 && colon < end) {
        const field = raw.toString('latin1', pos, colon).trim().toLowerCase();
        if (SINGLE_INSTANCE_FIELDS.has(field)) {
          const count = (counts.get(field) ?? 0) + 1;
          counts.set(field, count);
          if (count > 1) duplicate = { kind: 'duplicate-header', field, count };
        }
      }
    }
    pos = next;
  }
  return duplicate;
}

/**
 * Finds a bare LF (not after CR) or a bare CR (not before LF) in a message as it streams in, chunk
 * by chunk. Such a line ending is refused, not normalised: parsers disagree about it (one sees two
 * header fields where another sees one), and the stored bytes stay the bytes received.
 */
export class LineEndings {
  bare: 'LF' | 'CR' | null = null;
  private lastWasCr = false;

  feed(chunk: Buffer): void {
    if (this.bare || !chunk.length) return;
    if (this.lastWasCr && chunk[0] !== LF) {
      this.bare = 'CR';
      return;
    }
    for (let p = chunk.indexOf(LF); p >= 0; p = chunk.indexOf(LF, p + 1)) {
      const before = p > 0 ? chunk[p - 1] : this.lastWasCr ? CR : 0;
      if (before !== CR) {
        this.bare = 'LF';
        return;
      }
    }
    for (let p = chunk.indexOf(CR); p >= 0 && p < chunk.length - 1; p = chunk.indexOf(CR, p + 1)) {
      if (chunk[p + 1] !== LF) {
        this.bare = 'CR';
        return;
      }
    }
    this.lastWasCr = chunk[chunk.length - 1] === CR;
  }

  /** smtp-server hands over the message up to and including the CRLF before the final dot. */
  end(): 'LF' | 'CR' | null {
    if (!this.bare && this.lastWasCr) this.bare = 'CR';
    return this.bare;
  }
}
