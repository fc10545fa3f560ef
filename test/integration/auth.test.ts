// Who may write to a ticket, decided inside the SMTP dialogue: real server, real PostgreSQL, DNS
// answered by a loopback DNS server through DNS_SERVERS, DKIM-signed and ARC-sealed mail, and
// clients bound to different loopback addresses to be different senders' servers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { macFor } from '../../src/mail/address.js';
import { cleanEnv, runCli } from '../helpers/cli.js';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { loadZones, publishDkimKey, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { arcForwarded, dkimSigned } from '../helpers/mail-auth.js';
import { SMTP_ZONES, startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, deliver, SmtpClient } from '../helpers/smtp-client.js';

let db: TestDatabase;
let dns: TestDnsServer;
let enforce: TestServer;
let monitor: TestServer;
const keys: Record<string, string> = {};

const AUTH_ENV = {
  STAFF_SENDERS: '@flamecrm.ru,boss@dns-timeout.ru',
  ARC_TRUSTED_SEALERS: 'forwarder.test',
  DNS_TIMEOUT_MS: '200',
};

beforeAll(async () => {
  db = await createTestDatabase();
  dns = await startDnsServer(loadZones(SMTP_ZONES));
  keys.flamecrm = publishDkimKey(dns, 'flamecrm.ru', 'mail');
  keys.example = publishDkimKey(dns, 'example.ru', 'mail');
  keys.unrelated = publishDkimKey(dns, 'unrelated.test', 'esp');
  keys.forwarder = publishDkimKey(dns, 'forwarder.test', 'arc');
  keys.untrusted = publishDkimKey(dns, 'untrusted-forwarder.test', 'arc');
  await insertTestTicket(db.pool, 'TKT-1001', 'client@example.ru');
  enforce = await startTestServer(db.url, { ...AUTH_ENV, AUTH_POLICY: 'enforce' }, dns);
  monitor = await startTestServer(db.url, { ...AUTH_ENV, AUTH_POLICY: 'monitor' }, dns);
});

afterAll(async () => {
  await enforce?.close();
  await monitor?.close();
  await dns?.close();
  await db?.drop();
});

interface Case {
  name: string;
  ip: string;
  mailFrom: string;
  message: () => Promise<Buffer>;
  enforce: string;
  verdict: string;
  authenticatedBy?: string | null;
  role: string;
}

let n = 0;
const mail = (from: string, body = 'Готово, проверьте.') =>
  Buffer.from(
    buildMessage({ from, to: 'support+TKT-1001@flamecrm.ru', messageId: `<auth-${++n}-${Date.now()}@test>`, body }),
  );

const cases: Case[] = [
  {
    name: 'staff with aligned DKIM, even from a server SPF does not list',
    ip: '127.0.0.9',
    mailFrom: 'ivan@flamecrm.ru',
    message: () => dkimSigned(mail('Иван <ivan@flamecrm.ru>'), 'flamecrm.ru', 'mail', keys.flamecrm!),
    enforce: '250 2.0.0',
    verdict: 'AUTH_ACCEPTED',
    authenticatedBy: 'dmarc',
    role: 'staff',
  },
  {
    name: 'staff with SPF only, aligned',
    ip: '127.0.0.1',
    mailFrom: 'ivan@flamecrm.ru',
    message: async () => mail('ivan@flamecrm.ru'),
    enforce: '250 2.0.0',
    verdict: 'AUTH_ACCEPTED',
    authenticatedBy: 'dmarc',
    role: 'staff',
  },
  {
    name: 'DKIM of an unrelated domain only',
    ip: '127.0.0.9',
    mailFrom: 'bounce@unrelated.test',
    message: () => dkimSigned(mail('ivan@flamecrm.ru'), 'unrelated.test', 'esp', keys.unrelated!),
    enforce: '550 5.7.26',
    verdict: 'AUTH_UNAUTHENTICATED',
    role: 'staff',
  },
  {
    name: 'forged staff From against p=reject',
    ip: '127.0.0.9',
    mailFrom: 'ivan@flamecrm.ru',
    message: async () => mail('ivan@flamecrm.ru'),
    enforce: '550 5.7.26',
    verdict: 'AUTH_UNAUTHENTICATED',
    role: 'staff',
  },
  {
    name: 'the requester, SPF aligned',
    ip: '127.0.0.2',
    mailFrom: 'client@example.ru',
    message: async () => mail('Client <client@example.ru>'),
    enforce: '250 2.0.0',
    verdict: 'AUTH_ACCEPTED',
    role: 'requester',
  },
  {
    name: 'an authenticated stranger',
    ip: '127.0.0.3',
    mailFrom: 'someone@stranger.org',
    message: async () => mail('someone@stranger.org'),
    enforce: '550 5.7.1',
    verdict: 'AUTH_NOT_ALLOWED',
    role: 'stranger',
  },
  {
    name: "the requester's reply forwarded by a trusted ARC sealer",
    ip: '127.0.0.4',
    mailFrom: 'bounces@forwarder.test',
    message: async () =>
      arcForwarded(
        await dkimSigned(mail('client@example.ru'), 'example.ru', 'mail', keys.example!),
        { ip: '127.0.0.2', helo: 'mail.example.ru', mailFrom: 'client@example.ru' },
        { domain: 'forwarder.test', selector: 'arc', privateKey: keys.forwarder! },
        dns,
      ),
    enforce: '250 2.0.0',
    verdict: 'AUTH_ACCEPTED',
    authenticatedBy: 'arc',
    role: 'requester',
  },
  {
    name: 'the same forward sealed by an untrusted sealer',
    ip: '127.0.0.5',
    mailFrom: 'bounces@untrusted-forwarder.test',
    message: async () =>
      arcForwarded(
        await dkimSigned(mail('client@example.ru'), 'example.ru', 'mail', keys.example!),
        { ip: '127.0.0.2', helo: 'mail.example.ru', mailFrom: 'client@example.ru' },
        { domain: 'untrusted-forwarder.test', selector: 'arc', privateKey: keys.untrusted! },
        dns,
      ),
    enforce: '550 5.7.26',
    verdict: 'AUTH_UNAUTHENTICATED',
    role: 'requester',
  },
  {
    name: 'staff whose domain DNS does not answer',
    ip: '127.0.0.9',
    mailFrom: 'boss@dns-timeout.ru',
    message: async () => mail('boss@dns-timeout.ru'),
    // SPF alone: a DMARC pass does not authenticate staff without an identifier of their domain
    // itself (AUTH_STAFF_SUBDOMAIN), so the DMARC record that timed out too decides nothing
    enforce: '451 4.7.24',
    verdict: 'AUTH_DNS_TEMPORARY',
    role: 'staff',
  },
];

async function storedFor(messageId: string) {
  const { rows } = await db.pool.query(
    'select author_role, auth_verdict, auth_reason, auth_results, auth_header from ticket_messages where message_id = $1',
    [messageId],
  );
  return rows;
}

const messageIdOf = (message: Buffer) => /^Message-ID: (<[^>]+>)/im.exec(message.toString())![1]!;

describe('AUTH_POLICY=enforce', () => {
  it.each(cases)('$name → $enforce', async (c) => {
    const message = await c.message();
    const r = await deliver(enforce.port, {
      ip: c.ip,
      from: c.mailFrom,
      to: ['support+TKT-1001@flamecrm.ru'],
      message,
    });
    expect(r.short).toBe(c.enforce);
    const logged = enforce.logs.filter((l) => l.messageId === messageIdOf(message)).at(-1);
    expect(logged).toMatchObject({ auth: c.verdict, role: c.role, ip: c.ip });
    const stored = await storedFor(messageIdOf(message));
    if (c.enforce.startsWith('250')) {
      expect(stored).toHaveLength(1);
      expect(stored[0]).toMatchObject({ author_role: c.role, auth_verdict: c.verdict });
      if (c.authenticatedBy) expect(stored[0].auth_results.decision.authenticatedBy).toBe(c.authenticatedBy);
      expect(stored[0].auth_header).toMatch(/Authentication-Results: mx\.test\.flamecrm\.ru;/);
    } else {
      expect(stored).toHaveLength(0);
      expect(r.text.length).toBeGreaterThan(20); // a reason a human can act on
    }
  });

  it('explains a refusal in words', async () => {
    const r = await deliver(enforce.port, {
      ip: '127.0.0.3',
      from: 'someone@stranger.org',
      to: ['support+TKT-1001@flamecrm.ru'],
      message: mail('someone@stranger.org'),
    });
    expect(r.text).toBe('<someone@stranger.org> is not allowed to write to this ticket');
    const forged = await deliver(enforce.port, {
      ip: '127.0.0.9',
      from: 'ivan@flamecrm.ru',
      to: ['support+TKT-1001@flamecrm.ru'],
      message: mail('ivan@flamecrm.ru'),
    });
    expect(forged.text).toBe('Message not authenticated: DMARC check failed for flamecrm.ru (p=reject)');
  });

  it.each([
    ['several From addresses', 'ivan@flamecrm.ru, anna@flamecrm.ru', '550 5.7.1'],
    ['no From at all', null, '550 5.7.1'],
  ])('refuses a message with %s', async (_name, from, expected) => {
    let message = buildMessage({ from: from ?? 'x@y', messageId: `<from-${++n}@test>` });
    if (from === null) message = message.replace(/^From: .*\r\n/m, '');
    const r = await deliver(enforce.port, {
      ip: '127.0.0.1',
      from: 'ivan@flamecrm.ru',
      to: ['support+TKT-1001@flamecrm.ru'],
      message,
    });
    expect(r.short).toBe(expected);
  });
});

describe('AUTH_POLICY=monitor', () => {
  it.each(cases)('$name → accepted, verdict $verdict recorded', async (c) => {
    const message = await c.message();
    const r = await deliver(monitor.port, {
      ip: c.ip,
      from: c.mailFrom,
      to: ['support+TKT-1001@flamecrm.ru'],
      message,
    });
    expect(r.short).toBe('250 2.0.0');
    const stored = await storedFor(messageIdOf(message));
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ author_role: c.role, auth_verdict: c.verdict });
    expect(stored[0].auth_results.decision).toMatchObject({
      policy: 'monitor',
      verdict: 'accept',
      wouldReject: !c.enforce.startsWith('250'),
    });
    expect(stored[0].auth_results.spf).toMatchObject({ result: expect.any(String), domain: expect.any(String) });
    expect(stored[0].auth_reason).toEqual(expect.any(String));
  });

  it('shows the verdicts in ticket show, and as data in --json', async () => {
    const env = cleanEnv({ DATABASE_URL: db.url, MAIL_DOMAINS: 'flamecrm.ru' });
    const json = JSON.parse((await runCli(['ticket', 'show', 'TKT-1001', '--json'], env)).stdout);
    const stranger = json.messages.find((m: { from: string }) => m.from === 'someone@stranger.org');
    expect(stranger.auth).toMatchObject({
      verdict: 'AUTH_NOT_ALLOWED',
      results: { spf: { result: 'pass', domain: 'stranger.org' }, decision: { policy: 'monitor', wouldReject: true } },
    });
    expect(stranger.auth.header).toMatch(/^Received-SPF: pass|Authentication-Results:/m);
    const human = (await runCli(['ticket', 'show', 'TKT-1001'], env)).stdout;
    expect(human).toContain('auth: spf=pass (stranger.org, aligned) dkim=none dmarc=none arc=none');
    expect(human).toContain(
      'decision: AUTH_NOT_ALLOWED (accepted because AUTH_POLICY=monitor): someone@stranger.org is neither staff',
    );
  });
});

describe('signed reply addresses', () => {
  let signed: TestServer;
  let rotated: TestServer;
  let migrating: TestServer;
  beforeAll(async () => {
    signed = await startTestServer(db.url, { REPLY_ADDRESS_SECRET: 'new-secret-0123456789' }, dns);
    rotated = await startTestServer(
      db.url,
      { REPLY_ADDRESS_SECRET: 'newer-secret-0123456789', REPLY_ADDRESS_SECRET_PREVIOUS: 'new-secret-0123456789' },
      dns,
    );
    migrating = await startTestServer(
      db.url,
      { REPLY_ADDRESS_SECRET: 'new-secret-0123456789', REPLY_ADDRESS_UNSIGNED: 'accept' },
      dns,
    );
  });
  afterAll(async () => {
    await signed?.close();
    await rotated?.close();
    await migrating?.close();
  });

  const rcpt = async (server: TestServer, address: string) => {
    const client = await SmtpClient.connect(server.port);
    await client.command('EHLO x');
    await client.command('MAIL FROM:<ivan@flamecrm.ru>');
    const r = await client.command(`RCPT TO:<${address}>`);
    await client.quit();
    return r;
  };
  const mac = macFor('TKT-1001', 'new-secret-0123456789');
  const tampered = mac.slice(0, -1) + (mac.endsWith('0') ? '1' : '0');

  it.each([
    ['signed', `support+TKT-1001.${mac}@flamecrm.ru`, '250 2.1.5', 'RCPT_TICKET'],
    [
      'signed, lowercased by the client',
      `support+tkt-1001.${mac.toLowerCase()}@flamecrm.ru`,
      '250 2.1.5',
      'RCPT_TICKET',
    ],
    ['tampered MAC', `support+TKT-1001.${tampered}@flamecrm.ru`, '550 5.1.1', 'RCPT_BAD_SIGNATURE'],
    ["another ticket's MAC", `support+TKT-1002.${mac}@flamecrm.ru`, '550 5.1.1', 'RCPT_BAD_SIGNATURE'],
    ['unsigned', 'support+TKT-1001@flamecrm.ru', '550 5.1.1', 'RCPT_UNSIGNED'],
  ])('%s → %s', async (_name, address, expected, code) => {
    const r = await rcpt(signed, address);
    expect(r.short).toBe(expected);
    expect(signed.logs.filter((l) => l.rcpt === address).at(-1)).toMatchObject({ code });
  });

  it('does not touch the database for a bad MAC (no ticket oracle)', async () => {
    const r = await rcpt(signed, `support+TKT-999999.${tampered}@flamecrm.ru`);
    expect(r.text).not.toContain('TKT-999999');
  });

  it('keeps addresses signed with the previous secret working after a rotation', async () => {
    expect((await rcpt(rotated, `support+TKT-1001.${mac}@flamecrm.ru`)).short).toBe('250 2.1.5');
    expect(
      (await rcpt(rotated, `support+TKT-1001.${macFor('TKT-1001', 'newer-secret-0123456789')}@flamecrm.ru`)).short,
    ).toBe('250 2.1.5');
    expect(
      (await rcpt(rotated, `support+TKT-1001.${macFor('TKT-1001', 'some-other-secret-0123')}@flamecrm.ru`)).short,
    ).toBe('550 5.1.1');
  });

  it('accepts unsigned addresses only while migrating (REPLY_ADDRESS_UNSIGNED=accept)', async () => {
    expect((await rcpt(migrating, 'support+TKT-1001@flamecrm.ru')).short).toBe('250 2.1.5');
    expect((await rcpt(migrating, `support+TKT-1001.${tampered}@flamecrm.ru`)).short).toBe('550 5.1.1');
  });
});

describe('per-IP limits', () => {
  let limited: TestServer;
  beforeAll(async () => {
    limited = await startTestServer(
      db.url,
      { SMTP_MAX_CONNECTIONS_PER_IP: '2', SMTP_MAX_MESSAGES_PER_IP_PER_MINUTE: '3' },
      dns,
    );
  });
  afterAll(async () => limited?.close());

  it('refuses a third concurrent connection from one IP with 421 and keeps serving other IPs', async () => {
    const a = await SmtpClient.connect(limited.port, '127.0.0.1', '127.0.0.6');
    const b = await SmtpClient.connect(limited.port, '127.0.0.1', '127.0.0.6');
    const c = await SmtpClient.connect(limited.port, '127.0.0.1', '127.0.0.6');
    expect([a.greeting.code, b.greeting.code]).toEqual([220, 220]);
    expect(c.greeting.short).toBe('421 4.7.0');
    const other = await SmtpClient.connect(limited.port, '127.0.0.1', '127.0.0.7');
    expect(other.greeting.code).toBe(220);
    expect((await other.command('EHLO x')).code).toBe(250);
    await a.quit();
    // a slot freed by QUIT can be used again
    await expect
      .poll(async () => {
        const d = await SmtpClient.connect(limited.port, '127.0.0.1', '127.0.0.6');
        const code = d.greeting.code;
        await d.quit();
        return code;
      })
      .toBe(220);
    await Promise.all([b.quit(), c.quit(), other.quit()]);
    expect(limited.logsWithCode('CONNECT_TOO_MANY').length).toBeGreaterThan(0);
  });

  it('answers 450 4.7.1 past the message rate of one IP, and other IPs still get through', async () => {
    const client = await SmtpClient.connect(limited.port, '127.0.0.1', '127.0.0.8');
    await client.command('EHLO x');
    const replies = [];
    for (let i = 0; i < 4; i++) {
      replies.push((await client.command('MAIL FROM:<ivan@flamecrm.ru>')).short);
      await client.command('RSET');
    }
    await client.quit();
    expect(replies).toEqual(['250 2.1.0', '250 2.1.0', '250 2.1.0', '450 4.7.1']);
    const r = await deliver(limited.port, {
      ip: '127.0.0.1',
      from: 'ivan@flamecrm.ru',
      to: ['support+TKT-1001@flamecrm.ru'],
      message: mail('ivan@flamecrm.ru'),
    });
    expect(r.short).toBe('250 2.0.0');
  });
});

describe('the SMTP surface', () => {
  it('refuses an over-long command line and keeps the server up', async () => {
    const client = await SmtpClient.connect(enforce.port);
    await client.command('EHLO x');
    const r = await client.command(`MAIL FROM:<${'a'.repeat(3000)}@flamecrm.ru>`);
    expect(r.code).toBe(421);
    client.destroy();
    const ok = await SmtpClient.connect(enforce.port);
    expect(ok.greeting.code).toBe(220);
    await ok.quit();
  });
});
