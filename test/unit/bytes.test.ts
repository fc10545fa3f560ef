// Byte-level checks before any parser (src/mail/bytes.ts): the header block bounded in bytes and
// lines, single-instance fields, CRLF only however the message is cut into chunks.

import { describe, expect, it } from 'vitest';
import {
  bodyOffset,
  CONTROL_SAMPLE_STRIDE,
  colonEndedLines,
  emptyHeaderShape,
  inspectHeader,
  LineEndings,
  SINGLE_INSTANCE_FIELDS,
  TAG_COUNT_CAP,
} from '../../src/mail/bytes.js';
import { parseMessage } from '../../src/mail/parse.js';

const limits = { maxBytes: 256 * 1024, maxLines: 1000 };
const msg = (head: string, body = 'body\r\n') => Buffer.from(`${head}\r\n${body}`, 'latin1');

describe('inspectHeader', () => {
  it('passes an ordinary header block, folded lines and all', () => {
    expect(
      inspectHeader(msg('From: a@b.ru\r\nSubject: a\r\n  folded\r\nReceived: x\r\nReceived: y\r\n'), limits),
    ).toBeNull();
  });

  it('stops at the line limit on the folded header of issue 9 (100,000 lines of "\\r\\n b")', () => {
    const raw = msg(`From: a@b.ru\r\nX-Fold: a${'\r\n b'.repeat(100_000)}\r\n`);
    const started = performance.now();
    expect(inspectHeader(raw, limits)).toEqual({ kind: 'header-limit', what: 'lines', limit: 1000 });
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('stops at the byte limit, and counts only the header block', () => {
    expect(inspectHeader(msg(`X-Long: ${'b'.repeat(300_000)}\r\n`), limits)).toEqual({
      kind: 'header-limit',
      what: 'bytes',
      limit: 262144,
    });
    expect(inspectHeader(msg('From: a@b.ru\r\n', `${'x'.repeat(998)}\r\n`.repeat(1000)), limits)).toBeNull();
  });

  it.each([...SINGLE_INSTANCE_FIELDS])('refuses a second %s, whatever its case and spacing', (field) => {
    expect(inspectHeader(msg(`${field}: one\r\nX-Other: x\r\n${field.toUpperCase()} : two\r\n`), limits)).toEqual({
      kind: 'duplicate-header',
      field,
      count: 2,
    });
  });

  it('does not count a name inside a folded line or in the body', () => {
    expect(inspectHeader(msg('Subject: a\r\n Subject: b\r\n', 'Subject: c\r\n'), limits)).toBeNull();
  });

  it('counts a field whose name is folded before its colon, and a header that starts folded, as mailparser reads them', async () => {
    const folded = msg('Subject\r\n : forged\r\nFrom: a@b.ru\r\nSubject: genuine\r\n');
    expect(inspectHeader(folded, limits)).toEqual({ kind: 'duplicate-header', field: 'subject', count: 2 });
    // what the check is for: the parser stores the first instance, DKIM verifies the last
    expect((await parseMessage(folded)).subject).toBe('forged');
    const leading = msg(' Message-ID: <forged@x>\r\nFrom: a@b.ru\r\nMessage-ID: <genuine@x>\r\n');
    expect(inspectHeader(leading, limits)).toEqual({ kind: 'duplicate-header', field: 'message-id', count: 2 });
    expect(inspectHeader(msg('X-Long\r\n name\r\n : x\r\nSubject: s\r\n'), limits)).toBeNull();
  });

  it('finds where the body starts', () => {
    expect(bodyOffset(msg('From: a@b.ru\r\n'))).toBe('From: a@b.ru\r\n\r\n'.length);
    expect(bodyOffset(Buffer.from('\r\nbody'))).toBe(2);
    expect(bodyOffset(Buffer.from('From: a@b.ru\r\n'))).toBe(14);
  });
});

describe('LineEndings', () => {
  const check = (...chunks: string[]) => {
    const l = new LineEndings();
    for (const c of chunks) l.feed(Buffer.from(c, 'latin1'));
    return l.end();
  };
  it.each([
    ['CRLF throughout', ['a\r\nb\r\n'], null],
    ['CRLF split across chunks', ['a\r', '\nb\r\n'], null],
    ['a bare LF', ['a\nb\r\n'], 'LF'],
    ['a bare LF at the start of a chunk', ['a\r\n', '\nb\r\n'], 'LF'],
    ['a bare CR', ['a\rb\r\n'], 'CR'],
    ['a bare CR at the end of a chunk', ['a\r', 'b\r\n'], 'CR'],
    ['a CR at the very end', ['a\r\nb\r'], 'CR'],
  ])('%s', (_name, chunks, expected) => {
    expect(check(...(chunks as string[]))).toBe(expected);
  });
});

describe("the message's shape, counted on the way (what decides inline processing)", () => {
  const message =
    'From: a@b.ru\r\nContent-Type: multipart/mixed; boundary="p"\r\n\r\n--p\r\n\r\ntext - not -- a boundary\r\n' +
    '--p\r\nContent-Type: text/plain\r\n\r\n-\r\n-- \r\nsig\r\n--p--\r\n';
  it('LineEndings counts lines and lines starting with "--", wherever the chunks split', () => {
    const bytes = Buffer.from(message);
    for (let a = 0; a < bytes.length; a++)
      for (const b of [a + 1, a + 2, a + 3, bytes.length]) {
        const l = new LineEndings();
        for (const chunk of [bytes.subarray(0, a), bytes.subarray(a, b), bytes.subarray(b)]) l.feed(chunk);
        expect(l.end()).toBeNull();
        expect([l.lines, l.dashLines]).toEqual([13, 4]);
      }
  });

  it("LineEndings counts '<' (tags, and address brackets) up to TAG_COUNT_CAP, in any chunks", () => {
    const l = new LineEndings();
    for (const c of ['<p>a</p>\r\n', '<', '<<td>x\r\n', '']) l.feed(Buffer.from(c));
    expect(l.tags).toBe(5);
    const flood = new LineEndings();
    flood.feed(Buffer.from(`${'<td>x'.repeat(TAG_COUNT_CAP)}\r\n`));
    flood.feed(Buffer.from('<td>x\r\n'));
    expect(flood.tags).toBe(TAG_COUNT_CAP);
  });

  it('LineEndings estimates the control characters (not tab, CR, LF) from a sample, however the chunks come', () => {
    // attack run 3/4: a body of \x01–\x1f costs about twice what other bytes cost to process
    const chars = Array.from({ length: 0x20 }, (_, i) => String.fromCharCode(i)).filter((c) => !'\t\r\n'.includes(c));
    const line = `${Array.from({ length: 76 }, (_, i) => chars[i % chars.length]).join('')}\r\n`;
    const body = Buffer.from(line.repeat(20_000), 'latin1'); // 1.56 MB, 97% control characters
    const real = body.length - 40_000;
    for (const size of [65_536, 1000, 7]) {
      const l = new LineEndings();
      for (let at = 0; at < body.length; at += size) l.feed(body.subarray(at, at + size));
      expect(l.end()).toBeNull();
      // one byte in 32 looked at: well within 5% at this size (the standard error is ~0.1%)
      expect(Math.abs(l.controls - real) / real).toBeLessThan(0.05);
    }
    const text = new LineEndings();
    text.feed(Buffer.from('Обычный ответ\tс табуляцией.\r\n'.repeat(50_000)));
    expect(text.controls).toBe(0);
    expect(CONTROL_SAMPLE_STRIDE).toBeGreaterThan(1);
  });

  it('inspectHeader counts header lines and signature fields, also past a duplicate', () => {
    const shape = emptyHeaderShape();
    const raw = msg(
      'DKIM-Signature: v=1;\r\n b=x\r\nSubject: a\r\nSubject: b\r\nARC-Seal: i=1\r\nArc-Message-Signature: i=1\r\n',
    );
    expect(inspectHeader(raw, limits, shape)).toMatchObject({ kind: 'duplicate-header', field: 'subject' });
    expect(shape).toEqual({ lines: 6, signatures: 3, addressBytes: 0 });
  });

  it('inspectHeader counts the bytes of the address fields, folded lines and folded names included', () => {
    const from = 'From: Ann <a@b.ru>\r\n';
    const cc = 'cc : x@y.ru,\r\n z@y.ru\r\n';
    const to = 'To\r\n : t@y.ru\r\n';
    const shape = emptyHeaderShape();
    expect(inspectHeader(msg(`${from}Subject: s\r\n${cc}X-Cc: no@y.ru\r\n${to}`), limits, shape)).toBeNull();
    expect(shape.addressBytes).toBe(from.length + cc.length + to.length);
    // the last field, with no empty line after it
    expect(inspectHeader(Buffer.from(`Subject: s\r\n${cc}`), limits, shape)).toBeNull();
    expect(shape.addressBytes).toBe(cc.length);
  });
});

describe('colonEndedLines', () => {
  it('counts lines ending with ":" or "：" (spaces and tabs after it allowed), up to the cap', () => {
    const raw = Buffer.from(
      'Subject: x\r\nDKIM-Signature: h=from:to:\r\n subject; b=x\r\n\r\nok\r\nОт: Имя <a@b.ru> Кому:\r\nAnn wrote: \t\r\n12:00 ok\r\n山田さんは書きました：\r\n:\r\n \r\n',
    );
    expect(colonEndedLines(raw, 100)).toBe(4);
    expect(colonEndedLines(raw, 2)).toBe(2);
    expect(colonEndedLines(Buffer.from('a:'), 100)).toBe(0); // no line end
    expect(colonEndedLines(Buffer.from('\r\n:\r\n'), 100)).toBe(1); // no header block
  });
});
