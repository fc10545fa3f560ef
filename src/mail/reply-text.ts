// The answer a person typed, cut out of a reply: quoted notification, attribution line, signature
// and mobile footer go to `removed`. Decoding MIME is parse.ts's job; nothing here does I/O.
import sanitizeHtml from 'sanitize-html';
import { decodeEntities, tooComplexHtml } from './html.js';
import { htmlToText } from './sanitize.js';

export interface ReplyInput {
  text?: string | null;
  html?: string | null;
}

export interface ReplyText {
  reply: string;
  removed: string;
  /** Which body the reply was taken from; 'none' when the message has no text at all. */
  method: 'html' | 'text' | 'none';
}

export function extractReply(input: ReplyInput): ReplyText {
  const html = input.html ?? '';
  // HTML too big or deep to parse still has text: a linear strip of its tags
  const text = input.text || (html && tooComplexHtml(html) ? htmlToText(html) : '');
  const fromText = text.trim() ? splitReply(textLines(text)) : null;
  if (html.trim() && !tooComplexHtml(html)) {
    const fromHtml = splitReply(htmlLines(html));
    // The HTML markers are the better evidence, unless they found no answer at all, or found no
    // quote where the text part did (a client whose HTML quoting we do not know).
    const textKnowsBetter = fromText && (fromHtml.reply === '' || (fromHtml.removed === '' && fromText.removed !== ''));
    if (!textKnowsBetter) return { ...fromHtml, method: 'html' };
  }
  if (fromText) return { ...fromText, method: 'text' };
  return { reply: '', removed: '', method: 'none' };
}

// ---------------------------------------------------------------------------------------------
// Lines. Both bodies become lines; the HTML ones already know whether markup put them in a quote.

/** 'maybe': inside a plain <blockquote>, a quote only if an attribution line introduces it. */
type Origin = 'own' | 'quote' | 'maybe';

interface Line {
  text: string;
  origin: Origin;
}

function textLines(text: string): Line[] {
  return text.split(/\r\n|\r|\n/).map((line) => ({ text: line, origin: 'own' }));
}

const QUOTE_PREFIX = /^[ \t]*>/;
const MAX_ATTRIBUTION_LENGTH = 1000;
const TIME = /\b\d{1,2}:\d{2}\b/;
const WROTE_END = /(?:wrote|writes|написал\(а\)|написала|написал|пишет)\s*:$/i;
// One address, <a@b> or a@b.tld; '@' is outside every class so the match cannot backtrack.
const ADDRESS_TOKEN = /^(?:<[^<>\s@]{1,64}@[^<>\s@]{1,255}>|[^\s<>"@]{1,64}@[^\s<>"@:]{1,255}\.[^\s<>":@.]{2,63})$/;
// A wrapped attribution starts like one: "On …", a date, a weekday ("пт,", "Friday,") or Gmail's old "пользователь".
const ATTRIBUTION_START = /^(?:On\s|\d|пользователь|[A-Za-zА-Яа-яЁё]{2,12}\.?,\s)/i;
const FROM_LINE = /^\*?(?:From|От|Von|De|Från|Od)\s*:\*?\s*\S/i;
const SENT_LINE = /^\*?(?:Sent|Date|Отправлено|Дата|Gesendet|Envoyé)\s*:/i;
const TO_LINE = /^\*?(?:To|Subject|Кому|Тема|An|Betreff|À|Objet)\s*:/i;
const ORIGINAL_SEPARATOR =
  /^[-–—_=*\s]*(?:Original Message|Forwarded message|Исходное сообщение|Оригинальное сообщение|Пересылаемое сообщение|Переадресованное сообщение)[-–—_=*\s]*$/i;
const RULE = /^(?:_{10,}|-{10,})$/;
const SIGNATURE_DELIMITER = /^--\s*$/;
/** A signature is short; a longer tail after "--" is more likely text the person meant to send. */
const MAX_SIGNATURE_LINES = 12;
const FOOTER_SENT =
  /^(?:Sent|Отправлено|Послано|Gesendet|Envoyé|Enviado)\s+(?:from|with|via|using|on|с|со|из|через|von|de|desde)\s/i;
const FOOTER_APP =
  /iPhone|iPad|iPod|Android|BlackBerry|Samsung|Galaxy|Huawei|Honor|Xiaomi|Redmi|Pixel|mobile|мобильн|смартфон|телефон|планшет|Mail\.ru|Яндекс|Yandex|Outlook|Почт|Mail for|Gmail|Yahoo|Proton|Spark|BlueMail|Aqua Mail|myMail/i;
const FOOTER_GET_APP = /^(?:Get|Получить|Скачайте|Загрузите)\s+Outlook\s+(?:for|для)\s/i;

function isAttribution(s: string): boolean {
  if (s.length < 8 || s.length > 300) return false;
  if (WROTE_END.test(s)) return /^On\s/i.test(s) || TIME.test(s) || s.includes('@') || /пользователь/i.test(s);
  return TIME.test(s) && endsWithAddress(s);
}

/** "… <a@b>:" — the last word before the closing colon is an address. */
function endsWithAddress(s: string): boolean {
  if (!s.endsWith(':')) return false;
  const words = s.slice(0, -1).trimEnd().split(/\s/);
  return ADDRESS_TOKEN.test(words[words.length - 1]!);
}

function isFooter(s: string): boolean {
  const line = s.trim();
  if (line.length > 120) return false;
  return (FOOTER_SENT.test(line) && FOOTER_APP.test(line)) || FOOTER_GET_APP.test(line);
}

// ---------------------------------------------------------------------------------------------
// Splitting. Everything that follows is shared by both bodies.

function splitReply(source: Line[]): { reply: string; removed: string } {
  const lines = source.map((l) => ({ text: l.text.trimEnd(), origin: l.origin }));
  const n = lines.length;
  const removed = new Array<boolean>(n).fill(false);
  const at = (i: number): Line => lines[i]!;
  const blank = (i: number): boolean => at(i).text.trim() === '';
  const quoted = (i: number): boolean => at(i).origin === 'quote' || QUOTE_PREFIX.test(at(i).text);
  const nextNonBlank = (from: number): number => {
    for (let j = from; j < n; j++) if (!blank(j)) return j;
    return -1;
  };
  const cutFrom = (i: number): void => {
    for (let j = i; j < n; j++) if (!blank(j)) removed[j] = true;
  };

  const attributionSpan = (i: number): number => {
    for (let k = 1; k <= 3 && i + k <= n; k++) {
      const last = i + k - 1;
      if (k > 1) {
        if (blank(last) || quoted(last) || at(last).origin !== at(i).origin) return 0;
        if (!ATTRIBUTION_START.test(at(i).text.trim())) return 0;
        // "Text.\nOn … wrote:" is a sentence followed by an attribution, not one wrapped line.
        if (isAttribution(at(last).text.trim())) return 0;
      }
      const parts = lines.slice(i, last + 1).map((l) => l.text.trim());
      // an attribution is one short sentence; a long line is text, and regexes over it cost
      if (parts.reduce((sum, p) => sum + p.length, 0) > MAX_ATTRIBUTION_LENGTH) return 0;
      // (?<!\s) starts a match only at the first blank of a run: linear, not quadratic, in long runs
      const joined = parts
        .join(' ')
        .replace(/<\s+/g, '<')
        .replace(/(?<!\s)\s+>/g, '>');
      if (isAttribution(joined)) return k;
    }
    return 0;
  };

  const headerBlockAt = (i: number): boolean => {
    if (!FROM_LINE.test(at(i).text.trim())) return false;
    let sent = false;
    let to = false;
    for (let j = i + 1; j < n && j <= i + 6 && !blank(j); j++) {
      const t = at(j).text.trim();
      sent ||= SENT_LINE.test(t);
      to ||= TO_LINE.test(t);
    }
    return sent && to;
  };

  // Once an attribution has shown that this client quotes with a bare <blockquote>, the later
  // ones are quotes too: answering inline splits one quote into several.
  let bareBlockquoteQuotes = false;
  for (let i = 0; i < n; i++) {
    if (blank(i)) continue;
    if (quoted(i) || (bareBlockquoteQuotes && at(i).origin === 'maybe')) {
      removed[i] = true;
      continue;
    }
    if (at(i).origin === 'maybe') continue;
    const t = at(i).text.trim();
    if (ORIGINAL_SEPARATOR.test(t) || headerBlockAt(i)) {
      cutFrom(i);
      break;
    }
    if (RULE.test(t)) {
      const next = nextNonBlank(i + 1);
      if (next >= 0 && headerBlockAt(next)) {
        cutFrom(i);
        break;
      }
    }
    const span = attributionSpan(i);
    if (span === 0) continue;
    const next = nextNonBlank(i + span);
    if (next >= 0 && !quoted(next) && at(next).origin !== 'maybe') {
      // An attribution over unquoted text: the client pasted the original below it as is.
      cutFrom(i);
      break;
    }
    for (let j = i; j < i + span; j++) removed[j] = true;
    if (next >= 0 && at(next).origin === 'maybe') bareBlockquoteQuotes = true;
    i += span - 1;
  }

  // Signature and footer sit at the end of what is left, in either order, possibly both; a few
  // rounds are enough for real mail and keep a message of a thousand footers linear.
  for (let round = 0; round < 4; round++) {
    let last = -1;
    for (let i = n - 1; i >= 0; i--) {
      if (!removed[i] && !blank(i)) {
        last = i;
        break;
      }
    }
    if (last < 0) break;
    if (isFooter(at(last).text)) {
      removed[last] = true;
      continue;
    }
    let delimiter = -1;
    for (let i = last; i >= 0; i--) {
      if (!removed[i] && SIGNATURE_DELIMITER.test(at(i).text)) {
        delimiter = i;
        break;
      }
    }
    if (delimiter < 0) break;
    const tail: number[] = [];
    for (let i = delimiter; i <= last; i++) if (!removed[i] && !blank(i)) tail.push(i);
    if (tail.length > MAX_SIGNATURE_LINES + 1) break;
    for (const i of tail) removed[i] = true;
  }

  return {
    reply: render(lines, (i) => !removed[i]),
    removed: render(lines, (i) => removed[i]!),
  };
}

/**
 * Joins the chosen lines. Where lines were left out between two chosen ones, exactly one blank
 * line marks the seam; elsewhere runs of three or more blank lines collapse to one.
 */
function render(lines: Line[], chosen: (i: number) => boolean): string {
  const out: string[] = [];
  let blanks = 0;
  let seam = false;
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!.text;
    if (text.trim() === '') {
      blanks++;
      continue;
    }
    if (!chosen(i)) {
      seam = true;
      continue;
    }
    if (out.length > 0) {
      const gap = seam ? 1 : blanks >= 3 ? 1 : blanks;
      for (let g = 0; g < gap; g++) out.push('');
    }
    out.push(text);
    blanks = 0;
    seam = false;
  }
  return out.join('\n').trim();
}

// ---------------------------------------------------------------------------------------------
// HTML. sanitize-html (already a dependency) turns whatever the client wrote into balanced,
// comment- and script-free markup; the small tree below is built from that and walked once.

const BLOCK_TAGS = new Set([
  'address',
  'article',
  'aside',
  'blockquote',
  'caption',
  'center',
  'dd',
  'details',
  'dir',
  'div',
  'dl',
  'dt',
  'fieldset',
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
  'menu',
  'nav',
  'ol',
  'p',
  'pre',
  'section',
  'summary',
  'table',
  'tbody',
  'tfoot',
  'thead',
  'tr',
  'ul',
]);
const INLINE_TAGS = [
  'a',
  'abbr',
  'b',
  'bdi',
  'bdo',
  'big',
  'br',
  'cite',
  'code',
  'del',
  'dfn',
  'em',
  'font',
  'i',
  'ins',
  'kbd',
  'mark',
  'q',
  's',
  'samp',
  'small',
  'span',
  'strike',
  'strong',
  'sub',
  'sup',
  'td',
  'th',
  'time',
  'tt',
  'u',
  'var',
];
const VOID_TAGS = new Set(['br', 'hr']);
const PARAGRAPH_TAGS = new Set(['p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'table']);

const SANITIZE_OPTIONS: sanitizeHtml.IOptions = {
  allowedTags: [...BLOCK_TAGS, ...INLINE_TAGS],
  allowedAttributes: { '*': ['class', 'id', 'style', 'type', 'data-signature-widget'] },
  parseStyleAttributes: false,
  nonTextTags: ['script', 'style', 'textarea', 'option', 'noscript', 'title', 'head', 'template', 'xml'],
};

interface Element {
  tag: string;
  attrs: Map<string, string>;
  children: Node[];
}
type Node = Element | string;

/** Deeper markup is flattened into its ancestor, so that hostile nesting cannot exhaust the stack. */
const MAX_DEPTH = 200;

function parseHtml(html: string): Element {
  const clean = sanitizeHtml(html, SANITIZE_OPTIONS);
  const root: Element = { tag: '#root', attrs: new Map(), children: [] };
  const stack: Element[] = [root];
  const token = /<(\/?)([a-z][a-z0-9:-]*)([^>]*)>|([^<]+)/gi;
  for (const m of clean.matchAll(token)) {
    const parent = stack[stack.length - 1]!;
    if (m[4] !== undefined) {
      parent.children.push(decodeEntities(m[4]));
      continue;
    }
    const tag = m[2]!.toLowerCase();
    if (m[1]) {
      const open = stack.findLastIndex((e) => e.tag === tag);
      if (open > 0) stack.length = open;
      continue;
    }
    const attrs = new Map<string, string>();
    for (const a of m[3]!.matchAll(/([^\s=/]+)(?:="([^"]*)")?/g))
      attrs.set(a[1]!.toLowerCase(), decodeEntities(a[2] ?? ''));
    const element: Element = { tag, attrs, children: [] };
    parent.children.push(element);
    if (!VOID_TAGS.has(tag) && !m[3]!.endsWith('/') && stack.length < MAX_DEPTH) stack.push(element);
  }
  return root;
}

/** A `border-left: … solid …` declaration; split first, so that no regex runs over the whole attribute. */
function hasLeftBorder(style: string): boolean {
  return style.split(';').some((d) => {
    const colon = d.indexOf(':');
    if (colon < 0 || d.slice(0, colon).trim().toLowerCase() !== 'border-left') return false;
    const value = d.slice(colon + 1).toLowerCase();
    return !/^\s*none\b/.test(value) && /\bsolid\b/.test(value);
  });
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
const OUTLOOK_HEADER = /^(?:From|От|Von|De|Från|Od)\s*:/i;

/** 'cut': the original message starts here and runs to the end of the document. */
function classify(el: Element): 'quote' | 'maybe' | 'cut' | null {
  const id = el.attrs.get('id') ?? '';
  if (CUT_ID.test(id)) return 'cut';
  if (SIGNATURE_ID.test(id) || el.attrs.get('data-signature-widget') === 'container') return 'quote';
  const classes = (el.attrs.get('class') ?? '').split(/\s+/);
  if (classes.some((c) => GMAIL_QUOTE_CLASSES.has(c))) {
    // Answering inline in Gmail splits the quote into several blockquotes inside one container.
    return el.tag === 'blockquote' || !answersBetweenQuotes(el) ? 'quote' : null;
  }
  if (classes.some((c) => QUOTE_CLASSES.has(c))) return 'quote';
  const style = el.attrs.get('style') ?? '';
  if (el.tag === 'blockquote') {
    if (el.attrs.get('type')?.toLowerCase() === 'cite') return 'quote';
    if (classes.some((c) => /quote/i.test(c)) || hasLeftBorder(style)) return 'quote';
    // Gmail, Apple Mail and Thunderbird also indent with a bare blockquote.
    return 'maybe';
  }
  if (el.tag === 'div' && /border-top\s*:\s*solid/i.test(style) && OUTLOOK_HEADER.test(leadingText(el, 12)))
    return 'cut';
  return null;
}

function answersBetweenQuotes(container: Element): boolean {
  let seenQuote = false;
  for (const child of container.children) {
    if (typeof child !== 'string' && child.tag === 'blockquote') {
      seenQuote = true;
      continue;
    }
    if (seenQuote && leadingText(child, 1) !== '') return true;
  }
  return false;
}

/** The first `limit` characters of a node's text, leading whitespace skipped; stops reading early. */
function leadingText(node: Node, limit: number): string {
  let out = '';
  const visit = (n: Node): boolean => {
    if (typeof n === 'string') {
      out += out === '' ? n.trimStart() : n;
      return out.length >= limit;
    }
    return n.children.some(visit);
  };
  visit(node);
  return out.slice(0, limit);
}

/** Lays text out the way a mail client shows it: blocks on their own lines, <br> breaks a line. */
class LineSink {
  readonly lines: Line[] = [];
  private current = '';
  private origins = new Set<Origin>();
  private breaks = 0;
  private started = false;

  newline(): void {
    this.lines.push({ text: this.current.replace(/\u00a0/g, ' '), origin: lineOrigin(this.origins) });
    this.current = '';
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
      raw.split('\n').forEach((piece, k) => {
        if (k > 0) this.newline();
        this.append(piece, origin);
      });
      return;
    }
    let s = raw.replace(/[ \t\n\r\f]+/g, ' ');
    if (this.current === '' || this.current.endsWith(' ')) s = s.replace(/^ /, '');
    this.append(s, origin);
  }

  private append(s: string, origin: Origin): void {
    if (s === '') return;
    this.current += s;
    // A non-breaking space is content: <div>&nbsp;</div> is how many clients write an empty line.
    if (/[^ \t\n\r\f]/.test(s)) {
      this.origins.add(origin);
      this.breaks = 0;
      this.started = true;
    }
  }

  finish(): Line[] {
    if (this.current !== '') this.newline();
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

function htmlLines(html: string): Line[] {
  const sink = new LineSink();
  let cutting = false;

  const walk = (node: Node, origin: Origin, pre: boolean, list: { ordered: boolean; n: number } | null): void => {
    if (typeof node === 'string') {
      sink.write(node, cutting ? 'quote' : origin, pre);
      return;
    }
    if (node.tag === 'br') {
      sink.newline();
      return;
    }
    const role = classify(node);
    if (role === 'cut') cutting = true;
    const inner: Origin = role === 'quote' ? 'quote' : role === 'maybe' && origin === 'own' ? 'maybe' : origin;
    const block = BLOCK_TAGS.has(node.tag);
    const spacing = PARAGRAPH_TAGS.has(node.tag) && !/\bMso/.test(node.attrs.get('class') ?? '') ? 2 : 1;
    if (block) sink.ensureBreaks(spacing);
    if (node.tag === 'li' && list) {
      list.n++;
      sink.write(list.ordered ? `${list.n}. ` : '- ', cutting ? 'quote' : inner, false);
    }
    // Cells of a row share a line; a space at the start of a line is dropped anyway.
    if (node.tag === 'td' || node.tag === 'th') sink.write(' ', inner, false);
    const childList = node.tag === 'ul' || node.tag === 'ol' ? { ordered: node.tag === 'ol', n: 0 } : list;
    for (const child of node.children) walk(child, inner, pre || node.tag === 'pre', childList);
    if (block) sink.ensureBreaks(spacing);
  };

  walk(parseHtml(html), 'own', false, null);
  return sink.finish();
}
