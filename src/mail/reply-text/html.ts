// The HTML rules: which elements clients use to hold the quoted original, the attribution, the
// signature (Gmail, Outlook desktop and web, Apple Mail, Thunderbird, Yahoo, Yandex, Mail.ru).
// The tree and its layout as lines are html/'s; what to cut is decided by the text rules.

import { type Line, layoutLines, type Role } from '../html/text.js';
import { type Document, type Element, isTag, leadingText } from '../html/tree.js';
import { headerField, visible } from './patterns.js';

export function htmlLines(doc: Document): Line[] {
  return layoutLines(doc, classify);
}

const CUT_ID = /(?:^|_)(?:divRplyFwdMsg|appendonsend|mail-editor-reference-message-container)$/;
const SIGNATURE_ID = /(?:^|_)(?:ms-outlook-mobile-signature|Signature)$/;
const QUOTE_CLASSES = new Set([
  'gmail_attr',
  'gmail_signature',
  'gmail_signature_prefix',
  'moz-cite-prefix',
  'moz-signature',
  'moz-forward-container',
  'mail-quote-collapse',
  'js-readmsg-msg',
  'yahoo_quoted',
]);
const GMAIL_QUOTE_CLASSES = new Set(['gmail_quote', 'gmail_quote_container']);
function classify(el: Element): Role {
  const id = el.attribs.id ?? '';
  if (CUT_ID.test(id)) return 'cut';
  if (SIGNATURE_ID.test(id) || el.attribs['data-signature-widget'] === 'container') return 'quote';
  const classes = (el.attribs.class ?? '').split(/\s+/);
  if (classes.some((c) => GMAIL_QUOTE_CLASSES.has(c))) {
    // Answering inline in Gmail splits the quote into several blockquotes inside one container.
    return el.name === 'blockquote' || !answersBetweenQuotes(el) ? 'quote' : null;
  }
  if (classes.some((c) => QUOTE_CLASSES.has(c))) return 'quote';
  const style = el.attribs.style ?? '';
  if (el.name === 'blockquote') {
    if (el.attribs.type?.toLowerCase() === 'cite') return 'quote';
    if (classes.some((c) => /quote/i.test(c)) || hasLeftBorder(style)) return 'quote';
    // Gmail, Apple Mail and Thunderbird also indent with a bare blockquote.
    return 'maybe';
  }
  // Outlook's header block under a rule: "From:" in any language of the table
  if (
    el.name === 'div' &&
    /border-top\s*:\s*solid/i.test(style) &&
    headerField(visible(leadingText(el, 24)))?.field === 'from'
  )
    return 'cut';
  return null;
}

/** A `border-left: … solid …` declaration; split first, so that no pattern runs over the whole attribute. */
function hasLeftBorder(style: string): boolean {
  return style.split(';').some((d) => {
    const colon = d.indexOf(':');
    if (colon < 0 || d.slice(0, colon).trim().toLowerCase() !== 'border-left') return false;
    const value = d.slice(colon + 1).toLowerCase();
    return !/^\s*none\b/.test(value) && /\bsolid\b/.test(value);
  });
}

function answersBetweenQuotes(container: Element): boolean {
  let seenQuote = false;
  for (const child of container.children) {
    if (isTag(child) && child.name === 'blockquote') {
      seenQuote = true;
      continue;
    }
    if (seenQuote && leadingText(child, 1) !== '') return true;
  }
  return false;
}
