// The HTML we store and a ticket view may show: sanitize-html with a fixed allow-list, and plain
// text for a message whose HTML mailparser did not convert. Pure; decoding MIME is parse.ts's.
import sanitize from 'sanitize-html';

/**
 * htmlparser2 (under sanitize-html) is quadratic in nesting depth: 100,000 nested <div>s (1.1 MB)
 * take about 4 s, 50,000 take 0.4 s, 20,000 take 50 ms. mailparser refuses to convert HTML nested
 * deeper than 1000 levels for the same reason; real mail stays far below it. Deeper HTML is not
 * parsed at all and is stored as its text, escaped.
 */
export const MAX_HTML_NESTING = 1000;
/**
 * Flat HTML costs about 120 ms per MB. parse.ts gives mailparser the same bound
 * (maxHtmlLengthToParse), so HTML over it has no text from mailparser either.
 */
export const MAX_HTML_LENGTH = 2 * 1024 * 1024;

// sanitize-html lets relative URLs through; in mail they have no base but the ticket view's own
// origin, where <img src="/api/…"> would be a request with the viewer's cookies.
const LINK_URL = /^\s*(?:https?|mailto):/i;
const IMAGE_URL = /^\s*(?:https?|cid):/i;

function withAbsoluteUrl(attribs: sanitize.Attributes, name: string, allowed: RegExp): sanitize.Attributes {
  if (attribs[name] === undefined || allowed.test(attribs[name])) return attribs;
  const { [name]: _dropped, ...rest } = attribs;
  return rest;
}

// Formatting a reader needs and nothing that can act: no script, style, forms, frames or
// objects, no event handlers (no attribute is allowed that is not listed here). `style` and
// `class` are dropped entirely: this is a ticket view, not a mail client, and inline CSS is how
// mail hides text, overlays links and tracks readers; parsing it (postcss) would also be the
// most expensive step. Remote images keep http(s) so a view can decide whether to load them;
// `cid:` keeps inline images linked to their attachment rows. No `data:` URLs: the parser keeps
// cid: links (skipImageLinks or keepCidLinks), so inline images never become base64 in the HTML.
const OPTIONS: sanitize.IOptions = {
  allowedTags: [
    'p', 'br', 'div', 'span', 'b', 'i', 'u', 's', 'strong', 'em', 'small', 'sub', 'sup',
    'ul', 'ol', 'li', 'blockquote', 'pre', 'code', 'a', 'img', 'hr',
    'table', 'caption', 'thead', 'tbody', 'tfoot', 'tr', 'td', 'th',
    'h1', 'h2', 'h3', 'h4', 'h5', 'h6',
  ],
  allowedAttributes: {
    a: ['href', 'rel', 'target'],
    img: ['src', 'alt', 'width', 'height'],
    td: ['colspan', 'rowspan'],
    th: ['colspan', 'rowspan'],
  },
  allowedSchemes: ['http', 'https', 'mailto'],
  allowedSchemesByTag: { img: ['http', 'https', 'cid'] },
  allowProtocolRelative: false,
  // Text of these is not content: dropped with the element, not left behind as stray text.
  nonTextTags: ['script', 'style', 'textarea', 'option', 'noscript', 'title', 'head', 'template', 'xml', 'iframe', 'object', 'embed', 'noembed', 'noframes', 'select'],
  parseStyleAttributes: false,
  transformTags: {
    a: (tagName, attribs) => ({ tagName, attribs: { ...withAbsoluteUrl(attribs, 'href', LINK_URL), rel: 'noopener noreferrer nofollow', target: '_blank' } }),
    img: (tagName, attribs) => ({ tagName, attribs: withAbsoluteUrl(attribs, 'src', IMAGE_URL) }),
  },
  // An image whose source was not allowed (data:, javascript:) would only be an empty box.
  exclusiveFilter: (frame) => frame.tag === 'img' && !frame.attribs.src,
};

export function sanitizeHtml(html: string, fallbackText?: string | null): string {
  if (html.length > MAX_HTML_LENGTH || nestedDeeperThan(html, MAX_HTML_NESTING)) {
    return `<pre>${escapeHtml(fallbackText ?? stripTags(html).trim())}</pre>`;
  }
  // PostgreSQL text cannot hold NUL; it has no meaning in HTML either.
  return sanitize(html, OPTIONS).replace(NUL, '');
}

const NUL = /\u0000/g;

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!).replace(NUL, '');
}

// ---------------------------------------------------------------------------------------------
// Text from HTML. mailparser sets parsed.text from the HTML only for a message that is a single
// text/html part. HTML inside multipart/mixed (with attachments) or multipart/related (with
// inline images) and no text/plain part, which Outlook and Apple Mail send, leaves parsed.text
// unset: htmlToText covers that case, and HTML mailparser refused (textConversionError).

const BLOCK_TAGS = new Set([
  'address', 'article', 'aside', 'blockquote', 'caption', 'center', 'dd', 'div', 'dl', 'dt', 'figcaption', 'figure',
  'footer', 'form', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'header', 'hr', 'li', 'main', 'nav', 'ol', 'p', 'pre',
  'section', 'table', 'tbody', 'tfoot', 'thead', 'tr', 'ul',
]);
const PARAGRAPH_TAGS = new Set(['p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'table', 'blockquote', 'pre']);
const TEXT_OPTIONS: sanitize.IOptions = {
  allowedTags: [...BLOCK_TAGS, 'br', 'td', 'th'],
  allowedAttributes: {},
  nonTextTags: OPTIONS.nonTextTags!,
  parseStyleAttributes: false,
};
const TOKEN = /<(\/?)([a-z0-9]+)[^>]*>|([^<]+)/gi;
const COLLAPSIBLE = /[ \t\n\r\f\u00a0]+/g;
const NAMED_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };
const ENTITY = /&(#x[0-9a-f]{1,6}|#\d{1,7}|[a-z]{2,8});/gi;

/**
 * Plain text laid out the way a reader sees the HTML: blocks on their own lines, paragraphs apart,
 * list items marked, <pre> kept as written. Over the caps above, a linear tag strip instead.
 */
export function htmlToText(html: string): string {
  if (html.length > MAX_HTML_LENGTH || nestedDeeperThan(html, MAX_HTML_NESTING)) return tidy(stripTags(html));
  const out: string[] = [];
  let newlines = 0; // line breaks written since the last text
  let started = false;
  let afterSpace = true;
  let pre = 0;
  const breakTo = (n: number) => {
    if (!started) return;
    for (; newlines < n; newlines++) out.push('\n');
    afterSpace = true;
  };
  const write = (s: string) => {
    out.push(s);
    started = true;
    let trailing = 0;
    while (trailing < s.length && s.charCodeAt(s.length - 1 - trailing) === 0x0a) trailing++;
    newlines = trailing === s.length ? newlines + trailing : trailing;
    afterSpace = s.endsWith(' ') || trailing > 0;
  };
  for (const m of sanitize(html, TEXT_OPTIONS).matchAll(TOKEN)) {
    if (m[3] !== undefined) {
      const text = decodeEntities(m[3]);
      if (pre > 0) {
        if (text) write(text);
        continue;
      }
      let s = text.replace(COLLAPSIBLE, ' ');
      if (afterSpace && s.startsWith(' ')) s = s.slice(1);
      if (s) write(s);
      continue;
    }
    const tag = m[2]!.toLowerCase();
    const closing = m[1] === '/';
    if (tag === 'br') {
      out.push('\n');
      newlines++;
      afterSpace = true;
    } else if (tag === 'pre') {
      pre = Math.max(0, pre + (closing ? -1 : 1));
    } else if ((tag === 'td' || tag === 'th') && !closing && !afterSpace) {
      write(' ');
    }
    if (!BLOCK_TAGS.has(tag)) continue;
    breakTo(PARAGRAPH_TAGS.has(tag) ? 2 : 1);
    if (tag === 'li' && !closing) write('- ');
  }
  return tidy(out.join(''));
}

/** Lines without trailing blanks, at most one empty line in a row, nothing around. */
function tidy(text: string): string {
  return text
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .replace(NUL, '')
    .trim();
}

function decodeEntities(s: string): string {
  return s.replace(ENTITY, (whole, name: string) => {
    if (name[0] === '#') {
      const code = name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return NAMED_ENTITIES[name.toLowerCase()] ?? whole;
  });
}

// ---------------------------------------------------------------------------------------------
// Linear scans of raw HTML, for input too big or too deep to hand to a parser.

// Void elements and elements whose end tag is implied by the next sibling do not deepen nesting.
const UNCOUNTED_TAGS = new Set([
  'area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'param', 'source', 'track', 'wbr',
  'p', 'li', 'dt', 'dd', 'option', 'optgroup', 'tr', 'td', 'th', 'thead', 'tbody', 'tfoot', 'rt', 'rp',
]);

/**
 * Follows what htmlparser2 builds closely enough to bound its work: a start tag opens an element,
 * an end tag closes down to the nearest open element of its name and is ignored otherwise.
 * One pass, and it stops as soon as the limit is crossed.
 */
function nestedDeeperThan(html: string, limit: number): boolean {
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

function isTagNameChar(code: number): boolean {
  return (code >= 0x61 && code <= 0x7a) || (code >= 0x41 && code <= 0x5a) || (code >= 0x30 && code <= 0x39) || code === 0x2d || code === 0x3a || code === 0x5f;
}

const SKIPPED_CONTENT = ['script', 'style', 'head', 'title'].map((tag) => ({ tag, end: new RegExp(`</${tag}`, 'gi') }));

/** Text of raw HTML without parsing it: tags become spaces, script and style content goes. */
function stripTags(html: string): string {
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
    const skipped = SKIPPED_CONTENT.find(
      ({ tag }) => html.slice(lt + 1, lt + 1 + tag.length).toLowerCase() === tag && !isTagNameChar(html.charCodeAt(lt + 1 + tag.length)),
    );
    if (skipped) {
      skipped.end.lastIndex = from;
      const close = skipped.end.exec(html);
      if (!close) break;
      const closeEnd = html.indexOf('>', close.index);
      from = closeEnd < 0 ? html.length : closeEnd + 1;
    }
  }
  return decodeEntities(parts.join('')).replace(/[ \t\f\r\u00a0]+/g, ' ').replace(/ ?\n ?/g, '\n');
}
