// The reply is extracted from at most REPLY_INPUT_MAX_CHARS of the text and the HTML, in the one
// function the pipeline, `ticket-mx reply-text` and `ticket-mx reprocess` share (src/mail/reply-text/message.ts).
import { describe, expect, it } from 'vitest';
import { REPLY_INPUT_MAX_CHARS, replyOfParsed, replyOfRaw } from '../../src/mail/reply-text/message.js';

const long = (lines: number) =>
  Array.from({ length: lines }, (_, i) => `Строка ${i} нашего длинного отчёта.`).join('\n');

describe('the bound on what reply extraction reads', () => {
  it('a text past the bound is cut at a line break before it; a shorter one is read whole', () => {
    const text = long(20_000);
    expect(text.length).toBeGreaterThan(REPLY_INPUT_MAX_CHARS * 2);
    const cut = replyOfParsed({ text, html: null, subject: null });
    expect(cut.inputCut).toBe(true);
    expect(cut.reply.length).toBeLessThanOrEqual(REPLY_INPUT_MAX_CHARS);
    expect(text.startsWith(`${cut.reply}\n`)).toBe(true);
    const whole = replyOfParsed({ text: long(100), html: null, subject: null });
    expect(whole).toMatchObject({ inputCut: false, reply: long(100) });
  });

  it('reprocess and reply-text (replyOfRaw) read as far as the pipeline does', async () => {
    const raw = Buffer.from(`From: a@example.ru\r\nSubject: x\r\n\r\n${long(20_000).replace(/\n/g, '\r\n')}\r\n`);
    const r = await replyOfRaw(raw);
    expect(r.inputCut).toBe(true);
    expect(r.reply.length).toBeLessThanOrEqual(REPLY_INPUT_MAX_CHARS);
  });
});
