// The HTML we store and a ticket view may show: an allow-list serializer over the shared tree
// (tags.ts says what is kept). Nothing that can act survives: no script, style, forms, frames or
// objects, no event handler (no attribute is kept that the table does not list), no URL that is
// not absolute http(s)/mailto (links) or http(s)/cid (images).

import { tagRole } from './tags.js';
import { type ChildNode, isTag, isText, parseHtml, stripTags } from './tree.js';

// Relative URLs have no base in mail but the ticket view's own origin, where <img src="/api/…">
// would be a request with the viewer's cookies; javascript:, data: and protocol-relative go too.
const LINK_URL = /^\s*(?:https?|mailto):/i;
const IMAGE_URL = /^\s*(?:https?|cid):/i;
const LINK_REL = 'noopener noreferrer nofollow';
const NUL = /\u0000/g;

/**
 * `style` and `class` are dropped entirely: this is a ticket view, not a mail client, and inline
 * CSS is how mail hides text, overlays links and tracks readers. Remote images keep http(s) so a
 * view can decide whether to load them; `cid:` keeps inline images linked to their attachment
 * rows. HTML over a cap of src/mail/html/tree.ts (length, nesting, elements, attributes) is stored
 * as escaped text: the text part when it has any, else the tag strip of the HTML (an HTML-only
 * message's text part is '', never null).
 */
export function sanitizeHtml(html: string, fallbackText?: string | null): string {
  const doc = parseHtml(html);
  if (!doc)
    return `<pre>${escapeText(fallbackText && /\S/.test(fallbackText) ? fallbackText : stripTags(html).trim())}</pre>`;
  const out: string[] = [];
  for (const node of doc.children) write(node, out);
  return out.join('').replace(NUL, '');
}

function write(node: ChildNode, out: string[]): void {
  if (isText(node)) {
    out.push(escapeText(node.data));
    return;
  }
  if (!isTag(node)) return; // comments, CDATA, processing instructions
  const role = tagRole(node.name);
  if (role.hidden) return;
  if (!role.keep) {
    for (const child of node.children) write(child, out);
    return;
  }
  const attrs = keptAttributes(node.name, node.attribs, role.keep);
  if (attrs === null) return;
  if (role.void) {
    out.push(`<${node.name}${attrs} />`);
    return;
  }
  out.push(`<${node.name}${attrs}>`);
  for (const child of node.children) write(child, out);
  out.push(`</${node.name}>`);
}

/** The attributes to write, in the order the sender wrote them; null drops the element. */
function keptAttributes(tag: string, attribs: Record<string, string>, keep: readonly string[]): string | null {
  const kept: string[] = [];
  for (const [name, value] of Object.entries(attribs)) {
    if (!keep.includes(name)) continue;
    if (tag === 'a' && name === 'href' && !LINK_URL.test(value)) continue;
    if (tag === 'img' && name === 'src' && !IMAGE_URL.test(value)) continue;
    kept.push(` ${name}="${escapeAttribute(value)}"`);
  }
  // an image whose source was not allowed (data:, javascript:) would only be an empty box
  if (tag === 'img' && !kept.some((a) => a.startsWith(' src='))) return null;
  if (tag === 'a') kept.push(` rel="${LINK_REL}"`, ' target="_blank"');
  return kept.join('');
}

const TEXT_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;' };
const ATTRIBUTE_ESCAPES: Record<string, string> = { ...TEXT_ESCAPES, '"': '&quot;' };

export function escapeText(text: string): string {
  return text.replace(/[&<>]/g, (c) => TEXT_ESCAPES[c]!).replace(NUL, '');
}

function escapeAttribute(value: string): string {
  return value.replace(/[&<>"]/g, (c) => ATTRIBUTE_ESCAPES[c]!).replace(NUL, '');
}
