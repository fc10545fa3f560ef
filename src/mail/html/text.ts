// HTML laid out as text the way a mail client shows it: blocks on their own lines, paragraphs
// apart, <br> breaks a line, list items marked, <pre> kept as written. One walk over the shared
// tree serves htmlToText and the reply rules (which mark, per element, what is quoted).

import { tagRole } from './tags.js';
import { type ChildNode, type Document, type Element, isTag, isText, parseHtml, stripTags } from './tree.js';

/** 'maybe': inside a plain <blockquote>, a quote only if an attribution line introduces it. */
export type Origin = 'own' | 'quote' | 'maybe';

export interface Line {
  text: string;
  origin: Origin;
}

/** What an element is to the reply rules; 'cut' means the original starts here and runs to the end. */
export type Role = 'quote' | 'maybe' | 'cut' | null;
export type Classifier = (el: Element) => Role;

/**
 * Plain text of HTML. mailparser sets parsed.text from HTML only for a message that is a single
 * text/html part; HTML inside multipart/mixed or multipart/related with no text/plain part (as
 * Outlook and Apple Mail send it) gets its text here. Over the caps, a linear tag strip instead.
 */
export function htmlToText(html: string): string {
  const doc = parseHtml(html);
  if (!doc) return tidy(stripTags(html));
  return tidy(
    layoutLines(doc)
      .map((l) => l.text)
      .join('\n'),
  );
}

/** Lines without trailing blanks, at most one empty line in a row, nothing around. */
function tidy(text: string): string {
  return text
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .replace(/\u0000/g, '')
    .trim();
}

/** Outlook's paragraphs (class MsoNormal…) have no margins: one line apart, not two. */
const OUTLOOK_PARAGRAPH = /\bMso/;

export function layoutLines(doc: Document, classify: Classifier = () => null): Line[] {
  const sink = new LineSink();
  let cutting = false;

  const walk = (node: ChildNode, origin: Origin, pre: boolean, list: { ordered: boolean; n: number } | null) => {
    if (isText(node)) {
      sink.write(node.data, cutting ? 'quote' : origin, pre);
      return;
    }
    if (!isTag(node)) return;
    const tag = tagRole(node.name);
    if (tag.hidden) return;
    if (node.name === 'br') {
      sink.newline();
      return;
    }
    const role = classify(node);
    if (role === 'cut') cutting = true;
    const inner: Origin = role === 'quote' ? 'quote' : role === 'maybe' && origin === 'own' ? 'maybe' : origin;
    const spacing = tag.paragraph && !OUTLOOK_PARAGRAPH.test(node.attribs.class ?? '') ? 2 : 1;
    if (tag.block) sink.ensureBreaks(spacing);
    if (node.name === 'li' && list) {
      list.n++;
      sink.write(list.ordered ? `${list.n}. ` : '- ', cutting ? 'quote' : inner, false);
    }
    // Cells of a row share a line; a space at the start of a line is dropped anyway.
    if (node.name === 'td' || node.name === 'th') sink.write(' ', inner, false);
    const childList = node.name === 'ul' || node.name === 'ol' ? { ordered: node.name === 'ol', n: 0 } : list;
    for (const child of node.children) walk(child, inner, pre || node.name === 'pre', childList);
    if (tag.block) sink.ensureBreaks(spacing);
  };

  for (const child of doc.children) walk(child, 'own', false, null);
  return sink.finish();
}

/**
 * Collects text into lines, remembering for each line where its text came from. A line is kept as
 * its pieces and joined once when it ends: asking a concatenated string about its end (endsWith)
 * makes V8 flatten it, and once per piece that was quadratic in the line's length (a table row of
 * 60,000 cells: 1 MB of HTML took 52 s).
 */
class LineSink {
  private readonly lines: Line[] = [];
  private pieces: string[] = [];
  /** The current line is empty or ends with a space. */
  private atSpace = true;
  private origins = new Set<Origin>();
  private breaks = 0;
  private started = false;

  newline(): void {
    this.lines.push({ text: this.pieces.join('').replace(/\u00a0/g, ' '), origin: lineOrigin(this.origins) });
    this.pieces = [];
    this.atSpace = true;
    this.origins = new Set();
    this.breaks++;
  }

  /** At least n line breaks since the last text: 1 starts a new line, 2 leaves a blank one. */
  ensureBreaks(n: number): void {
    if (!this.started) return;
    while (this.breaks < n) this.newline();
  }

  write(raw: string, origin: Origin, pre: boolean): void {
    if (pre) {
      raw.split(/\r?\n/).forEach((piece, k) => {
        if (k > 0) this.newline();
        this.append(piece, origin);
      });
      return;
    }
    let s = raw.replace(/[ \t\n\r\f]+/g, ' ');
    if (this.atSpace) s = s.replace(/^ /, '');
    this.append(s, origin);
  }

  private append(s: string, origin: Origin): void {
    if (s === '') return;
    this.pieces.push(s);
    this.atSpace = s.endsWith(' ');
    // A non-breaking space is content: <div>&nbsp;</div> is how many clients write an empty line.
    if (/[^ \t\n\r\f]/.test(s)) {
      this.origins.add(origin);
      this.breaks = 0;
      this.started = true;
    }
  }

  finish(): Line[] {
    if (this.pieces.length) this.newline();
    return this.lines;
  }
}

/** A line mixing the person's text with quoted text is kept: losing their words is worse. */
function lineOrigin(origins: Set<Origin>): Origin {
  if (origins.has('own')) return 'own';
  if (origins.has('quote')) return 'quote';
  if (origins.has('maybe')) return 'maybe';
  return 'own';
}
