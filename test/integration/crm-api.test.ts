// README "Connecting a CRM", done as a CRM team would with only the README: ticket-mx in the CRM's
// database with the CRM's Prisma-style "SupportTicket" table behind the tickets view; a ticket
// created over HTTP (a CRM row, the staff notification at the test's SMTP relay); the agent's
// answer posted to the API reaches the customer's mailbox threaded; the customer's reply comes
// back over SMTP to the bare support@ address; and every message reaches the CRM's endpoint as a
// signed webhook, verified as the README says.
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhook } from '../../src/outbox/webhook-signature.js';
import { PROJECT_ROOT } from '../../src/paths.js';
import { PRISMA_DDL } from '../helpers/crm.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { readMail } from '../helpers/outbox.js';
import { startRelay, type TestRelay } from '../helpers/relay.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, deliver } from '../helpers/smtp-client.js';
import { startReceiver, type TestReceiver } from '../helpers/webhook-receiver.js';

const TOKEN = `tmx_${'c'.repeat(40)}`;
const SECRET = 'crm-secret-0123456789abcdef0123456789ab';
const STAFF = 'info@flamecrm.ru';
const CUSTOMER = 'client@example.ru';

let db: TestDatabase;
let crm: pg.Client;
let relay: TestRelay;
let receiver: TestReceiver;
let server: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  crm = new pg.Client({ connectionString: db.plainUrl });
  await crm.connect();
  await crm.query(PRISMA_DDL);
  await crm.query(fs.readFileSync(path.join(PROJECT_ROOT, 'deploy', 'crm-view.sql'), 'utf8'));
  relay = await startRelay();
  receiver = await startReceiver();
  server = await startTestServer(db.url, {
    TICKET_CLOSED_STATUSES: 'CLOSED',
    OUTBOUND_SMTP_URL: relay.url,
    NOTIFY_STAFF_TO: STAFF,
    API_TOKEN: TOKEN,
    CRM_WEBHOOK_URL: receiver.url,
    CRM_WEBHOOK_SECRET: SECRET,
  });
});

afterAll(async () => {
  await server?.close();
  await receiver?.close();
  await relay?.close();
  await crm?.end();
  await db?.drop();
});

const api = async (method: string, url: string, body?: unknown) => {
  const res = await fetch(`http://127.0.0.1:${server.httpPort}/v1${url}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, json: JSON.parse(await res.text()) };
};

/** The webhooks received so far, each verified as README "Webhook to the CRM" says. */
const events = () =>
  receiver.received.map((r) => {
    const verdict = verifyWebhook(SECRET, r.body, {
      timestamp: r.headers['x-ticketmx-timestamp'] as string,
      signature: r.headers['x-ticketmx-signature'] as string,
    });
    expect(verdict).toEqual({ ok: true });
    return JSON.parse(r.body.toString('utf8'));
  });
const uniqueEvents = () => [...new Map(events().map((e) => [e.id, e])).values()];

describe('a CRM connected with the README', () => {
  let ticketId: string;
  let address: string;

  it('creates a ticket over HTTP: a row in the CRM table, staff notified, a webhook for the first message', async () => {
    const created = await api('POST', '/tickets', {
      subject: 'Принтер горит',
      requester: CUSTOMER,
      message: { text: 'Принтер в кабинете 12 горит.' },
    });
    expect(created.status).toBe(201);
    ticketId = created.json.ticket.id;
    address = created.json.replyAddress;
    expect(ticketId).toMatch(/^TKT-\d+$/);
    expect(address).toBe(`support+${ticketId}@flamecrm.ru`);
    const { rows } = await crm.query(
      'select "title", "customerEmail", "status" from "SupportTicket" where "number" = $1',
      [Number(ticketId.slice(4))],
    );
    expect(rows).toEqual([{ title: 'Принтер горит', customerEmail: CUSTOMER, status: 'OPEN' }]);

    const [toStaff] = await relay.waitFor(1);
    expect(toStaff!.to).toEqual([STAFF]);
    expect((await readMail(toStaff!.raw)).text).toContain('Принтер в кабинете 12 горит.');

    await expect.poll(() => uniqueEvents().length, { timeout: 20_000 }).toBe(1);
    expect(uniqueEvents()[0]).toMatchObject({
      ticket: { id: ticketId, subject: 'Принтер горит', requester: CUSTOMER, status: 'OPEN' },
      message: { role: 'requester', from: CUSTOMER, text: 'Принтер в кабинете 12 горит.', source: 'api' },
    });
  });

  it("answers from the CRM into the customer's mailbox, and the customer's reply comes back threaded", async () => {
    const first = await api('POST', `/tickets/${ticketId}/messages`, {
      author: { address: 'anna@flamecrm.ru', name: 'Анна' },
      text: 'Уже бежим с огнетушителем.',
    });
    expect(first.status).toBe(201);
    const [, toCustomer] = await relay.waitFor(2);
    expect(toCustomer!.to).toEqual([CUSTOMER]);
    const mail = await readMail(toCustomer!.raw);
    expect(mail.replyTo).toBe(address);
    expect(mail.subject).toContain(`[${ticketId}]`);
    expect(mail.text).toContain('Уже бежим с огнетушителем.');

    // the customer hits Reply: to the address in Reply-To, threaded under our mail
    const reply = await deliver(server.port, {
      from: CUSTOMER,
      to: ['support@flamecrm.ru'],
      message: buildMessage({
        from: `Клиент <${CUSTOMER}>`,
        to: 'support@flamecrm.ru',
        subject: `Re: ${mail.subject}`,
        messageId: '<customer-1@mail.example.ru>',
        headers: [`In-Reply-To: ${mail.messageId}`, `References: ${mail.messageId}`],
        body: 'Спасибо, потушили!\n\n> Уже бежим с огнетушителем.',
      }),
    });
    expect(reply.short, reply.text).toBe('250 2.0.0');

    const second = await api('POST', `/tickets/${ticketId}/messages`, {
      author: { address: 'anna@flamecrm.ru' },
      text: 'Рады помочь. Закрываем тикет.',
    });
    expect(second.status).toBe(201);
    const toCustomerAgain = (await relay.waitFor(4)).find((m) => m.to[0] === CUSTOMER && m !== toCustomer)!;
    const threaded = await readMail(toCustomerAgain.raw);
    expect(threaded.inReplyTo).toBe('<customer-1@mail.example.ru>');
    expect(threaded.references).toEqual([mail.messageId, '<customer-1@mail.example.ru>']);

    const shown = await api('GET', `/tickets/${ticketId}`);
    expect(shown.json.messages.map((m: { role: string; text: string }) => [m.role, m.text])).toEqual([
      ['requester', 'Принтер в кабинете 12 горит.'],
      ['staff', 'Уже бежим с огнетушителем.'],
      ['requester', 'Спасибо, потушили!'],
      ['staff', 'Рады помочь. Закрываем тикет.'],
    ]);
  });

  it('the CRM got one signed webhook per message, in any order, each once', async () => {
    await expect.poll(() => uniqueEvents().length, { timeout: 20_000 }).toBe(4);
    const shown = await api('GET', `/tickets/${ticketId}?full=true`);
    const byMessage = new Map(uniqueEvents().map((e) => [e.message.id, e.message]));
    for (const m of shown.json.messages) expect(byMessage.get(m.id)).toEqual(m);
    expect(uniqueEvents().find((e) => e.message.source === 'smtp')!.message).toMatchObject({
      from: CUSTOMER,
      text: 'Спасибо, потушили!',
      messageId: '<customer-1@mail.example.ru>',
    });
  });

  it('a ticket the CRM closes takes no more answers over HTTP, and no more mail', async () => {
    await crm.query(`update "SupportTicket" set "status" = 'CLOSED' where "number" = $1`, [Number(ticketId.slice(4))]);
    const refused = await api('POST', `/tickets/${ticketId}/messages`, {
      author: { address: 'anna@flamecrm.ru' },
      text: 'Ещё одно.',
    });
    expect(refused.status).toBe(409);
    expect(refused.json).toMatchObject({ code: 'TICKET_CLOSED', status: 409 });
  });
});
