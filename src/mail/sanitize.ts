// The HTML we store and a ticket view may show: sanitize-html with a fixed allow-list, and plain
// text for a message whose HTML mailparser did not convert. Pure; decoding MIME is parse.ts's.
import sanitize from 'sanitize-html';
import { decodeEntities, isTagNameChar, MAX_HTML_LENGTH, MAX_HTML_NESTING, tooComplexHtml } from './html.js';

export { MAX_HTML_LENGTH, MAX_HTML_NESTING };

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
    'p',
    'br',
    'div',
    'span',
    'b',
    'i',
    'u',
    's',
    'strong',
    'em',
    'small',
    'sub',
    'sup',
    'ul',
    'ol',
    'li',
    'blockquote',
    'pre',
    'code',
    'a',
    'img',
    'hr',
    'table',
    'caption',
    'thead',
    'tbody',
    'tfoot',
    'tr',
    'td',
    'th',
    'h1',
    'h2',
    'h3',
    'h4',
    'h5',
    'h6',
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
  nonTextTags: [
    'script',
    'style',
    'textarea',
    'option',
    'noscript',
    'title',
    'head',
    'template',
    'xml',
    'iframe',
    'object',
    'embed',
    'noembed',
    'noframes',
    'select',
  ],
  parseStyleAttributes: false,
  transformTags: {
    a: (tagName, attribs) => ({
      tagName,
      attribs: { ...withAbsoluteUrl(attribs, 'href', LINK_URL), rel: 'noopener noreferrer nofollow', target: '_blank' },
    }),
    img: (tagName, attribs) => ({ tagName, attribs: withAbsoluteUrl(attribs, 'src', IMAGE_URL) }),
  },
  // An image whose source was not allowed (data:, javascript:) would only be an empty box.
  exclusiveFilter: (frame) => frame.tag === 'img' && !frame.attribs.src,
};

export function sanitizeHtml(html: string, fallbackText?: string | null): string {
  if (tooComplexHtml(html)) {
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
  'address',
  'article',
  'aside',
  'blockquote',
  'caption',
  'center',
  'dd',
  'div',
  'dl',
  'dt',
  'figcaption',
  'figure',
  'footer',
  'form',
  'h1',
  'h2',
  'h3',
  'h4',
  'h5',
  'h6',
  'header',
  'hr',
  'li',
  'main',
  'nav',
  'ol',
  'p',
  'pre',
  'section',
  'table',
  'tbody',
  'tfoot',
  'thead',
  'tr',
  'ul',
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

/**
 * Plain text laid out the way a reader sees the HTML: blocks on their own lines, paragraphs apart,
 * list items marked, <pre> kept as written. Over the caps above, a linear tag strip instead.
 */
export function htmlToText(html: string): string {
  if (tooComplexHtml(html)) return tidy(stripTags(html));
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

// ---------------------------------------------------------------------------------------------
// Linear scans of raw HTML, for input too big or too deep to hand to a parser.

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
      ({ tag }) =>
        html.slice(lt + 1, lt + 1 + tag.length).toLowerCase() === tag &&
        !isTagNameChar(html.charCodeAt(lt + 1 + tag.length)),
    );
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
