// The CRM webhook through the outbox, against a real HTTP receiver started here: a reply over SMTP
// is POSTed signed; a receiver that times out once and fails once gets the same event (same id,
// same bytes) three times and the signature of each attempt verifies; a receiver that stays down
// leaves the event queued, and a later ticket-mx delivers it once the receiver is back; a staff
// answer posted to the API gets its webhook too; deploy/crm-webhook.mjs, run as the CRM, verifies.
// A CRM that never answers holds back no mail (each kind has its own slots), and after its timeouts
// webhooks go one at a time until one is delivered.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/db/embedded.js';
import { verifyWebhook } from '../../src/outbox/webhook-signature.js';
import { PROJECT_ROOT } from '../../src/paths.js';
import { cleanEnv } from '../helpers/cli.js';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { waitForStatus } from '../helpers/outbox.js';
import { startRelay } from '../helpers/relay.js';
import { startTestServer } from '../helpers/server.js';
import { buildMessage, deliver } from '../helpers/smtp-client.js';
import { startReceiver } from '../helpers/webhook-receiver.js';

const SECRET = 'webhook-secret-0123456789abcdef0123456789';
const TOKEN = `tmx_${'w'.repeat(40)}`;

const settings = (url: string) => ({
  CRM_WEBHOOK_URL: url,
  CRM_WEBHOOK_SECRET: SECRET,
  CRM_WEBHOOK_TIMEOUT: '500ms',
  OUTBOX_RETRY_DELAY: '200ms',
  API_TOKEN: TOKEN,
  NOTIFY_STAFF_TO: '',
  TICKET_MAX_MESSAGES_PER_HOUR: '0',
});

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await insertTestTicket(db.pool, 'TKT-500', 'client@example.ru', 'Printer on fire');
});

afterAll(async () => {
  await db?.drop();
});

const webhookRows = async (ticketId: string) =>
  (
    await db.pool.query<{ id: string; status: string; attempts: number; last_reply: string | null; event_id: string }>(
      `select id, status, attempts, last_reply, payload->>'eventId' as event_id
         from outbox where kind = 'webhook' and ticket_id = $1 order by id`,
      [ticketId],
    )
  ).rows;

describe('a reply over SMTP, a receiver that times out, then fails, then takes it', () => {
  it('delivers one event id three times, the same bytes, each attempt signed', async () => {
    const receiver = await startReceiver();
    receiver.answer = (n) => (n === 0 ? 'hang' : n === 1 ? 503 : 204);
    const server = await startTestServer(db.url, settings(receiver.url));
    try {
      const sent = await deliver(server.port, {
        from: 'client@example.ru',
        to: ['support+TKT-500@flamecrm.ru'],
        message: buildMessage({
          from: 'Client <client@example.ru>',
          to: 'support+TKT-500@flamecrm.ru',
          subject: 'Re: Printer on fire',
          messageId: '<webhook-1@example.ru>',
          body: 'It is still burning.\n\n> quoted notification',
        }),
      });
      expect(sent.short).toBe('250 2.0.0');
      const [row] = await webhookRows('TKT-500');
      expect(row).toMatchObject({ status: expect.stringMatching(/queued|sending|sent/) });
      const done = await waitForStatus(db.pool, row!.id, 'sent');
      expect(done.attempts).toBe(3);
      const got = await receiver.waitFor(3);
      expect(got).toHaveLength(3);

      const eventId = row!.event_id;
      for (const r of got) {
        expect(r.headers['content-type']).toBe('application/json');
        expect(r.headers['x-ticketmx-event-id']).toBe(eventId);
        expect(r.body.equals(got[0]!.body)).toBe(true);
        const verdict = verifyWebhook(SECRET, r.body, {
          timestamp: r.headers['x-ticketmx-timestamp'] as string,
          signature: r.headers['x-ticketmx-signature'] as string,
        });
        expect(verdict).toEqual({ ok: true });
      }
      // a wrong secret does not verify: the signature is really over these bytes with this key
      const h = got[0]!.headers;
      expect(
        verifyWebhook(`${SECRET}x`, got[0]!.body, {
          timestamp: h['x-ticketmx-timestamp'] as string,
          signature: h['x-ticketmx-signature'] as string,
        }).ok,
      ).toBe(false);

      const event = JSON.parse(got[0]!.body.toString('utf8'));
      const stored = (
        await db.pool.query('select id::text, received_at from ticket_messages where ticket_id = $1', ['TKT-500'])
      ).rows[0];
      expect(event).toMatchObject({
        id: eventId,
        type: 'ticket_message.created',
        ticket: { id: 'TKT-500', subject: 'Printer on fire', requester: 'client@example.ru' },
        message: {
          id: stored.id,
          from: 'client@example.ru',
          fromName: 'Client',
          role: 'requester',
          text: 'It is still burning.',
          fullText: expect.stringContaining('> quoted notification'),
          receivedAt: stored.received_at.toISOString(),
          messageId: '<webhook-1@example.ru>',
          auth: { verdict: expect.any(String) },
          source: 'smtp',
        },
      });
      // the message as the API shows it with full=true: one serializer
      const api = await fetch(`http://127.0.0.1:${server.httpPort}/v1/tickets/TKT-500?full=true`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      expect(((await api.json()) as { messages: unknown[] }).messages).toEqual([event.message]);
      // the first attempt timed out, the second got a 503: both recorded, the third delivered
      expect(server.logsWithCode('OUTBOX_DEFERRED').map((l) => l.reply)).toEqual([
        'no answer within 500 ms',
        'HTTP 503 Service Unavailable: not now (503)',
      ]);
      expect(done.last_reply).toBe('HTTP 204 No Content');
    } finally {
      await server.close();
      await receiver.close();
    }
  });
});

describe('a CRM that never answers, and mail to staff at the same time', () => {
  it('holds back no mail; after the timeouts webhooks go one at a time until one is delivered', async () => {
    await insertTestTicket(db.pool, 'TKT-503', 'client@example.ru', 'Paper jam');
    const receiver = await startReceiver();
    // the first four (as many as the slots) hang until the sender gives up; the CRM is back after that
    receiver.answer = (n) => (n < 4 ? 'hang' : 204);
    const relay = await startRelay();
    const server = await startTestServer(db.url, {
      ...settings(receiver.url),
      CRM_WEBHOOK_TIMEOUT: '10s',
      OUTBOX_RETRY_DELAY: '1h',
      OUTBOX_CONCURRENCY: '4',
      OUTBOUND_SMTP_URL: relay.url,
      NOTIFY_STAFF_TO: 'anna@flamecrm.ru,ivan@flamecrm.ru',
    });
    try {
      // eight replies: sixteen mails to staff and eight webhooks, the first four of which hang
      for (let i = 0; i < 8; i++) {
        const sent = await deliver(server.port, {
          from: 'client@example.ru',
          to: ['support+TKT-503@flamecrm.ru'],
          message: buildMessage({
            from: 'client@example.ru',
            to: 'support+TKT-503@flamecrm.ru',
            messageId: `<hang-${i}@example.ru>`,
            body: `Still jammed (${i}).`,
          }),
        });
        expect(sent.short).toBe('250 2.0.0');
      }
      const lastCommit = Date.now();
      // sharing the slots, the mails of the later replies waited for the hanging webhooks (10 s)
      await relay.waitFor(16, 5_000);
      expect(Date.now() - lastCommit).toBeLessThan(5_000);
      expect(receiver.received).toHaveLength(4);

      // all four timed out; then one webhook alone, and once it is delivered the rest together
      await receiver.waitFor(8, 30_000);
      expect(receiver.received[4]!.open, 'the fifth webhook waited for the four that hung').toBe(1);
      const rows = await webhookRows('TKT-503');
      await Promise.all(rows.slice(4).map((r) => waitForStatus(db.pool, r.id, 'sent')));
      expect(rows.slice(0, 4).map((r) => r.status)).toEqual(['queued', 'queued', 'queued', 'queued']);
      expect(server.logsWithCode('OUTBOX_ONE_AT_A_TIME')).toEqual([expect.objectContaining({ kind: 'webhook' })]);
      expect(server.logsWithCode('OUTBOX_ALL_SLOTS')).toEqual([expect.objectContaining({ kind: 'webhook' })]);
    } finally {
      await server.close();
      await relay.close();
      await receiver.close();
    }
  });
});

describe('the receiver down for longer than the test', () => {
  it('keeps the event queued, and a later ticket-mx delivers it once the receiver is back', async () => {
    await insertTestTicket(db.pool, 'TKT-501');
    const port = await freePort(); // nothing listens here
    const url = `http://127.0.0.1:${port}/hook`;
    const server = await startTestServer(db.url, settings(url));
    let eventId: string;
    try {
      const res = await fetch(`http://127.0.0.1:${server.httpPort}/v1/tickets/TKT-501/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ author: { address: 'anna@flamecrm.ru', name: 'Anna' }, text: 'On our way.' }),
      });
      expect(res.status).toBe(201);
      await expect
        .poll(async () => (await webhookRows('TKT-501'))[0]?.attempts ?? 0, { timeout: 20_000 })
        .toBeGreaterThanOrEqual(2);
    } finally {
      await server.close();
    }
    const [row] = await webhookRows('TKT-501');
    expect(row).toMatchObject({ status: 'queued', last_reply: expect.stringMatching(/ECONNREFUSED/) });
    eventId = row!.event_id;

    // the CRM is back; so is ticket-mx (a restart, another instance: the outbox is in the database)
    const receiver = await startReceiver(port);
    const again = await startTestServer(db.url, settings(url));
    try {
      await waitForStatus(db.pool, row!.id, 'sent');
      const [got] = await receiver.waitFor(1);
      expect(got!.headers['x-ticketmx-event-id']).toBe(eventId);
      expect(JSON.parse(got!.body.toString('utf8')).message).toMatchObject({
        from: 'anna@flamecrm.ru',
        role: 'staff',
        text: 'On our way.',
        source: 'api',
      });
    } finally {
      await again.close();
      await receiver.close();
    }
  });
});

describe('deploy/crm-webhook.mjs', () => {
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill();
  });

  it('is the example the README shows', () => {
    const file = fs.readFileSync(path.join(PROJECT_ROOT, 'deploy', 'crm-webhook.mjs'), 'utf8');
    const readme = fs.readFileSync(path.join(PROJECT_ROOT, 'README.md'), 'utf8');
    expect(readme).toContain(`\`\`\`js\n${file.slice(file.indexOf('import crypto'))}\`\`\``);
  });

  it('as the CRM: verifies every event, handles each once, refuses a forged one', async () => {
    await insertTestTicket(db.pool, 'TKT-502');
    const port = await freePort();
    child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'deploy', 'crm-webhook.mjs')], {
      env: cleanEnv({ CRM_WEBHOOK_SECRET: SECRET, PORT: String(port) }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d));
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    await expect.poll(() => stderr, { timeout: 10_000 }).toContain('crm-webhook: listening');
    const url = `http://127.0.0.1:${port}/`;
    const server = await startTestServer(db.url, settings(url));
    try {
      const sent = await deliver(server.port, {
        from: 'client@example.ru',
        to: ['support+TKT-502@flamecrm.ru'],
        message: buildMessage({ from: 'client@example.ru', to: 'support+TKT-502@flamecrm.ru', body: 'Any news?' }),
      });
      expect(sent.short).toBe('250 2.0.0');
      const [row] = await webhookRows('TKT-502');
      await waitForStatus(db.pool, row!.id, 'sent');
      const lines = stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l));
      expect(lines).toEqual([
        {
          event: row!.event_id,
          ticket: 'TKT-502',
          message: expect.any(String),
          from: 'client@example.ru',
          text: 'Any news?',
        },
      ]);
      // the same event again (a retry after a lost 2xx): accepted, not handled twice
      const { rows } = await db.pool.query<{ content: Buffer }>('select content from outbox where id = $1', [row!.id]);
      const body = rows[0]!.content;
      const { signWebhook } = await import('../../src/outbox/webhook-signature.js');
      const resend = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...signWebhook(SECRET, body) },
        body,
      });
      expect(resend.status).toBe(204);
      // a forged body with a signature of another secret
      const forged = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...signWebhook('not-the-secret-at-all-0123456789', body) },
        body,
      });
      expect(forged.status).toBe(401);
      expect(stdout.split('\n').filter(Boolean)).toHaveLength(1);
    } finally {
      await server.close();
    }
  });
});
