// A forwarded message as data: who wrote it, when, its subject and its text, read from the block
// a client puts under the note (a separator, a header block or an attribution, then the text).
import type { Line } from '../html/text.js';
import {
  attribution,
  type Field,
  hasAddress,
  headerField,
  INVISIBLE_CHARS,
  inlineFields,
  isRuled,
  separator,
  visible,
} from './patterns.js';

export interface Forwarded {
  from: string | null;
  date: string | null;
  subject: string | null;
  to: string | null;
  text: string;
}

const QUOTE_PREFIX = /^[ \t]*>[ \t]?/;
/** The same prefix in the text as sent, where invisible characters may stand around it. */
const RAW_QUOTE_PREFIX = new RegExp(`^[ \\t${INVISIBLE_CHARS}]*>[ \\t]?`, 'u');
const MAX_HEADER_LINES = 12;

/** Reads the forwarded message from its first line (the separator, header or attribution) on. */
export function readForwarded(block: Line[]): Forwarded {
  // the fields are read without invisible characters; the forwarded text keeps them
  let raw = block.map((l) => l.text);
  let lines = raw.map(visible);
  const fields: Partial<Record<Field, string>> = {};
  let i = 0;
  const skipBlank = () => {
    while (i < lines.length && lines[i]!.trim() === '') i++;
  };

  skipBlank();
  const sep = separator(lines[i]?.trim() ?? '');
  if (sep) {
    for (const f of inlineFields(sep.rest)) fields[f.field] ??= f.value;
    i++;
  } else if (isRuled(lines[i] ?? '')) i++;
  // Apple Mail and MailMate quote the whole forward with "> ", often below an unquoted separator
  const rest = lines.slice(i);
  if (rest.some((l) => l.trim()) && rest.filter((l) => l.trim()).every((l) => QUOTE_PREFIX.test(l))) {
    lines = [...lines.slice(0, i), ...rest.map((l) => l.replace(QUOTE_PREFIX, ''))];
    raw = [...raw.slice(0, i), ...raw.slice(i).map((l) => l.replace(RAW_QUOTE_PREFIX, ''))];
  }
  skipBlank();
  if (separator(lines[i]?.trim() ?? '')) i++;
  skipBlank();
  // Mail.ru and Outlook for Mac put an attribution where others put a header block
  const first = lines[i]?.trim() ?? '';
  if (!headerField(first) && attribution(first)) {
    fields.from ??= addressOf(first) ?? undefined;
    i++;
  }
  skipBlank();
  // the header block: field lines, a long subject wrapped onto a line of its own
  let last = i;
  for (let j = i; j < lines.length && j < i + MAX_HEADER_LINES; j++) {
    const line = lines[j]!;
    const field = headerField(line);
    if (field) {
      fields[field.field] ??= field.value;
      last = j + 1;
      continue;
    }
    if (line.trim() === '' || j === i) break;
    // a continuation only when another field follows it
    if (!headerField(lines[j + 1] ?? '')) break;
    const previous = headerField(lines[j - 1]!);
    if (previous && fields[previous.field] === previous.value)
      fields[previous.field] = `${previous.value} ${line.trim()}`;
  }
  i = last;
  const body = raw.slice(i);
  return {
    from: clean(fields.from),
    date: clean(fields.date),
    subject: clean(fields.subject),
    to: clean(fields.to),
    text: dedent(body).trim(),
  };
}

const clean = (value: string | undefined) => {
  const v = value?.replace(/\s+/g, ' ').trim();
  return v ? v : null;
};

/** "On …, Ann <a@b> wrote:" → "Ann <a@b>" where it can be told, else the address. */
function addressOf(line: string): string | null {
  const m = /([^,]{0,80}?)\s*[<([]((?:mailto:)?[^<>()[\]\s]{1,255}@[^<>()[\]\s]{1,255})[>)\]]/.exec(line);
  if (m)
    return `${m[1]!.replace(/^.*\d{1,2}[:.]\d{2}\s*(?:[AP]M)?,?\s*/i, '').trim()} <${m[2]!.replace(/^mailto:/, '')}>`.trim();
  return hasAddress(line) ? (/\S+@\S+/.exec(line)?.[0] ?? null) : line.replace(/[:：]\s*$/, '').trim();
}

/** Outlook for Mac indents the forwarded text: take the common indentation away. */
function dedent(lines: string[]): string {
  const indents = lines.filter((l) => l.trim()).map((l) => /^[ \t]*/.exec(l)![0].length);
  const common = indents.reduce((a, b) => Math.min(a, b), indents[0] ?? 0);
  return lines
    .map((l) => l.slice(Math.min(common, /^[ \t]*/.exec(l)![0].length)).trimEnd())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n');
}
