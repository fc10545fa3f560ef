// Which messages the main thread processes itself instead of handing them to a worker thread. Every
// step is linear in what it reads and guarded (header blocks bounded, HTML nesting counted, reply
// text lines bounded), so a small message of a simple shape costs milliseconds wherever it runs,
// and the two thread hand-offs and a second heap are the dearer part; anything larger or of a shape
// whose per-line or per-part work adds up goes to the pool, where its CPU is watched and cut off.
// The bound is measured, not guessed: npm run bench:steps -- --shape dear (test/helpers/dear.ts)
// and test/integration/inline.test.ts; the figures are in the README (Benchmark).

/** What the DATA phase counted while the message arrived (src/mail/bytes.ts), before any parser. */
export interface MessageShape {
  bytes: number;
  /** Lines of the whole message, header included. */
  lines: number;
  /** Lines starting with "--": MIME boundaries (each a part to parse), signature delimiters. */
  boundaries: number;
  /** DKIM-Signature, ARC-Seal and ARC-Message-Signature fields: a key lookup and a verification each. */
  signatures: number;
  /** '<' bytes (src/mail/bytes.ts LineEndings.tags): HTML tags, each a node parsed, laid out, sanitized. */
  tags: number;
  /** Bytes of From, Sender, Reply-To, To, Cc and Bcc: each address is parsed and classified. */
  addressBytes: number;
  /**
   * Lines ending with a colon (src/mail/bytes.ts colonEndedLines), counted only for a message small
   * enough to run here: where an attribution or a quoted header field may end.
   */
  colonLines: number;
}

/**
 * The shape beside the size (PIPELINE_INLINE_MAX_BYTES): real replies have tens to hundreds of
 * lines, a few parts, one to three signatures, tens to a few hundred tags (the fixtures/eml replies:
 * 5–137 '<') and a few hundred bytes of addresses. Past these, per-line, per-part, per-tag and
 * per-address costs (the reply text's tests of each line, mailparser's and mailauth's work per part
 * and per line, the HTML tree laid out, sanitized and searched for quote markers, each address
 * parsed and classified) are what would add up.
 *
 * Tags and address bytes measured with `npm run bench:steps -- --shape dear --size 8000,16000,32000,60000`
 * (Node 24, worst of 10, on a shared 2-core machine): table-cells (one <td> every 5 bytes) 15, 10,
 * 20, 33 ms of CPU (148 ms at 60 KB before htmlToText was made linear); address-list (a Cc list)
 * 7.6, 15, 14, 20–34 ms; a normal reply costs a few. At 4000 tags (table-cells of 20 KB) and 8 KiB
 * of addresses a message costs about 10 ms, as the other shapes let in do. HTML sent base64- or
 * QP-encoded has its tags counted again once decoded (decodedTagsFit): the size alone did not bound it.
 * Long lines and long fields other than addresses cost little (a 60 KB line 2–4 ms, a 36 KB
 * encoded Subject 14 ms) and are not counted.
 *
 * Lines ending with a colon (attack run 4, F-low-3): each is where an attribution may end, and the
 * reply text tests it with up to the lines above it joined. Outlook's quoted fields in Russian
 * ("От: Имя <aN@b.ru> Отправлено: 27 января 2012 г. Кому:", 61 KB, ~1000 lines) cost 105 ms of the
 * server's CPU each, 231 ms in extractReply alone on a loaded machine (least of 8); real replies have
 * 0–3 such lines (fixtures/eml), a long thread one or two per message quoted.
 */
export const INLINE_SHAPE = Object.freeze({
  lines: 2000,
  boundaries: 64,
  signatures: 8,
  tags: 4000,
  addressBytes: 8 * 1024,
  colonLines: 100,
});

/** What the reply text's rules may read of a message on the main thread (src/mail/reply-text/index.ts ReplyInput.bound). */
export const INLINE_LINE_BOUND = Object.freeze({ lines: INLINE_SHAPE.lines, colonLines: INLINE_SHAPE.colonLines });

export function runsInline(shape: MessageShape | undefined, maxBytes: number): boolean {
  return (
    !!shape &&
    shape.bytes <= maxBytes &&
    shape.lines <= INLINE_SHAPE.lines &&
    shape.boundaries <= INLINE_SHAPE.boundaries &&
    shape.signatures <= INLINE_SHAPE.signatures &&
    shape.tags <= INLINE_SHAPE.tags &&
    shape.addressBytes <= INLINE_SHAPE.addressBytes &&
    shape.colonLines <= INLINE_SHAPE.colonLines
  );
}

/**
 * HTML sent base64 or quoted-printable hides its tags from the DATA phase's count (attack run 5):
 * they are counted again once decoded, right after the parse, and past INLINE_SHAPE.tags the message
 * goes to a worker (NotInline) before the HTML is parsed, laid out and sanitized. Lines, and lines
 * ending with a colon, are bounded where they are read: on the reply text's own lines
 * (INLINE_LINE_BOUND), however they were made (base64, a lone CR, "&#10;" in a <pre>, <br>).
 */
export function decodedTagsFit(html: string | null): boolean {
  if (html === null) return true;
  let tags = 0;
  for (let p = html.indexOf('<'); p >= 0 && tags <= INLINE_SHAPE.tags; p = html.indexOf('<', p + 1)) tags++;
  return tags <= INLINE_SHAPE.tags;
}

/** The decoded HTML's tags (decodedTagsFit) or the reply text's lines (INLINE_LINE_BOUND) turned out past the inline bounds: a worker processes it. */
export class NotInline extends Error {
  override name = 'NotInline';
}
