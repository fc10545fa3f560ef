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

// Elements that never hold content: a start tag opens no level (htmlparser2's list).
const VOID_TAGS = new Set([
  'area',
  'base',
  'basefont',
  'br',
  'col',
  'command',
  'embed',
  'frame',
  'hr',
  'img',
  'input',
  'isindex',
  'keygen',
  'link',
  'meta',
  'param',
  'source',
  'track',
  'wbr',
]);

// htmlparser2 (10.x, `openImpliesClose`) closes an open element implicitly only when the element
// on top of its stack is one of these for the tag that opens: `<p>` after `<p>`, `<li>` after
// `<li>`, `<td>` after `<td>` — never `<p>` after `<li>`. So `<p><li>` repeated nests without limit,
// and every open element counts. Closing less than the parser does would only over-count.
const P = ['p'];
const FORM = ['input', 'option', 'optgroup', 'select', 'button', 'datalist', 'textarea'];
const IMPLIED_CLOSE = new Map<string, ReadonlySet<string>>(
  Object.entries({
    tr: ['tr', 'th', 'td'],
    th: ['th'],
    td: ['thead', 'th', 'td'],
    body: ['head', 'link', 'script'],
    li: ['li'],
    option: ['option'],
    optgroup: ['optgroup', 'option'],
    dd: ['dt', 'dd'],
    dt: ['dt', 'dd'],
    rt: ['rt', 'rp'],
    rp: ['rt', 'rp'],
    tbody: ['thead', 'tbody'],
    tfoot: ['thead', 'tbody'],
    ...Object.fromEntries(['select', 'input', 'output', 'button', 'datalist', 'textarea'].map((t) => [t, FORM])),
    ...Object.fromEntries(
      [
        'p',
        'h1',
        'h2',
        'h3',
        'h4',
        'h5',
        'h6',
        'address',
        'article',
        'aside',
        'blockquote',
        'details',
        'div',
        'dl',
        'fieldset',
        'figcaption',
        'figure',
        'footer',
        'form',
        'header',
        'hr',
        'main',
        'nav',
        'ol',
        'pre',
        'section',
        'table',
        'ul',
      ].map((t) => [t, P]),
    ),
  }).map(([tag, closes]) => [tag, new Set(closes)]),
);

/**
 * Follows what htmlparser2 builds closely enough to bound its work: a start tag first closes the
 * elements on top that it implies closed, then opens an element (void elements excepted); an end
 * tag closes down to the nearest open element of its name and is ignored otherwise. Every open
 * element counts. One pass, and it stops as soon as the limit is crossed.
 */
export function nestedDeeperThan(html: string, limit: number): boolean {
  const stack: string[] = [];
  const open = new Map<string, number>();
  const pop = () => {
    const top = stack.pop()!;
    open.set(top, open.get(top)! - 1);
    return top;
  };
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
    if (closing) {
      if (open.get(name)) while (pop() !== name);
    } else {
      const implied = IMPLIED_CLOSE.get(name);
      if (implied) while (stack.length && implied.has(stack[stack.length - 1]!)) pop();
      if (!VOID_TAGS.has(name)) {
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
