// Group commit (src/db/group-commit.ts, store_messages) against a real PostgreSQL: messages ready
// at the same moment share one commit, and each still gets exactly its own outcome — a copy of a
// message in the same batch is a duplicate of it, a ticket's hourly cap counts the batch's earlier
// messages, one message's bad data fails only that message, attachments arrive byte for byte, and a
// deadline keeps a message out of a batch (or cancels a batch only when all of it gave up). With
// one commit under way at a time, calls made while one runs form the next batch: deterministic.
import crypto from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/db/group-commit.js';
import { type MessageToStore, storeMessages, type TicketMessageRow } from '../../src/db/queries.js';
import { createTestDatabase, insertTestTicket, type TestDatabase, testMessageRow } from '../helpers/db.js';

let db: TestDatabase;
let pool: pg.Pool;
const batches: number[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  for (const id of ['TKT-7001', 'TKT-7002', 'TKT-7003', 'TKT-7004', 'TKT-7005'])
    await insertTestTicket(db.pool, id, 'client@example.ru');
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const commits = (maxPerHour = 0) =>
  new GroupCommit(pool, {
    maxMessages: 32,
    maxBytes: 8 << 20,
    inFlight: 1,
    maxPerHour,
    onBatch: (n) => batches.push(n),
  });

function message(ticketId: string, key: string, extra: Partial<TicketMessageRow> = {}): MessageToStore {
  const bytes = Buffer.from(`From: client@example.ru\r\nMessage-ID: <${key}>\r\n\r\n${key}\r\n`);
  const row = testMessageRow(ticketId, key, extra);
  return {
    bytes,
    sha256: crypto.createHash('sha256').update(bytes).digest(),
    ticketMessages: [row],
    unrouted: [],
    attachments: [],
    outbox: [],
  };
}

const rowsOf = async (ticket: string) =>
  (await db.pool.query('select message_id from ticket_messages where ticket_id = $1 order by id', [ticket])).rows.map(
    (r) => r.message_id as string,
  );

describe('group commit', () => {
  it('stores the messages ready at the same moment in one commit, each with its own result', async () => {
    const c = commits();
    batches.length = 0;
    const results = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((k) => c.store(message('TKT-7001', `gc-${k}@x`))));
    // the first went at once, alone; the four that came while it ran shared the next commit
    expect(batches).toEqual([1, 4]);
    expect(new Set(results.map((r) => r.rawMessageId)).size).toBe(5);
    expect(results.every((r) => r.rawMessageId && r.stored === 1)).toBe(true);
    expect(await rowsOf('TKT-7001')).toEqual(['<gc-a@x>', '<gc-b@x>', '<gc-c@x>', '<gc-d@x>', '<gc-e@x>']);
  });

  it('recognises a copy of a message in the same commit as a duplicate of it', async () => {
    const c = commits();
    batches.length = 0;
    const [, ...copies] = await Promise.all([
      c.store(message('TKT-7002', 'filler@x')),
      c.store(message('TKT-7002', 'twice@x')),
      c.store(message('TKT-7002', 'twice@x')),
      c.store(message('TKT-7002', 'twice@x')),
    ]);
    expect(batches).toEqual([1, 3]);
    const first = copies[0]!.rawMessageId;
    expect(first).not.toBeNull();
    expect(copies.slice(1)).toEqual([
      { rawMessageId: null, stored: 0, existingRawMessageId: first, rateLimitedTicket: null },
      { rawMessageId: null, stored: 0, existingRawMessageId: first, rateLimitedTicket: null },
    ]);
    expect(await rowsOf('TKT-7002')).toEqual(['<filler@x>', '<twice@x>']);
    const raw = await db.pool.query(
      "select count(*)::int as n from raw_messages where position('twice'::bytea in bytes) > 0",
    );
    expect(raw.rows[0].n).toBe(1);
  });

  it("counts the commit's earlier messages against a ticket's hourly cap", async () => {
    const c = commits(3);
    batches.length = 0;
    const results = await Promise.all(['1', '2', '3', '4', '5'].map((k) => c.store(message('TKT-7003', `cap-${k}@x`))));
    expect(batches).toEqual([1, 4]);
    expect(results.map((r) => r.rateLimitedTicket)).toEqual([null, null, null, 'TKT-7003', 'TKT-7003']);
    expect(await rowsOf('TKT-7003')).toEqual(['<cap-1@x>', '<cap-2@x>', '<cap-3@x>']);
  });

  const staff = { authorAddress: 'ivan@flamecrm.ru', authorRole: 'staff' } as const;

  it("counts a ticket's hourly cap per author: 60 from the requester, staff still stored, the requester's 61st not", async () => {
    // attack run 4, F-med-1: the requester's 60 messages kept every staff answer out for an hour
    await insertTestTicket(db.pool, 'TKT-7008', 'client@example.ru');
    const c = commits(60);
    const flood = await Promise.all(Array.from({ length: 60 }, (_, i) => c.store(message('TKT-7008', `flood-${i}@x`))));
    expect(flood.every((r) => r.rawMessageId && !r.rateLimitedTicket)).toBe(true);
    const staffAnswer = await c.store(message('TKT-7008', 'staff-answer@x', staff));
    expect(staffAnswer).toMatchObject({ stored: 1, rateLimitedTicket: null });
    // the author's address as stored, case aside
    const more = await c.store(message('TKT-7008', 'flood-60@x', { authorAddress: 'Client@Example.RU' }));
    expect(more).toMatchObject({ rawMessageId: null, rateLimitedTicket: 'TKT-7008' });
    expect(await rowsOf('TKT-7008')).toHaveLength(61);
  });

  it("keeps two authors' counts apart within one commit, each as if alone", async () => {
    await insertTestTicket(db.pool, 'TKT-7009', 'client@example.ru');
    const c = commits(2);
    batches.length = 0;
    const results = await Promise.all([
      c.store(message('TKT-7001', 'filler-2@x')),
      c.store(message('TKT-7009', 'two-r1@x')),
      c.store(message('TKT-7009', 'two-s1@x', staff)),
      c.store(message('TKT-7009', 'two-r2@x')),
      c.store(message('TKT-7009', 'two-s2@x', staff)),
      c.store(message('TKT-7009', 'two-r3@x')),
      c.store(message('TKT-7009', 'two-s3@x', staff)),
    ]);
    expect(batches).toEqual([1, 6]);
    expect(results.slice(1).map((r) => r.rateLimitedTicket)).toEqual([null, null, null, null, 'TKT-7009', 'TKT-7009']);
    expect(await rowsOf('TKT-7009')).toEqual(['<two-r1@x>', '<two-s1@x>', '<two-r2@x>', '<two-s2@x>']);
  });

  it('gives strangers one count per ticket, whatever address each wrote', async () => {
    await insertTestTicket(db.pool, 'TKT-7010', 'client@example.ru');
    const c = commits(2);
    const stranger = (k: string) =>
      message('TKT-7010', `stranger-${k}@x`, { authorAddress: `s${k}@evil.test`, authorRole: 'stranger' });
    const results = [];
    for (const k of ['1', '2', '3']) results.push(await c.store(stranger(k)));
    expect(results.map((r) => r.rateLimitedTicket)).toEqual([null, null, 'TKT-7010']);
    expect((await c.store(message('TKT-7010', 'requester-after@x'))).rateLimitedTicket).toBeNull();
  });

  it("notifies staff of an author's first 10 messages on a ticket in an hour; the rest are stored, not mailed", async () => {
    await insertTestTicket(db.pool, 'TKT-7011', 'client@example.ru');
    const c = commits(60);
    const withOutbox = (k: string, extra: Partial<TicketMessageRow> = {}, audience = 'staff') => {
      const m = message('TKT-7011', `notify-${k}@x`, extra);
      m.outbox = [
        {
          kind: 'mail',
          event: 'requester_reply',
          ticketId: 'TKT-7011',
          recipient: 'desk@flamecrm.ru',
          payload: { messageId: `<notify-${k}-${process.pid}@flamecrm.ru>`, audience },
        },
        {
          kind: 'webhook',
          event: 'ticket_message.created',
          ticketId: 'TKT-7011',
          recipient: 'https://crm/',
          payload: {},
        },
      ];
      return m;
    };
    await Promise.all(Array.from({ length: 12 }, (_, i) => c.store(withOutbox(`r${i}`))));
    // staff answering: their mail to the requester is not held back by the requester's count
    for (let i = 0; i < 12; i++) await c.store(withOutbox(`s${i}`, staff, i < 11 ? 'requester' : 'staff'));
    const { rows } = await db.pool.query(
      `select o.kind, o.payload ->> 'audience' as audience, tm.author_address as author, count(*)::int as n
         from outbox o join ticket_messages tm on tm.id = o.ticket_message_id
        where o.ticket_id = 'TKT-7011' group by 1, 2, 3 order by 1, 2, 3`,
    );
    expect(rows).toEqual([
      { kind: 'mail', audience: 'requester', author: 'ivan@flamecrm.ru', n: 11 },
      { kind: 'mail', audience: 'staff', author: 'client@example.ru', n: 10 },
      { kind: 'webhook', audience: null, author: 'client@example.ru', n: 12 },
      { kind: 'webhook', audience: null, author: 'ivan@flamecrm.ru', n: 12 },
    ]);
  });

  it('fails only the message whose data PostgreSQL refuses, the rest of its commit is stored', async () => {
    const c = commits();
    batches.length = 0;
    const bad = message('TKT-7004', 'bad@x');
    bad.ticketMessages[0]!.envelope = { ...bad.ticketMessages[0]!.envelope, clientIp: 'not an address' };
    const settled = await Promise.allSettled([
      c.store(message('TKT-7004', 'ok-0@x')),
      c.store(message('TKT-7004', 'ok-1@x')),
      c.store(bad),
      c.store(message('TKT-7004', 'ok-2@x')),
    ]);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((settled[2] as PromiseRejectedResult).reason).toMatchObject({ code: '22P02' });
    // the batch of three failed as a whole, then each went alone
    expect(batches).toEqual([1, 3, 1, 1, 1]);
    expect((await rowsOf('TKT-7004')).sort()).toEqual(['<ok-0@x>', '<ok-1@x>', '<ok-2@x>']);
  });

  it("keeps a ticket's hourly cap when a failed commit's messages go again one by one", async () => {
    // The batch fails on bad data at once; its messages then go alone. Run side by side, each
    // would count the ticket's messages before any of the others committed: all over the cap.
    await insertTestTicket(db.pool, 'TKT-7006', 'client@example.ru');
    await insertTestTicket(db.pool, 'TKT-7007', 'client@example.ru');
    const c = commits(2);
    batches.length = 0;
    const bad = message('TKT-7006', 'cap-bad@x');
    bad.ticketMessages[0]!.envelope = { ...bad.ticketMessages[0]!.envelope, clientIp: 'not an address' };
    const locker = await db.pool.connect();
    try {
      // the same rows, not committed: the solo commits wait at their unique keys, after their cap checks
      const solos = ['a', 'b', 'c'].map((k) => message('TKT-7007', `cap-solo-${k}@x`));
      await locker.query('begin');
      await storeMessages(locker, solos, 0);
      const settled = Promise.allSettled([
        c.store(message('TKT-7006', 'cap-first@x')),
        c.store(bad),
        ...solos.map((m) => c.store(m)),
      ]);
      const waiting = async () =>
        (
          await db.pool.query(
            "select count(*)::int as n from pg_stat_activity where query like '%store_messages%' and wait_event_type = 'Lock'",
          )
        ).rows[0].n;
      await expect.poll(waiting).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, 300));
      await locker.query('rollback');
      const results = await settled;
      expect(results.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled']);
      expect(batches.slice(0, 2)).toEqual([1, 4]);
      const limited = results
        .slice(2)
        .map((s) => (s as PromiseFulfilledResult<{ rateLimitedTicket: string | null }>).value);
      expect(limited.map((r) => r.rateLimitedTicket)).toEqual([null, null, 'TKT-7007']);
    } finally {
      await locker.query('rollback').catch(() => {});
      locker.release();
    }
    expect(await rowsOf('TKT-7007')).toHaveLength(2);
  });

  it('carries attachments byte for byte, as one binary parameter', async () => {
    const c = commits();
    const contents = [crypto.randomBytes(70_000), Buffer.from([0, 1, 2, 255, 0x5c, 0x78]), Buffer.alloc(0)];
    const withFiles = message('TKT-7005', 'files@x');
    withFiles.attachments = contents.map((content, i) => ({
      filename: `f${i}.bin`,
      contentType: 'application/octet-stream',
      size: content.length,
      sha256: crypto.createHash('sha256').update(content).digest(),
      contentId: null,
      inline: false,
      content,
    }));
    const [a, b] = await Promise.all([c.store(message('TKT-7005', 'before-files@x')), c.store(withFiles)]);
    expect([a.stored, b.stored]).toEqual([1, 1]);
    const { rows } = await db.pool.query(
      'select position, filename, size, bytes, sha256 from attachments where raw_message_id = $1 order by position',
      [b.rawMessageId],
    );
    expect(rows.map((r) => r.filename)).toEqual(['f0.bin', 'f1.bin', 'f2.bin']);
    rows.forEach((r, i) => {
      expect(Buffer.compare(r.bytes, contents[i]!)).toBe(0);
      expect(r.size).toBe(contents[i]!.length);
    });
    const raw = await db.pool.query('select bytes from raw_messages where id = $1', [b.rawMessageId]);
    expect(raw.rows[0].bytes.toString()).toBe(withFiles.bytes.toString());
  });
});

describe('deadlines', () => {
  it('keep a message out of a commit that has not started, and cancel a commit only when all of it gave up', async () => {
    const c = commits();
    const locker = await db.pool.connect();
    // here the waits on the lock are the test's own, as long as it needs them (see the next test)
    await db.pool.query("alter function store_messages(bytea, jsonb, integer) set lock_timeout = '0'");
    try {
      await locker.query('begin');
      await locker.query('lock table ticket_messages in access exclusive mode');
      const first = new AbortController();
      const waiting = new AbortController();
      const together = [new AbortController(), new AbortController()];
      const held = c.store(message('TKT-7005', 'held@x'), first.signal);
      const out = c.store(message('TKT-7005', 'never@x'), waiting.signal);
      const a = c.store(message('TKT-7005', 'late-a@x'), together[0]!.signal);
      const b = c.store(message('TKT-7005', 'late-b@x'), together[1]!.signal);
      const blocked = async () =>
        (
          await db.pool.query(
            "select count(*)::int as n from pg_stat_activity where query like '%store_messages%' and wait_event_type = 'Lock'",
          )
        ).rows[0].n;
      await expect.poll(blocked).toBe(1);
      // queued behind the blocked commit: taken out, never stored
      waiting.abort(new Error('deadline'));
      await expect(out).rejects.toThrow('deadline');
      // the blocked commit's only message gives up: the statement is cancelled
      first.abort(new Error('deadline'));
      await expect(held).rejects.toThrow(/canceling statement due to user request/);
      // one of the next two gives up; the other still waits for it: it goes on, and both are stored
      await expect.poll(blocked).toBe(1);
      together[0]!.abort(new Error('deadline'));
      await new Promise((r) => setTimeout(r, 200));
      expect(await blocked()).toBe(1);
      await locker.query('rollback');
      expect((await a).stored).toBe(1);
      expect((await b).stored).toBe(1);
    } finally {
      await locker.query('rollback').catch(() => {});
      locker.release();
      await db.pool.query("alter function store_messages(bytea, jsonb, integer) set lock_timeout = '1s'");
    }
    const stored = await rowsOf('TKT-7005');
    expect(stored).toContain('<late-a@x>');
    expect(stored).not.toContain('<held@x>');
    expect(stored).not.toContain('<never@x>');
  });

  // One commit is under way at a time (COMMITS_IN_FLIGHT) and it goes on while any of its messages
  // still waits, so a message stuck on a lock (here: its own key, inserted by a transaction that has
  // not ended) would hold every message behind it: store_messages waits for a lock at most a second
  // (migration 0008), and the stuck message alone fails (55P03, a 451 for it; the next try succeeds
  // once the lock is gone).
  it('lets the messages behind a commit stuck on a lock go on (lock_timeout: the stuck one alone fails)', async () => {
    const c = commits();
    const stuck = message('TKT-7005', 'stuck@x');
    const stuckToo = message('TKT-7005', 'stuck-too@x');
    const locker = await db.pool.connect();
    try {
      await locker.query('begin');
      await storeMessages(locker, [stuck, stuckToo], 0); // their keys, held until the rollback
      const code = (p: Promise<unknown>) =>
        p.then(
          () => 'stored',
          (err: { code?: string }) => err.code,
        );
      // alone in its commit, with another message queued behind it
      const alone = code(c.store(stuck, new AbortController().signal));
      const behind = c.store(message('TKT-7005', 'behind-stuck@x'), new AbortController().signal);
      // in one commit with two others (queued while the first commit runs): run again one by one
      const inBatch = code(c.store(stuckToo, new AbortController().signal));
      const besideA = c.store(message('TKT-7005', 'beside-a@x'), new AbortController().signal);
      const besideB = c.store(message('TKT-7005', 'beside-b@x'), new AbortController().signal);
      const settled = Promise.all([alone, behind, inBatch, besideA, besideB]);
      const result = await Promise.race([settled, new Promise((r) => setTimeout(() => r('still waiting'), 20_000))]);
      expect(result).not.toBe('still waiting');
      expect(await alone).toBe('55P03');
      expect(await inBatch).toBe('55P03');
      for (const r of [await behind, await besideA, await besideB]) expect(r.stored).toBe(1);
    } finally {
      await locker.query('rollback').catch(() => {});
      locker.release();
    }
    // once the lock is gone, the retry of the stuck message is stored
    expect((await commits().store(message('TKT-7005', 'stuck@x'))).stored).toBe(1);
  });
});
