// Parsing into stored fields, and the idempotency key a retry must reproduce.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import {
  idempotencyKey,
  MAX_MIME_PARTS,
  parseMessage,
  splitIds,
  storableDate,
  TooManyParts,
} from '../../src/mail/parse.js';
import { PROJECT_ROOT } from '../../src/paths.js';
import { MALFORMED_KINDS, malformedMessages } from '../helpers/malformed.js';

const message = (extra = '', body = 'Привет') =>
  Buffer.from(
    `${extra}From: "Иван" <IVAN@flamecrm.ru>\r\nTo: support+TKT-1@flamecrm.ru\r\nSubject: =?UTF-8?B?0J/RgNC40LLQtdGC?=\r\nDate: Thu, 26 Nov 2026 10:00:00 +0300\r\n` +
      `In-Reply-To: <a@x> <b@x>\r\nReferences: <r1@x>\r\n <r2@x>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${body}\r\n`,
  );

describe('parseMessage', () => {
  it('decodes headers and splits the threading ids', async () => {
    const p = await parseMessage(message());
    expect(p.from).toEqual([{ address: 'ivan@flamecrm.ru', name: 'Иван' }]);
    expect(p.subject).toBe('Привет');
    expect(p.text.trim()).toBe('Привет');
    expect(p.references).toEqual(['<r1@x>', '<r2@x>']);
    expect(p.inReplyTo).toContain('<a@x>');
    expect(p.messageId).toBeNull();
  });

  it('decodes windows-1251 and koi8-r bodies', async () => {
    const cp1251 = Buffer.concat([
      Buffer.from('From: a@b.ru\r\nContent-Type: text/plain; charset=windows-1251\r\n\r\n'),
      Buffer.from([0xcf, 0xf0, 0xe8, 0xe2, 0xe5, 0xf2]),
    ]);
    const koi8 = Buffer.concat([
      Buffer.from('From: a@b.ru\r\nContent-Type: text/plain; charset=koi8-r\r\n\r\n'),
      Buffer.from([0xf0, 0xd2, 0xc9, 0xd7, 0xc5, 0xd4]),
    ]);
    expect((await parseMessage(cp1251)).text.trim()).toBe('Привет');
    expect((await parseMessage(koi8)).text.trim()).toBe('Привет');
  });
});

describe('the Date header', () => {
  const dated = (date: string) =>
    Buffer.from(`From: a@b.ru\r\nTo: support+TKT-1@flamecrm.ru\r\nDate: ${date}\r\nSubject: x\r\n\r\nbody\r\n`);

  it.each([
    ['Wed, 02 Dec 20026 18:00:00 +0300'],
    ['Sat, 1 Jan 10000 00:00:00 +0000'],
    ['Fri, 31 Dec 9999 23:59:59 -1200'],
  ])('a year PostgreSQL would refuse from JSON (%s) is no date', async (date) => {
    const p = await parseMessage(dated(date));
    expect(p.date).toBeNull();
  });

  it('an ordinary date stays, and what is kept is what toISOString writes with four digits', async () => {
    const p = await parseMessage(dated('Wed, 02 Dec 2026 18:00:00 +0300'));
    expect(p.date?.toISOString()).toBe('2026-12-02T15:00:00.000Z');
    expect(storableDate(new Date(Date.UTC(9999, 11, 31, 11, 0)))?.toISOString()).toBe('9999-12-31T11:00:00.000Z');
    expect(storableDate(new Date(Date.UTC(10000, 0, 1)))).toBeNull();
    expect(storableDate(new Date(Number.NaN))).toBeNull();
  });
});

describe('idempotencyKey', () => {
  it('is the Message-ID and a hash of the content when there is one: a new Received line keeps it', async () => {
    const raw = message('Message-ID: <m1@x>\r\n');
    const key = idempotencyKey(raw, await parseMessage(raw));
    expect(key).toMatch(/^mid:<m1@x> sha256:[0-9a-f]{64}$/);
    const relayed = Buffer.concat([
      Buffer.from('Received: from relay by mx; Thu, 26 Nov 2026 10:00:05 +0300\r\n'),
      raw,
    ]);
    expect(idempotencyKey(relayed, await parseMessage(relayed))).toBe(key);
    const other = message('Message-ID: <m1@x>\r\n', 'Пока');
    expect(idempotencyKey(other, await parseMessage(other))).not.toBe(key);
  });

  it('hashes From, Date, Subject and body otherwise: a new Received line keeps it, a new body changes it', async () => {
    const a = message();
    const b = message('Received: from relay by mx; Thu, 26 Nov 2026 10:00:05 +0300\r\n');
    const c = message('', 'Пока');
    const [ka, kb, kc] = await Promise.all([a, b, c].map(async (raw) => idempotencyKey(raw, await parseMessage(raw))));
    expect(ka).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(kb).toBe(ka);
    expect(kc).not.toBe(ka);
  });
});

describe('splitIds', () => {
  it.each([
    [undefined, []],
    ['<a@x>', ['<a@x>']],
    ['<a@x> <b@x>', ['<a@x>', '<b@x>']],
    [
      ['<a@x>', '<b@x>'],
      ['<a@x>', '<b@x>'],
    ],
    ['garbage', []],
  ])('%j', (value, expected) => {
    expect(splitIds(value as string | string[] | undefined)).toEqual(expected);
  });
});

describe('parseMessage of a large message (fed to mailparser in 64 KiB pieces)', () => {
  it('gives the same text and attachments as the bytes decoded whole, whatever falls on a piece boundary', async () => {
    const file = crypto.randomBytes(3 * 1024 * 1024 + 12345);
    const base64 = file.toString('base64').replace(/.{76}/g, '$&\r\n');
    // a text part whose multi-byte characters straddle the pieces' ends, and a boundary line the 16th's
    const text = 'ё'.repeat(524_204);
    const raw = Buffer.from(
      'From: ivan@flamecrm.ru\r\nSubject: big\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n' +
        `--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${text}\r\n` +
        '--b\r\nContent-Type: application/octet-stream; name="f.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n' +
        `${base64}\r\n--b--\r\n`,
    );
    expect(raw.length).toBeGreaterThan(4 * 1024 * 1024);
    const p = await parseMessage(raw);
    expect(p.text.trim()).toBe(text);
    expect(p.attachments).toHaveLength(1);
    expect(Buffer.compare(p.attachments[0]!.content, file)).toBe(0);
    // decoded into one buffer of its size as it came (not pieces joined at the end, which hold it twice)
    const content = p.attachments[0]!.content;
    expect((content.buffer as ArrayBuffer).resizable).toBe(true);
    expect(content.buffer.byteLength).toBe(file.length);
  });
});

describe('parseMessage and mailparser’s simpleParser', () => {
  const eml = path.join(PROJECT_ROOT, 'fixtures', 'eml');
  const file = crypto.randomBytes(200_000);
  const messages: [string, Buffer][] = [
    ...fs
      .readdirSync(eml)
      .filter((f) => f.endsWith('.eml'))
      .map((f): [string, Buffer] => [f, fs.readFileSync(path.join(eml, f))]),
    [
      'two attachments, one of them empty, and an inline image',
      Buffer.from(
        'From: ivan@flamecrm.ru\r\nSubject: files\r\nContent-Type: multipart/related; boundary="b"\r\n\r\n' +
          '--b\r\nContent-Type: text/html\r\n\r\n<p>see <img src="cid:i@x"></p>\r\n' +
          '--b\r\nContent-Type: image/png\r\nContent-ID: <i@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n' +
          `${file.toString('base64').replace(/.{76}/g, '$&\r\n')}\r\n` +
          '--b\r\nContent-Type: application/pdf; name="empty.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n\r\n--b--\r\n',
      ),
    ],
  ];

  // what the pipeline reads of simpleParser's result, the attachments byte for byte; a refusal alike
  it.each([
    ...messages,
    ...malformedMessages(MALFORMED_KINDS.length * 2, 7).map((m): [string, Buffer] => [m.name, m.bytes]),
  ])('%s: the same fields, text, HTML and attachments', async (_name, raw) => {
    const [ours, theirs] = await Promise.all([
      parseMessage(raw).catch((e: Error) => e),
      simpleParser(raw, {
        maxHtmlLengthToParse: 2 * 1024 * 1024,
        skipHtmlToText: true,
        skipTextToHtml: true,
        skipTextLinks: true,
        skipImageLinks: true,
        keepCidLinks: true,
      }).catch((e: Error) => e),
    ]);
    if (theirs instanceof Error || ours instanceof Error) {
      // ours says it in our words (TooManyParts), the parser's are its cause
      const cause = (ours as Error).cause as Error | undefined;
      expect(cause?.message ?? (ours as Error).message).toBe((theirs as Error).message);
      return;
    }
    expect(ours.subject).toBe(theirs.subject ?? null);
    expect(ours.messageId).toBe(theirs.messageId ?? null);
    expect(ours.inReplyTo).toBe(theirs.inReplyTo ?? null);
    expect(ours.references).toEqual(splitIds(theirs.references));
    expect(ours.date?.getTime() ?? null).toBe(
      theirs.date && !Number.isNaN(theirs.date.getTime()) ? theirs.date.getTime() : null,
    );
    expect(ours.from.map((f) => f.address)).toEqual(
      (theirs.from?.value ?? [])
        .flatMap((a) => (a.group ? a.group : [a]))
        .flatMap((a) => (a.address ? [a.address.toLowerCase()] : [])),
    );
    expect([...ours.headers.keys()]).toEqual([...theirs.headers.keys()]);
    expect(ours.text).toBe(theirs.text ?? '');
    expect(ours.html).toBe(typeof theirs.html === 'string' ? theirs.html : null);
    const strip = ({ content, headers, ...rest }: (typeof theirs.attachments)[number]) => ({
      ...rest,
      content: content.toString('base64'),
      headers: [...headers.keys()],
    });
    expect(ours.attachments.map(strip)).toEqual(theirs.attachments.map(strip));
  });
});

describe('MIME parts past MAX_MIME_PARTS', () => {
  // the message and its multipart are two parts: `leaves` text parts inside make leaves + 1 in all
  const multipart = (leaves: number) =>
    Buffer.from(
      'From: a@b.ru\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="zz"\r\n\r\n' +
        '--zz\r\nContent-Type: text/plain\r\n\r\nmore\r\n'.repeat(leaves) +
        '--zz--\r\n',
    );

  it('takes 1000 parts and refuses 1001 as TooManyParts, not any parse error', async () => {
    expect(MAX_MIME_PARTS).toBe(1000);
    await expect(parseMessage(multipart(999))).resolves.toMatchObject({ attachments: [] });
    const err = await parseMessage(multipart(1000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TooManyParts);
    expect((err as TooManyParts).message).toBe('more than 1000 MIME parts');
    expect((err as TooManyParts).attachmentsSeen).toBe(0);
  });
});
