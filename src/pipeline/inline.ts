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
}

/**
 * The shape beside the size (PIPELINE_INLINE_MAX_BYTES): real replies have tens to hundreds of
 * lines, a few parts and one to three signatures. Past these, per-line and per-part costs (the
 * reply text's tests of each line, mailparser's and mailauth's work per part and per line) are
 * what would add up.
 */
export const INLINE_SHAPE = Object.freeze({ lines: 2000, boundaries: 64, signatures: 8 });

export function runsInline(shape: MessageShape | undefined, maxBytes: number): boolean {
  return (
    !!shape &&
    shape.bytes <= maxBytes &&
    shape.lines <= INLINE_SHAPE.lines &&
    shape.boundaries <= INLINE_SHAPE.boundaries &&
    shape.signatures <= INLINE_SHAPE.signatures
  );
}
