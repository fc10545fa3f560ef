// Malformed messages for robustness tests: broken MIME structure, broken encodings, oversized and
// 8-bit headers, absurd lines. Deterministic for a seed (random.ts).
import { mulberry32 } from './random.js';

export interface MalformedMessage {
  /** '<kind>#<n>'; the kind says what is wrong with it. */
  name: string;
  bytes: Buffer;
}

export const MALFORMED_KINDS = [
  'missing-boundary',
  'boundary-never-closed',
  'boundary-mismatch',
  'invalid-base64',
  'broken-quoted-printable',
  'unknown-charset',
  'invalid-charset',
  'huge-header-line',
  'many-header-lines',
  'oversized-header-block',
  'too-many-parts',
  'deep-multipart',
  'deep-html',
  'raw-utf8-headers',
  'raw-cp1251-headers',
  'nul-bytes',
  'absurd-line',
  'long-whitespace-line',
  'no-separator',
  'only-headers',
  'empty',
  'no-headers',
  'mixed-line-endings',
  'truncated-base64-attachment',
  'binary-garbage',
] as const;

export type MalformedKind = (typeof MALFORMED_KINDS)[number];

/** Kinds that leave out the From/To a valid message starts with. */
export const HEADERLESS_KINDS: ReadonlySet<MalformedKind> = new Set(['empty', 'no-headers', 'binary-garbage']);

const MAX_BYTES = 6 * 1024 * 1024;
const GARBAGE_BYTES = Array.from({ length: 256 }, (_, i) => i).filter((b) => b !== 0x0a && b !== 0x0d);

/** `count` messages, cycling through the kinds; the seed varies sizes, words and line endings. */
export function malformedMessages(count: number, seed = 1): MalformedMessage[] {
  const random = mulberry32(seed);
  const out: MalformedMessage[] = [];
  for (let i = 0; i < count; i++) {
    const kind = MALFORMED_KINDS[i % MALFORMED_KINDS.length]!;
    const bytes = build(kind, new Variation(random));
    if (bytes.length >= MAX_BYTES) throw new Error(`${kind} is ${bytes.length} bytes`);
    out.push({ name: `${kind}#${Math.floor(i / MALFORMED_KINDS.length) + 1}`, bytes });
  }
  return out;
}

const WORDS = [
  'Исправили',
  'проверьте',
  'письма',
  'заявка',
  'сервер',
  'fixed',
  'please',
  'check',
  'mail',
  'ticket',
  'спасибо',
  'thanks',
];
const CP1251: Record<string, number> = Object.fromEntries(
  Array.from('абвгдежзийклмнопрстуфхцчшщъыьэюяАБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ', (c, i) => [
    c,
    0xe0 + (i % 32) - (i >= 32 ? 0x20 : 0),
  ]),
);

class Variation {
  readonly eol: string;
  constructor(private readonly random: () => number) {
    this.eol = random() < 0.75 ? '\r\n' : '\n';
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.random() * (max - min + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)]!;
  }
  words(n: number): string {
    return Array.from({ length: n }, () => this.pick(WORDS)).join(' ');
  }
  /** Lines joined with this message's line ending. */
  lines(...lines: string[]): string {
    return lines.join(this.eol);
  }
}

function head(v: Variation, extra: string[] = []): string[] {
  return [
    `From: "${v.pick(['Иван', 'Ivan', 'Мария'])}" <admin${v.int(1, 99)}@example.ru>`,
    'To: support+TKT-1001@flamecrm.ru',
    `Subject: Re: [TKT-1001] ${v.words(3)}`,
    `Message-ID: <m${v.int(1, 1e9)}@example.ru>`,
    'Date: Thu, 26 Nov 2026 10:00:00 +0300',
    'MIME-Version: 1.0',
    ...extra,
  ];
}

function message(v: Variation, headers: string[], body: string): Buffer {
  return Buffer.from(v.lines(...headers, '', body));
}

function cp1251(s: string): Buffer {
  return Buffer.from(Array.from(s, (c) => CP1251[c] ?? (c.charCodeAt(0) < 0x80 ? c.charCodeAt(0) : 0x3f)));
}

function build(kind: MalformedKind, v: Variation): Buffer {
  const b = `b${v.int(1000, 9999)}`;
  const text = v.words(v.int(3, 12));
  switch (kind) {
    case 'missing-boundary':
      return message(
        v,
        head(v, ['Content-Type: multipart/mixed']),
        v.lines(`--${b}`, 'Content-Type: text/plain; charset=utf-8', '', text, `--${b}--`),
      );
    case 'boundary-never-closed':
      return message(
        v,
        head(v, [`Content-Type: multipart/mixed; boundary="${b}"`]),
        v.lines(
          `--${b}`,
          'Content-Type: text/plain; charset=utf-8',
          '',
          text,
          `--${b}`,
          'Content-Type: application/pdf; name="a.pdf"',
          'Content-Transfer-Encoding: base64',
          '',
          'JVBERi0xLjQK',
        ),
      );
    case 'boundary-mismatch':
      return message(
        v,
        head(v, [`Content-Type: multipart/alternative; boundary="${b}"`]),
        v.lines('--other', 'Content-Type: text/plain', '', text, '--other--'),
      );
    case 'invalid-base64':
      return message(
        v,
        head(v, ['Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: base64']),
        v.lines(
          `${Buffer.from(text).toString('base64').slice(0, -3)}!!*@#$%`,
          '====',
          '%%%%not base64 at all%%%%',
          'QUJD',
        ),
      );
    case 'broken-quoted-printable':
      return message(
        v,
        head(v, [
          'Content-Type: text/plain; charset=utf-8',
          `Content-Transfer-Encoding: ${v.pick(['quoted-printable', 'Quoted-Printable'])}`,
        ]),
        v.lines(`${text} =ZZ =D0=9F=D1=80=D0=B8 =D0`, '=XY=', 'trailing soft break =', '=', '=='.repeat(v.int(1, 50))),
      );
    case 'unknown-charset':
      return message(
        v,
        head(v, [`Content-Type: text/plain; charset=${v.pick(['x-unknown-charset', 'klingon-8', 'utf-9'])}`]),
        text,
      );
    case 'invalid-charset':
      return message(
        v,
        head(v, [
          'Content-Type: text/plain; charset="utf-8\\"; ;; =',
          `Subject: =?${v.pick(['bogus', '', 'utf-8*'])}?Q?=D0=9F?=`,
        ]),
        text,
      );
    case 'huge-header-line': {
      // One unfolded header line of about 200 KB, in a header the classifier or parser reads.
      const name = v.pick(['Subject', 'X-Loop', 'Auto-Submitted', 'References', 'X-Mailer', 'Content-Type']);
      const value =
        name === 'Content-Type'
          ? `text/plain; charset=utf-8; x=${'a'.repeat(200 * 1024)}`
          : name === 'References'
            ? `<${'r'.repeat(64)}@x> `.repeat(2900)
            : 'x'.repeat(v.int(195, 205) * 1024);
      return message(
        v,
        head(v, [`${name}: ${value}`, ...(name === 'Content-Type' ? [] : ['Content-Type: text/plain; charset=utf-8'])]),
        text,
      );
    }
    case 'many-header-lines':
      return message(
        v,
        head(v, [
          ...Array.from({ length: 10_000 + v.int(0, 100) }, (_, i) => `X-Header-${i}: ${v.words(2)}`),
          'Content-Type: text/plain; charset=utf-8',
        ]),
        text,
      );
    case 'oversized-header-block':
      // Past mailparser's maxHeadSize (1 MB per MIME node): simpleParser rejects the message.
      return message(
        v,
        head(
          v,
          Array.from({ length: 11 }, (_, i) => `X-Filler-${i}: ${'y'.repeat(100 * 1024)}`),
        ),
        text,
      );
    case 'too-many-parts': {
      // Past mailparser's maxChildNodes (1000): simpleParser rejects the message.
      const parts = Array.from({ length: 1000 + v.int(1, 100) }, (_, i) =>
        v.lines(`--${b}`, 'Content-Type: text/plain', '', `part ${i}`),
      );
      return message(v, head(v, [`Content-Type: multipart/mixed; boundary="${b}"`]), v.lines(...parts, `--${b}--`));
    }
    case 'deep-multipart': {
      const depth = 200 + v.int(0, 20);
      const open: string[] = [];
      const close: string[] = [];
      for (let d = 0; d < depth; d++) {
        open.push(`--${b}-${d}`, `Content-Type: multipart/mixed; boundary="${b}-${d + 1}"`, '');
        close.unshift(`--${b}-${d}--`);
      }
      return message(
        v,
        head(v, [`Content-Type: multipart/mixed; boundary="${b}-0"`]),
        v.lines(
          ...open,
          `--${b}-${depth}`,
          'Content-Type: text/plain; charset=utf-8',
          '',
          text,
          `--${b}-${depth}--`,
          ...close,
        ),
      );
    }
    case 'deep-html': {
      const depth = v.int(200_000, 240_000); // without a cap, htmlparser2 needs well over 10 s
      const tag = v.pick(['div', 'span', 'b', 'x-tag']);
      const html = `<${tag}>`.repeat(depth) + text + `</${tag}>`.repeat(v.int(0, 1) ? depth : 0);
      return message(v, head(v, ['Content-Type: text/html; charset=utf-8']), html);
    }
    case 'raw-utf8-headers':
      return Buffer.from(
        v.lines(
          `From: Иван Петров <иван@пример.рф>`,
          'To: support+TKT-1001@flamecrm.ru',
          `Subject: Re: [TKT-1001] ${v.words(4)}`,
          'Content-Type: text/plain',
          '',
          text,
        ),
      );
    case 'raw-cp1251-headers':
      return Buffer.concat([
        Buffer.from('From: '),
        cp1251('Иван Петров'),
        Buffer.from(' <ivan@example.ru>\r\nTo: support+TKT-1001@flamecrm.ru\r\nSubject: '),
        cp1251(`Re: [TKT-1001] ${v.words(3)}`),
        Buffer.from('\r\nContent-Type: text/plain; charset=windows-1251\r\n\r\n'),
        cp1251(text),
      ]);
    case 'nul-bytes':
      return message(
        v,
        head(v, [
          `X-Nul: a\u0000b`,
          v.pick(['Content-Type: text/plain; charset=utf-8', 'Content-Type: text/html; charset=utf-8']),
        ]),
        `${text}\u0000\u0000 <b>bold\u0000</b>\u0000${'\u0000'.repeat(v.int(1, 1000))}`,
      );
    case 'absurd-line':
      return message(
        v,
        head(v, [v.pick(['Content-Type: text/plain; charset=utf-8', 'Content-Type: text/html; charset=utf-8'])]),
        `${text} ${'a'.repeat(v.int(4_900_000, 5_000_000))}`,
      );
    case 'long-whitespace-line':
      // One line that is a long run of spaces ending in text: quadratic for regex trims like /\s+$/.
      return message(
        v,
        head(v, ['Content-Type: text/plain; charset=utf-8']),
        `${text}${v.eol}${' '.repeat(v.int(1_000_000, 2_000_000))}x`,
      );
    case 'no-separator':
      return Buffer.from(
        v.lines(
          ...head(v, ['Content-Type: text/plain; charset=utf-8']),
          text,
          'more body text without a blank line before it',
        ),
      );
    case 'only-headers':
      return Buffer.from(v.lines(...head(v, ['Content-Type: text/plain; charset=utf-8'])) + (v.int(0, 1) ? v.eol : ''));
    case 'empty':
      return Buffer.from(v.pick(['', '\r\n', '\r\n\r\n', '\n']));
    case 'no-headers':
      return Buffer.from(v.lines('', text, 'second line'));
    case 'mixed-line-endings':
      return Buffer.from(
        [
          'From: Ivan <ivan@example.ru>',
          'To: support+TKT-1001@flamecrm.ru',
          'Subject: Re: mixed',
          'Content-Type: text/plain; charset=utf-8',
        ].join(v.pick(['\r', '\n\r', '\r\r\n'])) +
          '\r\n\r\n' +
          [text, 'line two', 'line three'].join(v.pick(['\r', '\n\r', '\r\r\n', '\r\n\n'])),
      );
    case 'truncated-base64-attachment': {
      const pdf = Buffer.alloc(v.int(5_000, 50_000), 7).toString('base64').replace(/.{76}/g, `$&${v.eol}`);
      return message(
        v,
        head(v, [`Content-Type: multipart/mixed; boundary="${b}"`]),
        v.lines(
          `--${b}`,
          'Content-Type: text/plain; charset=utf-8',
          '',
          text,
          `--${b}`,
          'Content-Type: application/pdf',
          'Content-Disposition: attachment; filename="report.pdf"',
          'Content-Transfer-Encoding: base64',
          '',
          pdf.slice(0, Math.floor(pdf.length / 2) + v.int(1, 3)),
        ),
      );
    }
    case 'binary-garbage':
      // Random bytes without CR or LF: one unending, unparseable header line.
      return Buffer.from(Array.from({ length: v.int(1_000, 100_000) }, () => v.pick(GARBAGE_BYTES)));
  }
}
