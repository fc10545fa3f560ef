// The one HTML tree: htmlparser2 into domhandler nodes, with every open element counted so that
// no input makes the work more than linear, and all elements and attributes counted so that no
// input makes it large; and a linear tag strip for HTML too big, too deep or of too many elements.
import { type ChildNode, type Document, DomHandler, type Element, isTag, isText } from 'domhandler';
import { Parser } from 'htmlparser2';
import { tagRole } from './tags.js';

export type { ChildNode, Document, Element };
export { isTag, isText };

/**
 * htmlparser2 keeps its open elements in an array it shifts and unshifts, so each tag costs as
 * much as the depth: 100,000 nested <div>s take seconds. It closes an implied-end element (`p`,
 * `li`, `td`…) only when the same tag is on top, so `<p><li>` repeated nests as deep as any
 * `<div>`. Counting what it really holds open bounds the work; real mail stays far below.
 */
export const MAX_HTML_NESTING = 1000;
/** Flat HTML costs about 100 ms per MB to parse; parse.ts gives mailparser the same bound. */
export const MAX_HTML_LENGTH = 2 * 1024 * 1024;
/**
 * Elements in all. Each is paid for up to four times (the tree, the stored HTML, its text and the
 * reply rules): about 7 µs of CPU and 1 KB of memory, so `<b>x</b>` repeated to 2 MB (250,000
 * elements, one deep) took 1.7 s and 224 MB in the worker. Real mail has one element per 37–62
 * bytes (fixtures/eml: 24–61 elements), a big newsletter a few thousand (Gmail clips at 102 KB), a
 * long Outlook thread of 1 MB about 20,000. Past this the HTML is stored as text, as over 2 MB; the
 * reply is taken from the first 256 KB of HTML (src/mail/reply-text/message.ts), which holds fewer.
 */
export const MAX_HTML_ELEMENTS = 20_000;
/**
 * Attributes in all: a reply has fewer than one an element (fixtures/eml), a newsletter's tables
 * two or three; 150,000 on one tag took 1.6 s.
 */
export const MAX_HTML_ATTRIBUTES = 60_000;

class OverCap extends Error {}

/**
 * Counts what the parser holds open (it reports every close, implied ones included), and every
 * element and attribute it has made. Throwing stops the parse: the work stops at the cap.
 */
class CountingHandler extends DomHandler {
  private depth = 0;
  private elements = 0;
  private attributes = 0;
  override onopentag(name: string, attribs: Record<string, string>): void {
    if (++this.depth > MAX_HTML_NESTING || ++this.elements > MAX_HTML_ELEMENTS) throw new OverCap();
    super.onopentag(name, attribs);
  }
  /** htmlparser2 reports each attribute as it ends, before the tag is opened. */
  onattribute(): void {
    if (++this.attributes > MAX_HTML_ATTRIBUTES) throw new OverCap();
  }
  override onclosetag(): void {
    this.depth--;
    super.onclosetag();
  }
}

/**
 * The tree of the HTML, or null when it is over a cap (length, nesting, elements, attributes):
 * then use stripTags.
 */
export function parseHtml(html: string): Document | null {
  if (html.length > MAX_HTML_LENGTH) return null;
  const handler = new CountingHandler();
  const parser = new Parser(handler, { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true });
  try {
    parser.end(html);
  } catch (err) {
    if (err instanceof OverCap) return null;
    throw err;
  }
  return handler.root;
}

/** The first `limit` characters of a subtree's visible text, leading whitespace skipped; stops early. */
export function leadingText(node: ChildNode, limit: number): string {
  let out = '';
  const visit = (n: ChildNode): boolean => {
    if (isText(n)) {
      out += out === '' ? n.data.trimStart() : n.data;
      return out.length >= limit;
    }
    if (!isTag(n) || tagRole(n.name).hidden) return false;
    return n.children.some(visit);
  };
  visit(node);
  return out.slice(0, limit);
}

// ---------------------------------------------------------------------------------------------
// Linear scans of raw HTML, for input too big or too deep to hand to the parser.

const SKIPPED_CONTENT = ['script', 'style', 'head', 'title'].map((tag) => ({ tag, end: new RegExp(`</${tag}`, 'gi') }));

/** Text of raw HTML without parsing it: tags become spaces, script and style content goes. */
export function stripTags(html: string): string {
  const parts: string[] = [];
  let from = 0;
  while (from < html.length) {
    const lt = html.indexOf('<', from);
    if (lt < 0) {
      parts.push(html.slice(from));
      break;
    }
    parts.push(html.slice(from, lt), ' ');
    const gt = html.indexOf('>', lt + 1);
    if (gt < 0) break; // an unfinished tag to the end is not text
    from = gt + 1;
    // the first letter first: most tags start with none of s, h, t (a slice a tag was 40% of the strip)
    const first = html.charCodeAt(lt + 1) | 0x20;
    const skipped =
      first === 0x73 || first === 0x68 || first === 0x74
        ? SKIPPED_CONTENT.find(
            ({ tag }) =>
              html.slice(lt + 1, lt + 1 + tag.length).toLowerCase() === tag &&
              !isTagNameChar(html.charCodeAt(lt + 1 + tag.length)),
          )
        : undefined;
    if (skipped) {
      skipped.end.lastIndex = from;
      const close = skipped.end.exec(html);
      if (!close) break;
      const closeEnd = html.indexOf('>', close.index);
      from = closeEnd < 0 ? html.length : closeEnd + 1;
    }
  }
  return decodeEntities(parts.join(''))
    .replace(/[ \t\f\r\u00a0]+/g, ' ')
    .replace(/ ?\n ?/g, '\n');
}

function isTagNameChar(code: number): boolean {
  return (
    (code >= 0x61 && code <= 0x7a) ||
    (code >= 0x41 && code <= 0x5a) ||
    (code >= 0x30 && code <= 0x39) ||
    code === 0x2d ||
    code === 0x3a ||
    code === 0x5f
  );
}

const ENTITY = /&(#x[0-9a-f]{1,6}|#\d{1,7}|[a-z]{2,8});/gi;
const NAMED_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

/** The common entities, for the tag strip only: the parser decodes all of them itself. */
function decodeEntities(s: string): string {
  return s.replace(ENTITY, (whole, name: string) => {
    if (name[0] === '#') {
      const code = name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      if (code >= 0xd800 && code <= 0xdfff) return '\ufffd'; // a lone surrogate, as the HTML parser decodes it
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return NAMED_ENTITIES[name.toLowerCase()] ?? whole;
  });
}
