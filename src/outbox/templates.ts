// The notification templates: `templates/<language>/<event>.txt|.html`, overridden file by file from
// TEMPLATES_DIR. Loaded and checked once at start (an unknown placeholder stops the start); rendering
// is plain `{{name}}` substitution, each value but the text on one line (oneLine), HTML-escaped in the
// HTML part. The layout is templates/README.md.
import fs from 'node:fs';
import path from 'node:path';
import type { NotificationEvent } from './notify.js';

export const PLACEHOLDERS = [
  'ticketId',
  'ticketSubject',
  'requester',
  'replyAddress',
  'from',
  'author',
  'subject',
  'text',
] as const;
export type TemplateValues = Record<(typeof PLACEHOLDERS)[number], string>;

const FILES: Record<NotificationEvent, string> = {
  ticket_created: 'ticket-created',
  requester_reply: 'requester-reply',
  stranger_reply: 'stranger-reply',
  staff_reply: 'staff-reply',
};

interface Template {
  subject: string;
  fromName: string | null;
  text: string;
  html: string;
}

export type Templates = Record<NotificationEvent, Template>;

export interface RenderedMail {
  subject: string;
  fromName: string | null;
  text: string;
  html: string;
}

export class TemplateError extends Error {
  override name = 'TemplateError';
}

const PLACEHOLDER_RE = /\{\{\s*([A-Za-z]+)\s*\}\}/g;

/** Reads every template of one language; a file missing from `override` comes from `builtIn`. */
export function loadTemplates(o: { builtIn: string; override: string | null; language: string }): Templates {
  const read = (file: string): { text: string; from: string } => {
    for (const dir of o.override ? [o.override, o.builtIn] : [o.builtIn]) {
      const full = path.join(dir, o.language, file);
      if (fs.existsSync(full)) return { text: fs.readFileSync(full, 'utf8'), from: full };
    }
    throw new TemplateError(`template ${o.language}/${file} not found in ${o.override ?? o.builtIn}`);
  };
  const templates = {} as Templates;
  for (const [event, name] of Object.entries(FILES) as [NotificationEvent, string][]) {
    const txt = read(`${name}.txt`);
    const html = read(`${name}.html`);
    const { headers, body } = splitHeaders(txt.text);
    const subject = headers.get('subject');
    if (!subject) throw new TemplateError(`${txt.from}: starts with no "Subject:" line`);
    for (const [file, text] of [
      [txt.from, txt.text],
      [html.from, html.text],
    ] as const)
      for (const [, key] of text.matchAll(PLACEHOLDER_RE))
        if (!(PLACEHOLDERS as readonly string[]).includes(key!))
          throw new TemplateError(`${file}: unknown placeholder {{${key}}} (known: ${PLACEHOLDERS.join(', ')})`);
    templates[event] = { subject, fromName: headers.get('from-name') ?? null, text: body, html: html.text };
  }
  return templates;
}

/** `Subject: …` and `From-Name: …` lines up to the first empty line, then the text part. */
function splitHeaders(source: string): { headers: Map<string, string>; body: string } {
  const text = source.replace(/\r\n/g, '\n');
  const end = text.indexOf('\n\n');
  const head = end < 0 ? text : text.slice(0, end);
  const headers = new Map<string, string>();
  for (const line of head.split('\n')) {
    const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
    if (!m) return { headers: new Map(), body: text };
    headers.set(m[1]!.toLowerCase(), m[2]!.trim());
  }
  return { headers, body: end < 0 ? '' : text.slice(end + 2) };
}

export const escapeHtml = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

/**
 * A value from mail or the CRM as one line, for a header or a one-line place of a template: CR, LF,
 * tabs, the other C0 and C1 controls and Unicode's line and paragraph separators become a space,
 * runs of spaces one, the ends trimmed. nodemailer folds and encodes header values, but a break
 * it keeps (as a space, or in an encoded-word) still shows the customer two lines where we wrote one.
 */
export const oneLine = (s: string): string => s.replace(/[\s\p{Cc}]+/gu, ' ').trim();

/** `{{text}}` keeps its lines; every other value stands in a line of the template, header or text. */
const MULTILINE: ReadonlySet<string> = new Set(['text']);

function fill(template: string, values: TemplateValues, encode: (s: string) => string): string {
  return template.replace(PLACEHOLDER_RE, (_, key: keyof TemplateValues) => {
    const value = values[key] ?? '';
    return encode(MULTILINE.has(key) ? value : oneLine(value));
  });
}

export function renderMail(template: Template, values: TemplateValues): RenderedMail {
  return {
    subject: oneLine(fill(template.subject, values, oneLine)),
    fromName: template.fromName && oneLine(fill(template.fromName, values, oneLine)),
    text: fill(template.text, values, (s) => s),
    html: `<!doctype html>\n<html><head><meta charset="utf-8"></head><body>\n${fill(template.html, values, escapeHtml)}</body></html>\n`,
  };
}
