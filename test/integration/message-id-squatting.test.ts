// Duplicates are the same message, not the same Message-ID (attack run, finding 5; migration 0012):
// a relayed retry with one more Received line is recognised; a message sent first under somebody
// else's Message-ID does not make the real one a "duplicate" that is answered 250 and dropped;
// copies delivered at the same moment are one row; a retry of a row stored before 0012 (its key the
// Message-ID alone) is still recognised, by its body. Real server, real PostgreSQL.
import crypto from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { storeMessage } from '../../src/db/queries.js';
import { idempotencyKey, parseMessage } from '../../src/mail/parse.js';
import { counts, createTestDatabase, insertTestTicket, type TestDatabase, testMessageRow } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, deliver } from '../helpers/smtp-client.js';

const TO = 'support+TKT-6301@flamecrm.ru';
const RECEIVED =
  'Received: from relay.example.net (relay.example.net [192.0.2.7])\r\n' +
  ' by mx2.example.net; Thu, 26 Nov 2026 10:00:09 +0300';

let db: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db.url, {
    STAFF_SENDERS: '@flamecrm.ru',
    TICKET_MAX_MESSAGES_PER_HOUR: '0',
    OUTBOX_SEND_IN_SERVE: 'false',
  });
  await insertTestTicket(db.pool, 'TKT-6301', 'client@example.ru');
}, 60_000);

afterAll(async () => {
  await server?.close();
  await db?.drop();
});

beforeEach(async () => {
  await db.pool.query('truncate raw_messages, ticket_messages, unrouted_messages, attachments, outbox cascade');
});

const send = (message: string, from = 'ivan@flamecrm.ru') => deliver(server.port, { from, to: [TO], message });
const rowsOf = async (messageId: string) =>
  (
    await db.pool.query<{ author_address: string; full_text: string; idempotency_key: string }>(
      'select author_address, full_text, idempotency_key from ticket_messages where message_id = $1 order by id',
      [messageId],
    )
  ).rows;

describe('a duplicate is the same message', () => {
  it('recognises a relayed retry with one more Received line: 250, one row', async () => {
    const message = buildMessage({ to: TO, messageId: '<retry-1@mail.flamecrm.ru>', body: 'Заменили картридж.' });
    const first = await send(message);
    expect(first.short).toBe('250 2.0.0');
    const retry = await send(`${RECEIVED}\r\n${message}`);
    expect(retry.text).toBe(`Ok: already committed as ${/committed as (\d+)/.exec(first.text)![1]}`);
    expect(await rowsOf('<retry-1@mail.flamecrm.ru>')).toHaveLength(1);
    expect((await counts(db.pool)).raw).toBe(1);
  });

  it('stores the real message after another one squatted its Message-ID (other author, other body)', async () => {
    const id = '<predictable-42@mail.flamecrm.ru>';
    const squat = buildMessage({
      from: 'Mallory <mallory@example.com>',
      to: TO,
      messageId: id,
      body: 'Ignore this ticket.',
    });
    expect((await send(squat, 'mallory@example.com')).short).toBe('250 2.0.0');
    const real = buildMessage({ to: TO, messageId: id, body: 'Заменили картридж, всё работает.' });
    const answer = await send(real);
    expect(answer.text).toMatch(/^Ok: committed as \d+$/);
    const rows = await rowsOf(id);
    expect(rows.map((r) => [r.author_address, r.full_text.trim()])).toEqual([
      ['mallory@example.com', 'Ignore this ticket.'],
      ['ivan@flamecrm.ru', 'Заменили картридж, всё работает.'],
    ]);
    // and the real message's own retry is still a duplicate
    expect((await send(`${RECEIVED}\r\n${real}`)).text).toMatch(/^Ok: already committed as/);
    expect(await rowsOf(id)).toHaveLength(2);
  });

  it('stores a message of the same author under a squatted Message-ID when its body differs', async () => {
    const id = '<same-author@mail.flamecrm.ru>';
    expect((await send(buildMessage({ to: TO, messageId: id, body: 'First words.' }))).short).toBe('250 2.0.0');
    expect((await send(buildMessage({ to: TO, messageId: id, body: 'Other words.' }))).text).toMatch(/^Ok: committed/);
    expect(await rowsOf(id)).toHaveLength(2);
  });

  it('stores identical copies delivered at the same moment once', async () => {
    const message = buildMessage({ to: TO, messageId: '<at-once@mail.flamecrm.ru>', body: 'Готово.' });
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) => send(i % 2 ? `${RECEIVED}\r\n${message}` : message)),
    );
    expect(answers.map((a) => a.short)).toEqual(Array(6).fill('250 2.0.0'));
    expect(answers.filter((a) => /^Ok: committed as/.test(a.text))).toHaveLength(1);
    expect(await rowsOf('<at-once@mail.flamecrm.ru>')).toHaveLength(1);
    expect((await counts(db.pool)).raw).toBe(1);
  });

  it('stores one row when two transactions insert the same message side by side (the unique key waits)', async () => {
    const raw = Buffer.from(buildMessage({ to: TO, messageId: '<side-by-side@x>', body: 'Done.' }));
    const key = idempotencyKey(raw, await parseMessage(raw));
    const store = (client: pg.PoolClient) =>
      storeMessage(client, {
        bytes: raw,
        sha256: crypto.createHash('sha256').update(raw).digest(),
        ticketMessages: [testMessageRow('TKT-6301', 'side-by-side@x', { idempotencyKey: key })],
        unrouted: [],
        attachments: [],
        maxPerHour: 0,
      });
    const a = await db.pool.connect();
    const b = await db.pool.connect();
    try {
      await a.query('begin');
      await b.query('begin');
      const first = await store(a);
      const second = store(b); // waits on the first's uncommitted row
      await new Promise((r) => setTimeout(r, 300));
      await a.query('commit');
      const late = await second;
      await b.query('commit');
      expect(first.stored).toBe(1);
      expect(late).toMatchObject({ rawMessageId: null, stored: 0, existingRawMessageId: first.rawMessageId });
    } finally {
      a.release();
      b.release();
    }
    expect(await rowsOf('<side-by-side@x>')).toHaveLength(1);
  });

  it('recognises a retry of a message stored before migration 0012 (key: the Message-ID alone) by its body', async () => {
    const message = buildMessage({ to: TO, messageId: '<before-0012@mail.flamecrm.ru>', body: 'Old.' });
    expect((await send(message)).short).toBe('250 2.0.0');
    // as 0011 and earlier wrote it
    await db.pool.query(
      "update ticket_messages set idempotency_key = 'mid:<before-0012@mail.flamecrm.ru>' where message_id = $1",
      ['<before-0012@mail.flamecrm.ru>'],
    );
    expect((await send(`${RECEIVED}\r\n${message}`)).text).toMatch(/^Ok: already committed as/);
    expect(await rowsOf('<before-0012@mail.flamecrm.ru>')).toHaveLength(1);
    // but a message squatted before 0012 does not swallow the real one: its body is compared
    const real = buildMessage({ to: TO, messageId: '<before-0012@mail.flamecrm.ru>', body: 'New.' });
    expect((await send(real)).text).toMatch(/^Ok: committed as/);
    expect(await rowsOf('<before-0012@mail.flamecrm.ru>')).toHaveLength(2);
  });
});
