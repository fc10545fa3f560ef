// Parsing into stored fields, and the idempotency key a retry must reproduce.
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { idempotencyKey, parseMessage, splitIds } from '../../src/mail/parse.js';

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

describe('idempotencyKey', () => {
  it('is the Message-ID when there is one', async () => {
    const raw = message('Message-ID: <m1@x>\r\n');
    expect(idempotencyKey(raw, await parseMessage(raw))).toBe('mid:<m1@x>');
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

describe('parseMessage of a large message (fed to mailparser in 1 MiB pieces)', () => {
  it('gives the same text and attachments as the bytes decoded whole, whatever falls on a piece boundary', async () => {
    const file = crypto.randomBytes(3 * 1024 * 1024 + 12345);
    const base64 = file.toString('base64').replace(/.{76}/g, '$&\r\n');
    // a text part whose multi-byte characters and a boundary line straddle the first piece's end
    const text = 'ё'.repeat(524_280);
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
  });
});
