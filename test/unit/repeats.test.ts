// The repeated-text loop breaker's memory (src/pipeline/repeats.ts): what counts as the same text,
// what never counts, and the hour it remembers.
import { describe, expect, it } from 'vitest';
import type { TicketMessageRow } from '../../src/db/queries.js';
import { REPEAT_WINDOW_MS, REPEATS_ALLOWED, RepeatedReplies } from '../../src/pipeline/repeats.js';

const row = (replyText: string, ticketId = 'TKT-1', authorAddress = 'a@example.ru', authVerdict = 'AUTH_ACCEPTED') =>
  ({ ticketId, authorAddress, replyText, authVerdict }) as TicketMessageRow;
const LONG =
  'Thank you for your message. Request 4521 is registered, an engineer of ours will answer within 2 business days.';

describe('RepeatedReplies', () => {
  it('folds digits, case and spacing; keys by ticket and author', () => {
    const r = new RepeatedReplies();
    const key = r.keyOf(row(LONG), 0);
    expect(key).not.toBeNull();
    expect(r.keyOf(row(LONG.replace('4521', '98').replace('2 days', '3   days').toUpperCase()), 0)).toBe(key);
    expect(r.keyOf(row(LONG, 'TKT-2'), 0)).not.toBe(key);
    expect(r.keyOf(row(LONG, 'TKT-1', 'b@example.ru'), 0)).not.toBe(key);
    expect(r.keyOf(row(`${LONG} Best regards`), 0)).not.toBe(key);
  });

  it("counts mail that does not authenticate its author apart from the author's own (attack run 5)", () => {
    const r = new RepeatedReplies();
    const forged = r.keyOf(row(LONG, 'TKT-1', 'ivan@flamecrm.ru', 'AUTH_UNAUTHENTICATED'), 0)!;
    r.record(forged);
    r.record(forged);
    expect(r.count(forged)).toBe(REPEATS_ALLOWED);
    const real = r.keyOf(row(LONG, 'TKT-1', 'ivan@flamecrm.ru'), 0)!;
    expect(real).not.toBe(forged);
    expect(r.count(real)).toBe(0);
    // and every verdict short of AUTH_ACCEPTED is one count, as the hourly cap's
    expect(r.keyOf(row(LONG, 'TKT-1', 'ivan@flamecrm.ru', 'AUTH_NOT_BOUND'), 0)).toBe(forged);
  });

  it('a short text, or a message with attachments, never counts', () => {
    const r = new RepeatedReplies();
    expect(r.keyOf(row('Спасибо, всё работает!'), 0)).toBeNull();
    expect(r.keyOf(row(LONG), 1)).toBeNull();
  });

  it('remembers an hour', () => {
    let now = 1_000_000;
    const r = new RepeatedReplies(() => now);
    const key = r.keyOf(row(LONG), 0)!;
    r.record(key);
    now += 1000;
    r.record(key);
    expect(r.count(key)).toBe(2);
    now += REPEAT_WINDOW_MS - 500;
    expect(r.count(key)).toBe(1);
    now += 1000;
    expect(r.count(key)).toBe(0);
  });
});
