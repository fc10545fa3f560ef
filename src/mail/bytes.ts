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

/** What inspectHeader() counted on its way: the header's share of a message's shape. */
export interface HeaderShape {
  lines: number;
  /** DKIM-Signature, ARC-Seal and ARC-Message-Signature fields: each one is a key lookup and a verification. */
  signatures: number;
  /** Bytes of the address fields (From, Sender, Reply-To, To, Cc, Bcc), continuation lines included. */
  addressBytes: number;
}

export const emptyHeaderShape = (): HeaderShape => ({ lines: 0, signatures: 0, addressBytes: 0 });

const SIGNATURE_FIELDS: ReadonlySet<string> = new Set(['dkim-signature', 'arc-seal', 'arc-message-signature']);
/** Each address is parsed, lower-cased and classified (authorize, the ticket binding, classify). */
const ADDRESS_FIELDS: ReadonlySet<string> = new Set(['from', 'sender', 'reply-to', 'to', 'cc', 'bcc']);

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HT = 0x09;
const COLON = 0x3a;
const DASH = 0x2d;
const LT = 0x3c;

/** Where LineEndings stops counting '<': the shape's bounds (src/pipeline/inline.ts) are far below. */
export const TAG_COUNT_CAP = 1 << 16;
/**
 * Every this many bytes one is looked at for a control character (LineEndings.controls), from a
 * random place in each chunk: a loop over every byte cost 94 ms of main-thread time per 25 MiB,
 * one byte in 32 about 3 ms, beside the ~8 ms per MB that smtp-server's own scan costs. A sender
 * cannot know where the looks fall, so cannot hide a body of control characters between them.
 */
export const CONTROL_SAMPLE_STRIDE = 32;

/**
 * Lines of the body that end with a colon (":" or "：", spaces and tabs after it allowed), up to `cap`
 * (a header field's folded lines may end so: DKIM's h=from:to:): where an
 * attribution ("… написал:") or a quoted header field ("Кому:") may end, each one tested by the reply
 * text's dearest rules with the lines above it joined (src/mail/reply-text/text.ts attributionSpan).
 * Counted over a whole message that may run on the main thread (its size is bounded there).
 */
export function colonEndedLines(raw: Buffer, cap: number): number {
  let count = 0;
  for (let p = raw.indexOf(LF, bodyOffset(raw)); p >= 0 && count < cap; p = raw.indexOf(LF, p + 1)) {
    let q = p - 2; // the byte before CR LF
    while (q >= 0 && (raw[q] === SP || raw[q] === HT)) q--;
    if (q < 0) continue;
    if (raw[q] === COLON || (raw[q] === 0x9a && raw[q - 1] === 0xbc && raw[q - 2] === 0xef)) count++;
  }
  return count;
}

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
export function inspectHeader(
  raw: Buffer,
  limits: HeaderLimits,
  /** Filled in with what was counted (complete when the result is null). */
  shape: HeaderShape = emptyHeaderShape(),
): HeaderProblem | null {
  const counts = new Map<string, number>();
  let duplicate: HeaderProblem | null = null;
  Object.assign(shape, emptyHeaderShape());
  let pos = 0;
  // the field being read: its bytes so far, and whether it is an address field
  let fieldBytes = 0;
  let addressField = false;
  const endField = () => {
    if (addressField) shape.addressBytes += fieldBytes;
    fieldBytes = 0;
    addressField = false;
  };
  // a field name folded before its colon ("Subject\r\n : …") is still that field to mailparser
  // (it unfolds first): the name runs on over continuation lines until the colon
  let folded: string | null = null;
  const count = (name: string) => {
    const field = name.trim().toLowerCase();
    if (ADDRESS_FIELDS.has(field)) addressField = true;
    if (SIGNATURE_FIELDS.has(field)) shape.signatures++;
    else if (!duplicate && SINGLE_INSTANCE_FIELDS.has(field)) {
      const n = (counts.get(field) ?? 0) + 1;
      counts.set(field, n);
      if (n > 1) duplicate = { kind: 'duplicate-header', field, count: n };
    }
  };
  while (pos < raw.length) {
    const lf = raw.indexOf(LF, pos);
    const next = lf < 0 ? raw.length : lf + 1;
    if (next > limits.maxBytes) return { kind: 'header-limit', what: 'bytes', limit: limits.maxBytes };
    const end = lf > pos && raw[lf - 1] === CR ? lf - 1 : lf < 0 ? raw.length : lf;
    if (end === pos) {
      endField();
      return duplicate; // the empty line: the body follows
    }
    if (++shape.lines > limits.maxLines) return { kind: 'header-limit', what: 'lines', limit: limits.maxLines };
    const first = raw[pos];
    const continuation = first === SP || first === HT;
    if (!continuation) endField();
    fieldBytes += next - pos;
    // a header block that starts with a continuation line: parsers read that line as a field
    if (!continuation || shape.lines === 1 || folded !== null) {
      const colon = raw.indexOf(COLON, pos);
      const name: string = folded !== null && continuation ? folded : '';
      if (colon >= 0 && colon < end) {
        count(name + raw.toString('latin1', pos, colon));
        folded = null;
      } else {
        folded = name + raw.toString('latin1', pos, end);
        if (folded.length > 200) folded = null; // no field name is that long
      }
    }
    pos = next;
  }
  endField();
  return duplicate;
}

/**
 * Finds a bare LF (not after CR) or a bare CR (not before LF) in a message as it streams in, chunk
 * by chunk. Such a line ending is refused, not normalised: parsers disagree about it (one sees two
 * header fields where another sees one), and the stored bytes stay the bytes received.
 */
export class LineEndings {
  bare: 'LF' | 'CR' | null = null;
  /** Line endings so far, and lines that start with "--" (MIME boundaries): the message's shape, on the way. */
  lines = 0;
  dashLines = 0;
  /**
   * '<' bytes (HTML tags, and the brackets of addresses and Message-IDs), up to TAG_COUNT_CAP: each
   * tag is a node to parse, lay out as text, sanitize and test for quote markers. HTML sent
   * base64- or QP-encoded (=3C) is not seen here; it decodes to at most the message's bytes.
   */
  tags = 0;
  /**
   * Control characters other than tab, CR and LF (\x00–\x1f, \x7f), estimated from one byte in
   * CONTROL_SAMPLE_STRIDE: a body of them costs about twice what other bytes do to process (the
   * pipeline budget charges them, src/pipeline/budget.ts costOf). Encoded (base64, QP) ones are not seen.
   */
  get controls(): number {
    return this.controlSamples * CONTROL_SAMPLE_STRIDE;
  }
  private controlSamples = 0;
  private lastWasCr = false;
  /** The start of a line that began at the end of the last chunk: dashes seen (0, 1), or −1 once decided. */
  private lineStart = -1;

  feed(chunk: Buffer): void {
    if (this.bare || !chunk.length) return;
    if (this.lastWasCr && chunk[0] !== LF) {
      this.bare = 'CR';
      return;
    }
    for (let i = 0; this.lineStart >= 0 && i < chunk.length; i++) {
      if (chunk[i] !== DASH) this.lineStart = -1;
      else if (this.lineStart === 1) {
        this.dashLines++;
        this.lineStart = -1;
      } else this.lineStart = 1;
    }
    for (let p = chunk.indexOf(LF); p >= 0; p = chunk.indexOf(LF, p + 1)) {
      const before = p > 0 ? chunk[p - 1] : this.lastWasCr ? CR : 0;
      if (before !== CR) {
        this.bare = 'LF';
        return;
      }
      this.lines++;
      if (p + 2 < chunk.length) {
        if (chunk[p + 1] === DASH && chunk[p + 2] === DASH) this.dashLines++;
      } else this.lineStart = p + 1 === chunk.length ? 0 : chunk[p + 1] === DASH ? 1 : -1;
    }
    for (let p = chunk.indexOf(CR); p >= 0 && p < chunk.length - 1; p = chunk.indexOf(CR, p + 1)) {
      if (chunk[p + 1] !== LF) {
        this.bare = 'CR';
        return;
      }
    }
    for (let p = chunk.indexOf(LT); p >= 0 && this.tags < TAG_COUNT_CAP; p = chunk.indexOf(LT, p + 1)) this.tags++;
    // a chunk shorter than the stride is looked at in proportion: once with that chance
    if (chunk.length >= CONTROL_SAMPLE_STRIDE || Math.random() * CONTROL_SAMPLE_STRIDE < chunk.length)
      for (
        let i = Math.floor(Math.random() * Math.min(chunk.length, CONTROL_SAMPLE_STRIDE));
        i < chunk.length;
        i += CONTROL_SAMPLE_STRIDE
      ) {
        const b = chunk[i]!;
        if ((b < 0x20 && b !== HT && b !== CR && b !== LF) || b === 0x7f) this.controlSamples++;
      }
    this.lastWasCr = chunk[chunk.length - 1] === CR;
  }

  /** smtp-server hands over the message up to and including the CRLF before the final dot. */
  end(): 'LF' | 'CR' | null {
    if (!this.bare && this.lastWasCr) this.bare = 'CR';
    return this.bare;
  }
}
