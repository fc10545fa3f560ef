// Linear scans of raw HTML shared by reply-text.ts and sanitize.ts: how deep it nests (to keep
// input from htmlparser2, which is quadratic in nesting depth) and entity decoding.

/**
 * htmlparser2 (under sanitize-html) is quadratic in nesting depth: 100,000 nested <div>s (1.1 MB)
 * take about 4 s, 50,000 take 0.4 s, 20,000 take 50 ms. mailparser refuses to convert HTML nested
 * deeper than 1000 levels for the same reason; real mail stays far below it.
 */
export const MAX_HTML_NESTING = 1000;
/** Flat HTML costs about 120 ms per MB to parse; parse.ts gives mailparser the same bound. */
export const MAX_HTML_LENGTH = 2 * 1024 * 1024;

/** Too long or too deep for a parser: such HTML is handled as text instead. */
export function tooComplexHtml(html: string): boolean {
  return html.length > MAX_HTML_LENGTH || nestedDeeperThan(html, MAX_HTML_NESTING);
}

// Void elements and elements whose end tag is implied by the next sibling do not deepen nesting.
const UNCOUNTED_TAGS = new Set([
  'area',
  'base',
  'br',
  'col',
  'embed',
  'hr',
  'img',
  'input',
  'link',
  'meta',
  'param',
  'source',
  'track',
  'wbr',
  'p',
  'li',
  'dt',
  'dd',
  'option',
  'optgroup',
  'tr',
  'td',
  'th',
  'thead',
  'tbody',
  'tfoot',
  'rt',
  'rp',
]);

/**
 * Follows what htmlparser2 builds closely enough to bound its work: a start tag opens an element,
 * an end tag closes down to the nearest open element of its name and is ignored otherwise.
 * One pass, and it stops as soon as the limit is crossed.
 */
export function nestedDeeperThan(html: string, limit: number): boolean {
  const stack: string[] = [];
  const open = new Map<string, number>();
  let i = html.indexOf('<');
  while (i >= 0) {
    if (html.startsWith('!--', i + 1)) {
      const end = html.indexOf('-->', i + 4);
      i = end < 0 ? -1 : html.indexOf('<', end + 3);
      continue;
    }
    let pos = i + 1;
    const closing = html.charCodeAt(pos) === 0x2f;
    if (closing) pos++;
    const nameStart = pos;
    while (pos < html.length && isTagNameChar(html.charCodeAt(pos))) pos++;
    if (pos === nameStart) {
      i = html.indexOf('<', pos);
      continue;
    }
    const name = html.slice(nameStart, pos).toLowerCase();
    const end = html.indexOf('>', pos);
    if (end < 0) return false;
    if (!UNCOUNTED_TAGS.has(name)) {
      if (closing) {
        if (open.get(name)) {
          let top: string | undefined;
          do {
            top = stack.pop()!;
            open.set(top, open.get(top)! - 1);
          } while (top !== name);
        }
      } else {
        stack.push(name);
        open.set(name, (open.get(name) ?? 0) + 1);
        if (stack.length > limit) return true;
      }
    }
    i = html.indexOf('<', end + 1);
  }
  return false;
}

export function isTagNameChar(code: number): boolean {
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

export function decodeEntities(s: string): string {
  return s.replace(ENTITY, (whole, name: string) => {
    if (name[0] === '#') {
      const code = name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return NAMED_ENTITIES[name.toLowerCase()] ?? whole;
  });
}
