// The sending half keeps the promise under trouble, with a real relay (smtp-server) and real
// PostgreSQL: relay down → retried, delivered exactly once when it is back; 451 → retried with the
// reply kept; 550 → failed with the reply kept (and `outbox retry`); past OUTBOX_MAX_AGE → failed;
// two senders on one database → no row twice; the sender killed between send and mark → at most
// one duplicate, with the same Message-ID; a stop finishes or puts back what is in flight; a
// rolled-back message queues nothing. Values from mail and the CRM with line breaks in them are one
// line in the notification's headers and in the lines of its text.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { type ClaimedRow, queueOutbox } from '../../src/db/outbox.js';
import { createPool, withTransaction } from '../../src/db/pool.js';
import { createLogger } from '../../src/log.js';
import { mailDelivery } from '../../src/outbox/mail.js';
import { notifyRules, ticketCreatedNotifications } from '../../src/outbox/notify.js';
import { createSender, openOutbox } from '../../src/outbox/open.js';
import { Sender } from '../../src/outbox/sender.js';
import { createTicketWithMessage } from '../../src/outbox/tickets.js';
import { cleanEnv, runCli, spawnCli } from '../helpers/cli.js';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { outboxRows, readMail, waitForStatus } from '../helpers/outbox.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { deliver } from '../helpers/smtp-client.js';

const STAFF = 'staff@helpdesk.test';

/** A ticket made the way `ticket create --message` makes it, its notification queued in the same commit. */
async function createTicket(db: TestDatabase, subject: string, staff = [STAFF]) {
  const rules = notifyRules({
    notifyStaffTo: staff,
    notifyRequester: true,
    mailDomains: ['flamecrm.ru'],
    crmWebhookUrl: null,
  });
  const created = await withTransaction(db.pool, (tx) =>
    createTicketWithMessage(
      tx,
      { subject, requester: 'client@example.ru', message: { text: `About: ${subject}` }, source: 'cli' },
      rules,
    ),
  );
  return { ticketId: created.ticket.id, ids: created.outboxIds };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('relay trouble', () => {
  let db: TestDatabase;
  let relay: TestRelay;
  let server: TestServer;
  const cli = () => cleanEnv({ DATABASE_URL: db.url, MAIL_DOMAINS: 'flamecrm.ru', OUTBOUND_SMTP_URL: relay.url });

  beforeAll(async () => {
    db = await createTestDatabase();
    relay = await startRelay();
    server = await startTestServer(db.url, {
      OUTBOUND_SMTP_URL: relay.url,
      NOTIFY_STAFF_TO: STAFF,
      OUTBOX_RETRY_DELAY: '200ms',
      OUTBOX_SEND_TIMEOUT: '5s',
    });
  });
  afterAll(async () => {
    await server?.close();
    await relay?.close();
    await db?.drop();
  });

  it('relay down → retried with backoff; delivered exactly once after it is back', async () => {
    await relay.down();
    const { ids } = await createTicket(db, 'Relay down');
    const id = ids[0]!;
    // several attempts while nothing listens, each logged with the error and kept as the last reply
    await expect
      .poll(() => server.logsWithCode('OUTBOX_DEFERRED').filter((l) => l.id === id).length, { timeout: 20_000 })
      .toBeGreaterThanOrEqual(2);
    const deferred = server.logsWithCode('OUTBOX_DEFERRED').find((l) => l.id === id)!;
    expect(deferred.reply).toMatch(/ECONNREFUSED/);
    expect((await outboxRows(db.pool)).find((r) => r.id === id)).toMatchObject({ status: 'queued' });

    await relay.up();
    const row = await waitForStatus(db.pool, id, 'sent');
    expect(row.attempts).toBeGreaterThanOrEqual(3);
    await sleep(1_000); // nothing more comes
    expect(relay.messages.filter((m) => m.messageId === row.message_id)).toHaveLength(1);
  });

  it('451 → deferred with the reply kept, then delivered', async () => {
    relay.mode = 'defer';
    const { ids } = await createTicket(db, 'Greylisted');
    const id = ids[0]!;
    await expect
      .poll(async () => (await outboxRows(db.pool)).find((r) => r.id === id)?.last_reply, { timeout: 20_000 })
      .toMatch(/^451 4\.7\.1 Greylisted, please try again later/);
    relay.mode = 'accept';
    await waitForStatus(db.pool, id, 'sent');
  });

  it('550 → failed with the reply kept; ticket show and outbox list say so; outbox retry sends it again', async () => {
    relay.mode = 'reject';
    const { ticketId, ids } = await createTicket(db, 'Rejected');
    const id = ids[0]!;
    const row = await waitForStatus(db.pool, id, 'failed');
    expect(row.attempts).toBe(1);
    expect(row.last_reply).toBe(`550 5.1.1 <${STAFF}>: Recipient address rejected: User unknown`);
    expect(server.logsWithCode('OUTBOX_FAILED').find((l) => l.id === id)).toMatchObject({ reply: row.last_reply });

    const shown = await runCli(['ticket', 'show', ticketId], cli());
    expect(shown.stdout).toContain(`notification ${id} to ${STAFF} (ticket created) failed: 550 5.1.1 <${STAFF}>`);
    const failed = JSON.parse((await runCli(['outbox', 'list', '--status', 'failed', '--json'], cli())).stdout);
    expect(failed.map((r: { id: string }) => r.id)).toContain(id);

    relay.mode = 'accept';
    const retried = await runCli(['outbox', 'retry', id], cli());
    expect(retried.code, retried.stderr).toBe(0);
    expect(retried.stdout).toContain(`outbox ${id} queued again`);
    const sent = await waitForStatus(db.pool, id, 'sent');
    expect(sent.attempts).toBe(2);
    expect(relay.messages.filter((m) => m.messageId === sent.message_id)).toHaveLength(1);

    const again = await runCli(['outbox', 'retry', id], cli());
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`outbox ${id} is sent: only failed, bounced or queued rows are retried`);
  });

  it('the LISTEN connection cut by the database: logged, connected again, and woken at once as before', async () => {
    const { rows } = await db.pool.query(
      "select pg_terminate_backend(pid) as cut from pg_stat_activity where application_name = 'ticket-mx outbox' and datname = current_database()",
    );
    expect(rows).toEqual([{ cut: true }]);
    await expect.poll(() => server.logsWithCode('OUTBOX_LISTEN_LOST').length, { timeout: 10_000 }).toBe(1);
    await expect
      .poll(
        async () =>
          (
            await db.pool.query(
              "select count(*)::int as n from pg_stat_activity where application_name = 'ticket-mx outbox' and datname = current_database()",
            )
          ).rows[0].n,
        { timeout: 10_000 },
      )
      .toBe(1);
    const started = Date.now();
    const { ids } = await createTicket(db, 'After the cut');
    await waitForStatus(db.pool, ids[0]!, 'sent');
    // the safety poll is every 30 s: this came through the new LISTEN
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('/metrics counts every send by its outcome, as many as the log lines of each', async () => {
    const text = await (await fetch(`http://127.0.0.1:${server.httpPort}/metrics`)).text();
    const counted = (outcome: string) =>
      Number(
        new RegExp(`^ticketmx_outbox_sends_total\\{kind="mail",outcome="${outcome}"\\} (\\d+)$`, 'm').exec(text)?.[1],
      );
    for (const [outcome, code] of [
      ['sent', 'OUTBOX_SENT'],
      ['deferred', 'OUTBOX_DEFERRED'],
      ['failed', 'OUTBOX_FAILED'],
    ] as const) {
      const lines = server.logsWithCode(code).length;
      expect(lines, code).toBeGreaterThan(0); // the tests above sent, deferred and failed mail
      expect(counted(outcome), outcome).toBe(lines);
    }
  });

  it('a 4xx past OUTBOX_MAX_AGE fails for good, with the last reply', async () => {
    relay.mode = 'defer';
    await server.service.sender!.close(); // hold the sender while the row is made old
    const { ids } = await createTicket(db, 'Too old');
    const id = ids[0]!;
    await db.pool.query("update outbox set queued_at = now() - interval '3 days' where id = $1", [id]);
    const sender = createSender(server.service.outbox, {
      config: server.config,
      pool: server.service.pool,
      databaseUrl: db.url,
      log: createLogger('silent'),
    });
    await sender.start();
    try {
      const row = await waitForStatus(db.pool, id, 'failed');
      expect(row.last_reply).toMatch(/^gave up after 1 attempts over \d+ min: 451 4\.7\.1 Greylisted/);
    } finally {
      await sender.close();
      relay.mode = 'accept';
    }
  });
});

describe('stopping', () => {
  let db: TestDatabase;
  let relay: TestRelay;

  beforeAll(async () => {
    db = await createTestDatabase();
    relay = await startRelay();
  });
  afterAll(async () => {
    await relay?.close();
    await db?.drop();
  });

  it('serve stops gracefully: a send in progress finishes and is marked sent', async () => {
    const server = await startTestServer(db.url, { OUTBOUND_SMTP_URL: relay.url, NOTIFY_STAFF_TO: STAFF });
    let release!: () => void;
    relay.beforeAnswer = () => new Promise<void>((r) => (release = r));
    const { ids } = await createTicket(db, 'In flight at stop');
    await relay.waitFor(1);
    const closing = server.close();
    await sleep(300);
    release();
    await closing;
    relay.beforeAnswer = null;
    expect((await outboxRows(db.pool)).find((r) => r.id === ids[0])?.status).toBe('sent');
  });

  it('a send that does not finish within the grace period is put back, due again at once', async () => {
    const config = loadConfig({
      DATABASE_URL: db.url,
      MAIL_DOMAINS: 'flamecrm.ru',
      OUTBOUND_SMTP_URL: relay.url,
      LOG_LEVEL: 'silent',
    });
    const pool = createPool({ connectionString: db.url, max: 3 });
    const logs: Record<string, unknown>[] = [];
    const log = createLogger('info', { write: (line: string) => logs.push(JSON.parse(line)) } as never);
    const outbox = await openOutbox(config, pool);
    const sender = new Sender({
      pool,
      databaseUrl: db.url,
      deliveries: [mailDelivery(pool, outbox.mail)],
      log,
      concurrency: 2,
      sendTimeoutMs: 30_000,
      retryDelayMs: 1_000,
      maxAgeMs: 86_400_000,
      stopGraceMs: 200,
    });
    let release!: () => void;
    relay.beforeAnswer = () => new Promise<void>((r) => (release = r));
    try {
      await sender.start();
      const { ids } = await createTicket(db, 'Put back');
      await expect.poll(() => relay.messages.length, { timeout: 10_000 }).toBe(2);
      await sender.close();
      const row = (await outboxRows(db.pool)).find((r) => r.id === ids[0])!;
      expect(row).toMatchObject({ status: 'queued', last_reply: 'interrupted: the sender stopped' });
      expect(logs.some((l) => l.code === 'OUTBOX_PUT_BACK' && l.id === ids[0])).toBe(true);
      const { rows } = await db.pool.query('select next_attempt_at <= now() as due from outbox where id = $1', ids);
      expect(rows[0].due).toBe(true);
    } finally {
      release?.();
      relay.beforeAnswer = null;
      await pool.end();
    }
  });
});

describe('two senders on one database', () => {
  let db: TestDatabase;
  let relay: TestRelay;

  beforeAll(async () => {
    db = await createTestDatabase();
    relay = await startRelay();
  });
  afterAll(async () => {
    await relay?.close();
    await db?.drop();
  });

  it('never send one row twice: every notification arrives exactly once', async () => {
    const staff = Array.from({ length: 8 }, (_, i) => `staff${i}@helpdesk.test`);
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push(...(await createTicket(db, `Busy ${i}`, staff)).ids);
    expect(ids).toHaveLength(48);
    // the relay takes a little while per message, so that both senders have sends in flight at once
    relay.beforeAnswer = () => sleep(10);
    const config = loadConfig({
      DATABASE_URL: db.url,
      MAIL_DOMAINS: 'flamecrm.ru',
      OUTBOUND_SMTP_URL: relay.url,
      OUTBOX_CONCURRENCY: '4',
    });
    const senders = await Promise.all(
      ['a', 'b'].map(async (name) => {
        const pool = createPool({ connectionString: db.url, max: 6 });
        const sent: string[] = [];
        const log = createLogger('info', {
          write: (line: string) => {
            const l = JSON.parse(line);
            if (l.code === 'OUTBOX_SENT') sent.push(l.id);
          },
        } as never);
        const outbox = await openOutbox(config, pool);
        const sender = new Sender({
          pool,
          databaseUrl: db.url,
          deliveries: [mailDelivery(pool, outbox.mail)],
          log,
          concurrency: 4,
          sendTimeoutMs: 30_000,
          retryDelayMs: 1_000,
          maxAgeMs: 86_400_000,
        });
        return { name, pool, sender, sent };
      }),
    );
    try {
      await Promise.all(senders.map((s) => s.sender.start()));
      await relay.waitFor(48, 60_000);
      await sleep(500);
      const rows = await outboxRows(db.pool);
      expect(rows.every((r) => r.status === 'sent' && r.attempts === 1)).toBe(true);
      const byId = new Map<string, number>();
      for (const m of relay.messages) byId.set(m.messageId!, (byId.get(m.messageId!) ?? 0) + 1);
      expect(relay.messages).toHaveLength(48);
      expect([...byId.values()].every((n) => n === 1)).toBe(true);
      expect(new Set(rows.map((r) => r.message_id))).toEqual(new Set(byId.keys()));
      // both took part, and no row was marked by both
      const [a, b] = senders;
      expect(a!.sent.length).toBeGreaterThan(0);
      expect(b!.sent.length).toBeGreaterThan(0);
      expect(a!.sent.filter((id) => b!.sent.includes(id))).toEqual([]);
      expect(a!.sent.length + b!.sent.length).toBe(48);
    } finally {
      relay.beforeAnswer = null;
      for (const s of senders) {
        await s.sender.close();
        await s.pool.end();
      }
    }
  }, 90_000);
});

describe('the sender killed between send and mark', () => {
  let db: TestDatabase;
  let relay: TestRelay;

  beforeAll(async () => {
    db = await createTestDatabase();
    relay = await startRelay();
  });
  afterAll(async () => {
    await relay?.close();
    await db?.drop();
  });

  it('sends it again after the lease: at most one duplicate, with the same Message-ID and bytes', async () => {
    const env = cleanEnv({
      DATABASE_URL: db.url,
      MAIL_DOMAINS: 'flamecrm.ru',
      OUTBOUND_SMTP_URL: relay.url,
      NOTIFY_STAFF_TO: STAFF,
      OUTBOX_SEND_TIMEOUT: '1s', // the lease of a claim is twice this
    });
    const child = spawnCli(['outbox', 'run'], env);
    try {
      await expect.poll(() => child.output(), { timeout: 30_000 }).toContain('OUTBOX_SENDER_STARTED');
      // the relay has the message; before it answers 250 the sender process dies
      relay.beforeAnswer = () => {
        child.kill('SIGKILL');
      };
      const { ids } = await createTicket(db, 'Killed mid-send');
      await relay.waitFor(1);
      relay.beforeAnswer = null;
      // killed by a signal, exitCode stays null: signalCode says it is gone already
      if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
      expect((await outboxRows(db.pool))[0]).toMatchObject({ status: 'sending', attempts: 1 });

      // another sender, once the dead one's lease is over
      await expect
        .poll(async () => (await db.pool.query('select next_attempt_at <= now() as due from outbox')).rows[0].due, {
          timeout: 10_000,
        })
        .toBe(true);
      const once = await runCli(['outbox', 'run', '--once'], env);
      expect(once.stdout.trim()).toBe('sent 1, deferred 0, failed 0');
      expect(relay.messages).toHaveLength(2);
      const [first, second] = relay.messages;
      expect(second!.messageId).toBe(first!.messageId);
      expect(second!.raw.equals(first!.raw)).toBe(true);
      const row = await waitForStatus(db.pool, ids[0]!, 'sent');
      expect(row.attempts).toBe(2);
      expect((await readMail(first!.raw)).messageId).toBe(row.message_id);

      // nothing is left to send
      const again = await runCli(['outbox', 'run', '--once'], env);
      expect(again.stdout.trim()).toBe('sent 0, deferred 0, failed 0');
      expect(relay.messages).toHaveLength(2);
    } finally {
      relay.beforeAnswer = null;
      child.kill('SIGKILL');
    }
  }, 90_000);
});

describe('nothing is sent for what was not committed', () => {
  let db: TestDatabase;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDatabase();
    await insertTestTicket(db.pool, 'TKT-70', 'client@example.ru');
    // a failure inside store_message's transaction, after the ticket message (and its outbox row) were written
    await db.pool.query(`create function fail_on_boom() returns trigger language plpgsql as $$
      begin raise exception 'boom: this transaction rolls back'; end $$`);
    await db.pool.query(`create trigger attachments_boom before insert on attachments
      for each row when (new.filename = 'boom.txt') execute function fail_on_boom()`);
    // OUTBOX_SEND_IN_SERVE=false: what is queued stays visible in the table
    server = await startTestServer(db.url, { NOTIFY_STAFF_TO: STAFF, OUTBOX_SEND_IN_SERVE: 'false' });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  const withAttachment = (name: string, messageId: string) =>
    [
      'From: client@example.ru',
      'To: support+TKT-70@flamecrm.ru',
      'Subject: Re: [TKT-70] files',
      `Message-ID: ${messageId}`,
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="XX"',
      '',
      '--XX',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'See the file.',
      '--XX',
      `Content-Type: text/plain; name="${name}"`,
      `Content-Disposition: attachment; filename="${name}"`,
      '',
      'contents',
      '--XX--',
      '',
    ].join('\r\n');

  it('a rolled-back message (451) queues no notification and records no Message-ID; a committed one does', async () => {
    const send = (name: string, id: string) =>
      deliver(server.port, {
        ip: '127.0.0.2',
        from: 'client@example.ru',
        to: ['support+TKT-70@flamecrm.ru'],
        message: withAttachment(name, id),
      });
    const failed = await send('boom.txt', '<boom@example.ru>');
    expect(failed.short).toBe('451 4.3.0');
    expect(await outboxRows(db.pool)).toEqual([]);
    expect((await db.pool.query('select count(*)::int as n from notification_messages')).rows[0].n).toBe(0);
    expect((await db.pool.query('select count(*)::int as n from ticket_messages')).rows[0].n).toBe(0);

    const ok = await send('fine.txt', '<fine@example.ru>');
    expect(ok.short).toBe('250 2.0.0');
    const rows = await outboxRows(db.pool);
    expect(rows.map((r) => [r.event, r.recipient, r.status])).toEqual([['requester_reply', STAFF, 'queued']]);
    expect((await db.pool.query('select count(*)::int as n from notification_messages')).rows[0].n).toBe(1);
    // a retry of the committed message adds no second notification
    expect((await send('fine.txt', '<fine@example.ru>')).text).toMatch(/already committed/);
    expect(await outboxRows(db.pool)).toHaveLength(1);
  });

  it('a ticket created in a transaction that rolls back leaves no outbox row', async () => {
    const rules = notifyRules({
      notifyStaffTo: [STAFF],
      notifyRequester: true,
      mailDomains: ['flamecrm.ru'],
      crmWebhookUrl: null,
    });
    await expect(
      withTransaction(db.pool, async (tx) => {
        await createTicketWithMessage(
          tx,
          { id: 'TKT-71', subject: 'Never', requester: 'a@example.ru', message: { text: 'x' }, source: 'api' },
          rules,
        );
        throw new Error('the caller changed its mind');
      }),
    ).rejects.toThrow('changed its mind');
    expect((await db.pool.query("select count(*)::int as n from tickets where id = 'TKT-71'")).rows[0].n).toBe(0);
    expect(await outboxRows(db.pool)).toHaveLength(1);
  });

  it('/metrics shows the queue depth and the age of the oldest due row', async () => {
    await db.pool.query("update outbox set next_attempt_at = now() - interval '90 seconds'");
    const text = await (await fetch(`http://127.0.0.1:${server.httpPort}/metrics`)).text();
    expect(text).toMatch(/^ticketmx_outbox_queue_depth\{kind="mail"\} 1$/m);
    const age = Number(/^ticketmx_outbox_oldest_due_seconds\{kind="mail"\} ([\d.]+)$/m.exec(text)?.[1]);
    expect(age).toBeGreaterThanOrEqual(90);
    expect(age).toBeLessThan(200);
  });
});

describe('TLS to the relay', () => {
  let dir: string;
  let relay: TestRelay;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ticket-mx-relay-tls-'));
    // a self-signed certificate made for this run: no CA vouches for it
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=relay.test'].concat([
        '-keyout',
        path.join(dir, 'key.pem'),
        '-out',
        path.join(dir, 'cert.pem'),
      ]),
      { stdio: 'ignore' },
    );
    relay = await startRelay({
      tls: { key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) },
    });
  });
  afterAll(async () => {
    await relay?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const attempt = async (verify: string) => {
    const config = loadConfig({
      MAIL_DOMAINS: 'flamecrm.ru',
      OUTBOUND_SMTP_URL: relay.url,
      OUTBOUND_SMTP_TLS_VERIFY: verify,
    });
    const delivery = mailDelivery(null as never, {
      config,
      templates: null as never,
      verpSecret: 'k'.repeat(32),
      dkim: null,
    });
    const row = { id: '1', recipient: 'someone@example.ru' } as ClaimedRow;
    const content = Buffer.from('From: support@flamecrm.ru\r\nSubject: tls\r\n\r\nhello\r\n');
    try {
      return await delivery.deliver(row, content, new AbortController().signal);
    } finally {
      await delivery.close();
    }
  };

  it('verifies the certificate by default: a self-signed relay is retried, never sent to in the clear', async () => {
    const result = await attempt('true');
    expect(result.outcome).toBe('deferred');
    expect(result.reply).toMatch(/self[- ]signed certificate/);
    expect(relay.messages).toHaveLength(0);
  });

  it('OUTBOUND_SMTP_TLS_VERIFY=false accepts it (smtps://, user and password from the URL)', async () => {
    const result = await attempt('false');
    expect(result).toMatchObject({ outcome: 'sent' });
    expect(relay.messages).toHaveLength(1);
  });
});

describe("values from mail and the CRM are one line in a notification's headers and lines", () => {
  let db: TestDatabase;
  let relay: TestRelay;
  let server: TestServer;
  let templates: string;
  const injected = 'Hi\r\nBcc: x@evil.example\r\n\tX-Injected: 1\u0085\u2028end';
  const word = (s: string) => `=?utf-8?b?${Buffer.from(s).toString('base64')}?=`;

  beforeAll(async () => {
    db = await createTestDatabase();
    // a CRM title with a newline in it, as the CRM's own table may hold one
    await insertTestTicket(db.pool, 'TKT-80', 'client@example.ru', 'Printer\nBcc: crm@evil.example');
    relay = await startRelay();
    // an operator's template that puts the author's display name and the message's subject in headers
    templates = fs.mkdtempSync(path.join(os.tmpdir(), 'ticket-mx-templates-'));
    fs.mkdirSync(path.join(templates, 'en'));
    fs.writeFileSync(
      path.join(templates, 'en', 'requester-reply.txt'),
      'Subject: Re: [{{ticketId}}] {{subject}}\nFrom-Name: {{author}} via Support\n\n' +
        'Author: {{author}}\nTicket: {{ticketSubject}}\nSubject: {{subject}}\n\n{{text}}\n',
    );
    server = await startTestServer(db.url, {
      OUTBOUND_SMTP_URL: relay.url,
      NOTIFY_STAFF_TO: STAFF,
      NOTIFY_LANGUAGE: 'en',
      TEMPLATES_DIR: templates,
    });
  });
  afterAll(async () => {
    await server?.close();
    await relay?.close();
    await db?.drop();
    if (templates) fs.rmSync(templates, { recursive: true, force: true });
  });

  /** The header block of the raw bytes, each field unfolded onto one line. */
  const headerLines = (raw: Buffer) =>
    raw
      .toString('latin1')
      .split('\r\n\r\n')[0]!
      .replace(/\r\n[ \t]/g, ' ')
      .split('\r\n');

  it('an encoded-word subject and display name with CR/LF: one Subject, no injected field, one line of text', async () => {
    const r = await deliver(server.port, {
      ip: '127.0.0.2',
      from: 'client@example.ru',
      to: ['support+TKT-80@flamecrm.ru'],
      message: [
        `From: ${word('Eve\r\nBcc: name@evil.example')} <client@example.ru>`,
        'To: support+TKT-80@flamecrm.ru',
        `Subject: ${word(injected)}`,
        'Message-ID: <one-line-1@example.ru>',
        'MIME-Version: 1.0',
        'Content-Type: text/plain; charset=utf-8',
        '',
        'The printer prints blank pages.',
        '',
      ].join('\r\n'),
    });
    expect(r.short, r.text).toBe('250 2.0.0');
    const [relayed] = await relay.waitFor(1);
    const fields = headerLines(relayed!.raw);
    expect(fields.filter((l) => /^subject:/i.test(l))).toHaveLength(1);
    expect(fields.filter((l) => /^from:/i.test(l))).toHaveLength(1);
    expect(fields.filter((l) => /^(bcc|x-injected):/i.test(l))).toEqual([]);

    const mail = await simpleParser(relayed!.raw);
    expect(mail.subject).toBe('Re: [TKT-80] Hi Bcc: x@evil.example X-Injected: 1 end');
    expect(mail.from?.value[0]).toEqual({
      name: 'Eve Bcc: name@evil.example <client@example.ru> via Support',
      address: 'support@flamecrm.ru',
    });
    const lines = (mail.text ?? '').split('\n');
    expect(lines).toContain('Author: Eve Bcc: name@evil.example <client@example.ru>');
    expect(lines).toContain('Ticket: Printer Bcc: crm@evil.example');
    expect(lines).toContain('Subject: Hi Bcc: x@evil.example X-Injected: 1 end');
    expect(lines.filter((l) => /^\s*(bcc|x-injected):/i.test(l))).toEqual([]);
    expect(mail.html).toContain('Subject: Hi Bcc: x@evil.example X-Injected: 1 end</p>');
  });

  it("the CRM's title with a newline: the built-in template's Subject and lines stay one line each", async () => {
    await insertTestTicket(db.pool, 'TKT-81', 'client@example.ru', 'Printer\r\n\r\nBcc: crm@evil.example\u000b!');
    const { rows } = await db.pool.query("select id, subject, requester, status from tickets where id = 'TKT-81'");
    const rules = notifyRules({
      notifyStaffTo: [STAFF],
      notifyRequester: true,
      mailDomains: ['flamecrm.ru'],
      crmWebhookUrl: null,
    });
    await withTransaction(db.pool, (tx) => queueOutbox(tx, ticketCreatedNotifications(rows[0], rules)));
    const relayed = (await relay.waitFor(2))[1]!;
    const fields = headerLines(relayed.raw);
    expect(fields.filter((l) => /^subject:/i.test(l))).toHaveLength(1);
    expect(fields.filter((l) => /^bcc:/i.test(l))).toEqual([]);
    const mail = await readMail(relayed.raw);
    expect(mail.subject).toBe('[TKT-81] Printer Bcc: crm@evil.example !');
    expect(mail.text.split('\n')).toContain('Subject: Printer Bcc: crm@evil.example !');
    expect(mail.text.split('\n').filter((l) => /^bcc:/i.test(l))).toEqual([]);
  });
});
