// Attachment rows from real MIME through mailparser: decoded and made-safe file names, hashes,
// Content-IDs, which parts the HTML shows inline, and the count and size limits.
import crypto from 'node:crypto';
import { type ParsedMail, simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import {
  type AttachmentRow,
  attachmentRows,
  checkAttachmentLimits,
  cleanFilename,
} from '../../src/mail/attachments.js';

// The options src/mail/parse.ts passes to simpleParser; keep the two in step.
const PARSER_OPTIONS = {
  maxHtmlLengthToParse: 2 * 1024 * 1024,
  skipTextToHtml: true,
  skipTextLinks: true,
  skipImageLinks: true,
  keepCidLinks: true,
};

/** A multipart/mixed message with a short text part and the given parts, each a header block and a body. */
function withParts(...parts: Array<[headers: string[], body: string]>): Buffer {
  const lines = [
    'From: "Иван Петров" <ivan.petrov@example.ru>',
    'To: support+TKT-1001@flamecrm.ru',
    'Subject: Re: [TKT-1001] Отчёт',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="MIX"',
    '',
    '--MIX',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Отчёт во вложении.',
    ...parts.flatMap(([headers, body]) => ['--MIX', ...headers, '', body]),
    '--MIX--',
    '',
  ];
  return Buffer.from(lines.join('\r\n'));
}

async function parse(message: Buffer): Promise<ParsedMail> {
  return simpleParser(message, PARSER_OPTIONS);
}

async function rowsOf(message: Buffer): Promise<AttachmentRow[]> {
  const parsed = await parse(message);
  return attachmentRows(parsed.attachments, typeof parsed.html === 'string' ? parsed.html : null);
}

const cp1251Name = Buffer.from([0xee, 0xf2, 0xf7, 0xb8, 0xf2, 0x2e, 0x64, 0x6f, 0x63]).toString('base64'); // "отчёт.doc" in windows-1251

describe('file names', () => {
  const cases: Array<[string, string[], string | null]> = [
    [
      'RFC 2231 filename*=',
      [
        'Content-Type: application/pdf',
        "Content-Disposition: attachment; filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82.pdf",
      ],
      'отчёт.pdf',
    ],
    [
      'RFC 2047 encoded word in a quoted filename',
      ['Content-Type: application/pdf', 'Content-Disposition: attachment; filename="=?UTF-8?B?0L7RgtGH0ZHRgi5wZGY=?="'],
      'отчёт.pdf',
    ],
    [
      'RFC 2231 continuations name*0*=',
      [
        'Content-Type: application/pdf; name*0*=UTF-8\'\'%D0%BE%D1%82; name*1*=%D1%87%D1%91%D1%82; name*2=".pdf"',
        'Content-Disposition: attachment',
      ],
      'отчёт.pdf',
    ],
    [
      'RFC 2231 continuations filename*0*=',
      [
        'Content-Type: application/pdf',
        "Content-Disposition: attachment; filename*0*=UTF-8''%D0%BE%D1%82%D1%87; filename*1*=%D1%91%D1%82.pdf",
      ],
      'отчёт.pdf',
    ],
    [
      'windows-1251 encoded word',
      [
        'Content-Type: application/msword',
        `Content-Disposition: attachment; filename="=?windows-1251?B?${cp1251Name}?="`,
      ],
      'отчёт.doc',
    ],
    [
      'koi8-r encoded word in name=',
      ['Content-Type: application/msword; name="=?koi8-r?Q?=CF=D4=DE=A3=D4.doc?="'],
      'отчёт.doc',
    ],
    [
      'plain ASCII',
      ['Content-Type: application/pdf', 'Content-Disposition: attachment; filename="report.pdf"'],
      'report.pdf',
    ],
    [
      'Windows path traversal',
      ['Content-Type: application/octet-stream', 'Content-Disposition: attachment; filename="..\\\\..\\\\evil.exe"'],
      'evil.exe',
    ],
    [
      'Unix path',
      ['Content-Type: application/octet-stream', 'Content-Disposition: attachment; filename="/etc/passwd"'],
      'passwd',
    ],
    [
      'control and bidi-override characters',
      [
        'Content-Type: application/octet-stream',
        "Content-Disposition: attachment; filename*=UTF-8''inv%01oice%E2%80%AEfdp.exe",
      ],
      'invoicefdp.exe',
    ],
    ['only dots', ['Content-Type: application/octet-stream', 'Content-Disposition: attachment; filename=".."'], null],
    ['absent', ['Content-Type: application/pdf', 'Content-Disposition: attachment'], null],
  ];
  it.each(cases)('%s', async (_name, headers, expected) => {
    const [row] = await rowsOf(withParts([[...headers, 'Content-Transfer-Encoding: base64'], 'JVBERi0xLjQK']));
    expect(row!.filename).toBe(expected);
  });

  it('shortens an absurd name, keeping its extension', () => {
    const name = cleanFilename(`${'я'.repeat(1000)}.pdf`)!;
    expect(Array.from(name)).toHaveLength(255);
    expect(name.endsWith('я.pdf')).toBe(true);
  });
});

describe('content, hash and type', () => {
  it('stores the decoded bytes with their size and SHA-256, and a lower-case type', async () => {
    const bytes = crypto.randomBytes(3000);
    const [row] = await rowsOf(
      withParts([
        ['Content-Type: Application/PDF; name="a.pdf"', 'Content-Transfer-Encoding: base64'],
        bytes.toString('base64').replace(/.{76}/g, '$&\r\n'),
      ]),
    );
    expect(row!.content.equals(bytes)).toBe(true);
    expect(row!.size).toBe(3000);
    expect(row!.sha256.equals(crypto.createHash('sha256').update(bytes).digest())).toBe(true);
    expect(row!.contentType).toBe('application/pdf');
    expect(row!.inline).toBe(false);
    expect(row!.contentId).toBeNull();
  });

  it('keeps an empty attachment as a zero-byte row', async () => {
    const [row] = await rowsOf(
      withParts([['Content-Type: text/csv; name="empty.csv"', 'Content-Disposition: attachment'], '']),
    );
    expect(row).toMatchObject({ filename: 'empty.csv', size: 0, contentType: 'text/csv' });
  });
});

describe('inline images', () => {
  const related = (html: string, imageHeaders: string[]) =>
    Buffer.from(
      [
        'From: ivan.petrov@example.ru',
        'To: support+TKT-1001@flamecrm.ru',
        'Subject: Re: [TKT-1001]',
        'Content-Type: multipart/related; boundary="REL"',
        '',
        '--REL',
        'Content-Type: text/html; charset=utf-8',
        '',
        html,
        '--REL',
        ...imageHeaders,
        'Content-Transfer-Encoding: base64',
        '',
        'iVBORw0KGgo=',
        '--REL--',
        '',
      ].join('\r\n'),
    );

  it('an image the HTML links by cid: is inline, its Content-ID without brackets', async () => {
    const message = related('<p>См. <img src="cid:image001.png@01DB94A1.2B3C4D50"></p>', [
      'Content-Type: image/png; name="image001.png"',
      'Content-ID: <image001.png@01DB94A1.2B3C4D50>',
    ]);
    const [row] = await rowsOf(message);
    expect(row).toMatchObject({
      filename: 'image001.png',
      contentId: 'image001.png@01DB94A1.2B3C4D50',
      inline: true,
      contentType: 'image/png',
    });
  });

  it('matches a %-encoded cid: URL (RFC 2392)', async () => {
    const message = related('<img src="cid:part1%2Eabc@example.ru">', [
      'Content-Type: image/png',
      'Content-ID: <part1.abc@example.ru>',
    ]);
    expect((await rowsOf(message))[0]!.inline).toBe(true);
  });

  it('an image with a Content-ID that the HTML does not show is not inline', async () => {
    const message = related('<p>Без картинки</p>', ['Content-Type: image/png', 'Content-ID: <unused@x>']);
    expect((await rowsOf(message))[0]).toMatchObject({ contentId: 'unused@x', inline: false });
  });

  it('Content-Disposition: inline without a cid: link is a listed attachment (Apple Mail sends PDFs so)', async () => {
    const [row] = await rowsOf(
      withParts([
        [
          'Content-Type: application/pdf; name="scan.pdf"',
          'Content-Disposition: inline; filename="scan.pdf"',
          'Content-Transfer-Encoding: base64',
        ],
        'JVBERi0xLjQK',
      ]),
    );
    expect(row).toMatchObject({ filename: 'scan.pdf', inline: false });
  });

  it('without the HTML, mailparser\'s "related" decides', async () => {
    const parsed = await parse(related('<p>x</p>', ['Content-Type: image/png', 'Content-ID: <a@x>']));
    expect(attachmentRows(parsed.attachments)[0]!.inline).toBe(true);
  });

  it('the parser must keep cid: links: by default simpleParser inlines images as data: URLs', async () => {
    const message = related('<img src="cid:a@x">', ['Content-Type: image/png', 'Content-ID: <a@x>']);
    expect((await simpleParser(message)).html).toBe('<img src="data:image/png;base64,iVBORw0KGgo=">');
    expect((await simpleParser(message, { keepCidLinks: true })).html).toBe('<img src="cid:a@x">');
    // skipImageLinks alone has the same effect
    expect((await simpleParser(message, { skipImageLinks: true })).html).toBe('<img src="cid:a@x">');
  });
});

describe('checkAttachmentLimits', () => {
  const row = (size: number): AttachmentRow => ({
    filename: 'a',
    contentType: 'application/octet-stream',
    size,
    sha256: Buffer.alloc(32),
    contentId: null,
    inline: false,
    content: Buffer.alloc(0),
  });
  const limits = { maxCount: 3, maxTotalBytes: 1000 };
  const cases: Array<[string, AttachmentRow[], string | null]> = [
    ['none', [], null],
    ['at both limits', [row(400), row(300), row(300)], null],
    ['one too many', [row(1), row(1), row(1), row(1)], '4 attachments, more than the limit of 3'],
    [
      'one byte too many',
      [row(500), row(501)],
      'attachments of 1001 bytes in total, more than the limit of 1000 bytes',
    ],
  ];
  it.each(cases)('%s', (_name, rows, reason) => {
    expect(checkAttachmentLimits(rows, limits)).toEqual(reason === null ? { ok: true } : { ok: false, reason });
  });
});
