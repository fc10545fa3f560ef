// The sender-authorization policy end to end: messages DKIM-signed and ARC-sealed here, checked
// by authenticate() against the loopback DNS server (the DNS_SERVERS path), then authorize()
// under enforce and monitor. Plus the staff/requester matching rules on their own.

import { authenticate as mailauthAuthenticate, sealMessage } from 'mailauth';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthResults, authenticate } from '../../src/mail/authenticate.js';
import { type AuthDecision, type AuthPolicy, authorize, BODY_FIELDS } from '../../src/mail/authorize.js';
import { createResolver, type Resolver } from '../../src/mail/dns.js';
import { loadZones, publishDkimKey, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { dkimSigned } from '../helpers/mail-auth.js';

const MTA = 'mx.ticket-mx.test';
const TICKET_ADDRESS = 'support+TKT-1042@flamecrm.ru';
const REQUESTER = 'Client@Example.ru';
// slow-spf.test: a staff domain whose SPF record never comes back
const STAFF = ['@FlameCRM.ru', 'partner@agency.test', '@slow-spf.test'];
const TRUSTED_SEALERS = ['forwarder.test'];

let dns: TestDnsServer;
let resolver: Resolver;
const keys: Record<string, string> = {};

beforeAll(async () => {
  dns = await startDnsServer(loadZones(new URL('../../fixtures/dns/zones.json', import.meta.url)));
  resolver = createResolver({ servers: [dns.address], timeoutMs: 250, tries: 2 });
  for (const [domain, selector] of [
    ['flamecrm.ru', 'mail'],
    ['flamecrm.ru', 'slow'],
    // a subdomain delegated to a mailing service: any of its account holders may get this key applied
    ['mail.flamecrm.ru', 's1'],
    ['mail.example.ru', 's1'],
    ['example.ru', 's1'],
    ['unrelated.test', 'k1'],
    ['stranger.org', 'sel'],
    ['forwarder.test', 'arc'],
    ['forwarder.test', 'slowarc'],
    ['untrusted-forwarder.test', 'arc'],
    ['slow-spf.test', 'mail'],
  ] as const) {
    keys[`${selector}._domainkey.${domain}`] = publishDkimKey(dns, domain, selector);
  }
  // a mailing service's return path under the staff domain, its own servers in the SPF record
  dns.setRecords('bounce.flamecrm.ru', 'TXT', ['v=spf1 ip4:203.0.113.9 -all']);
  // the key exists but its lookup never comes back
  dns.setDelay('slow._domainkey.flamecrm.ru', Infinity);
  dns.setRecords('slow-spf.test', 'TXT', ['v=spf1 ip4:127.0.0.0/8 -all']);
  dns.setDelay('slow-spf.test', Infinity);
  // a delay covers the names under it: its DKIM key and DMARC record answer at once
  dns.setDelay('mail._domainkey.slow-spf.test', 1);
  dns.setDelay('_dmarc.slow-spf.test', 1);
});

afterAll(async () => {
  await dns?.close();
});

let counter = 0;
/** A reply as a mail client writes it; `from` is the raw From field value(s). */
const compose = (from: string | string[] | null, body = 'Спасибо, принтер снова печатает.\r\n'): Buffer =>
  Buffer.from(
    [
      ...[from ?? []].flat().map((value) => `From: ${value}`),
      `To: <${TICKET_ADDRESS}>`,
      'Subject: =?UTF-8?B?UmU6IFtUS1QtMTA0Ml0g0J/RgNC40L3RgtC10YA=?=',
      'Date: Tue, 14 Jan 2025 10:00:00 +0300',
      `Message-ID: <reply-${++counter}@client.test>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      body,
    ].join('\r\n'),
  );

/** The same reply without MIME-Version, Content-Type and Content-Transfer-Encoding (plain ASCII). */
const composeBare = (from: string): Buffer =>
  Buffer.from(
    compose(from, 'The printer works again.\r\n')
      .toString()
      .replace(/^(MIME-Version|Content-Type|Content-Transfer-Encoding):.*\r\n/gim, ''),
  );

/** What a third party holding the signed message adds: fields that change how its body is read. */
const addMimeFields = (signed: Buffer): Buffer =>
  Buffer.from(
    signed
      .toString('latin1')
      .replace(
        '\r\n\r\n',
        '\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-7\r\nContent-Transfer-Encoding: base64\r\n\r\n',
      ),
    'latin1',
  );

/** `headerList`: the h= fields, as a given provider signs them (mailauth's default list otherwise). */
const sign = (message: Buffer, domain: string, selector: string, headerList?: string): Promise<Buffer> => {
  const privateKey = keys[`${selector}._domainkey.${domain}`];
  if (!privateKey) throw new Error(`no test key for ${selector}._domainkey.${domain}`);
  return dkimSigned(message, domain, selector, privateKey, headerList ? { headerList } : {});
};

/** h= without any of the fields that decide how the body is read (Yandex signs so). */
const NO_MIME_SIGNED = 'from:to:subject:date:message-id';

interface Envelope {
  message: Buffer;
  ip: string;
  helo: string;
  mailFrom: string;
}

/** What a mailing list or forwarding mailbox does: check, add a footer (breaking DKIM), seal, resend. */
const forward = async (original: Envelope, sealer: string, selector = 'arc'): Promise<Envelope> => {
  const seen = await mailauthAuthenticate(original.message, {
    ip: original.ip,
    helo: original.helo,
    sender: original.mailFrom,
    mta: `mx.${sealer}`,
    resolver,
    disableBimi: true,
  });
  if (!seen.arc) throw new Error('forwarder did not evaluate ARC');
  const modified = Buffer.concat([original.message, Buffer.from('-- \r\nПереслано через список рассылки\r\n')]);
  const privateKey = keys[`${selector}._domainkey.${sealer}`];
  if (!privateKey) throw new Error(`no test key for ${selector}._domainkey.${sealer}`);
  const seal = await sealMessage(modified, {
    signingDomain: sealer,
    selector,
    privateKey,
    authResults: seen.arc.authResults ?? '',
    cv: seen.arc.status.result,
  });
  expect(seal.length).toBeGreaterThan(0);
  const out = sealer === 'forwarder.test' ? '192.0.2.25' : '192.0.2.200';
  return {
    message: Buffer.concat([seal, modified]),
    ip: out,
    helo: `out.${sealer}`,
    mailFrom: `SRS0=hh=tt=flamecrm.ru=admin@${sealer}`,
  };
};

const staffDirect = (message: Buffer): Envelope => ({
  message,
  ip: '127.0.0.2',
  helo: 'mx.flamecrm.ru',
  mailFrom: 'admin@flamecrm.ru',
});
/** A message sent through a mailing service whose envelope and IP are its own. */
const viaEsp = (message: Buffer): Envelope => ({
  message,
  ip: '203.0.113.9',
  helo: 'out.unrelated.test',
  mailFrom: 'bounces+42@unrelated.test',
});

interface Case {
  name: string;
  build: () => Promise<Envelope>;
  requester?: string;
  verdict: AuthDecision['verdict'];
  code: AuthDecision['code'];
  role: AuthDecision['role'];
  authenticatedBy: AuthDecision['authenticatedBy'];
  enhanced?: string;
  /** Words the reason must contain so a human knows what to fix. */
  reasonMentions?: string[];
  /** STAFF_DKIM_DOMAINS; none by default. */
  staffDkimDomains?: string[];
}

const ADMIN = 'Админ Иванов <admin@flamecrm.ru>';

const cases: Case[] = [
  {
    name: 'staff, DKIM aligned, sent through a mailing service',
    build: async () => viaEsp(await sign(compose(ADMIN), 'flamecrm.ru', 'mail')),
    verdict: 'accept',
    code: 'AUTH_ACCEPTED',
    role: 'staff',
    authenticatedBy: 'dmarc',
  },
  {
    name: 'staff, SPF only (no DKIM), aligned',
    build: async () => staffDirect(compose(ADMIN)),
    verdict: 'accept',
    code: 'AUTH_ACCEPTED',
    role: 'staff',
    authenticatedBy: 'dmarc',
  },
  {
    name: 'requester, SPF only, aligned, domain without DMARC',
    build: async () => ({
      message: compose('Клиент <client@example.ru>'),
      ip: '198.51.100.7',
      helo: 'mail.example.ru',
      mailFrom: 'client@example.ru',
    }),
    verdict: 'accept',
    code: 'AUTH_ACCEPTED',
    role: 'requester',
    authenticatedBy: 'spf',
  },
  {
    name: 'requester, DKIM aligned, domain without DMARC',
    build: async () => viaEsp(await sign(compose('client@example.ru'), 'example.ru', 's1')),
    verdict: 'accept',
    code: 'AUTH_ACCEPTED',
    role: 'requester',
    authenticatedBy: 'dkim',
  },
  {
    // DMARC passes (adkim=r), but whoever can sign for a subdomain is not every staff member
    name: 'staff, DKIM only for a subdomain (d=mail.flamecrm.ru), sent through a mailing service',
    build: async () => viaEsp(await sign(compose(ADMIN), 'mail.flamecrm.ru', 's1')),
    verdict: 'reject',
    code: 'AUTH_STAFF_SUBDOMAIN',
    role: 'staff',
    authenticatedBy: null,
    enhanced: '5.7.22',
    reasonMentions: ['d=mail.flamecrm.ru', 'not for flamecrm.ru itself', 'STAFF_DKIM_DOMAINS'],
  },
  {
    name: 'staff, DKIM d=mail.flamecrm.ru listed in STAFF_DKIM_DOMAINS',
    build: async () => viaEsp(await sign(compose(ADMIN), 'mail.flamecrm.ru', 's1')),
    staffDkimDomains: ['Mail.FlameCRM.ru'],
    verdict: 'accept',
    code: 'AUTH_ACCEPTED',
    role: 'staff',
    authenticatedBy: 'dmarc',
  },
  {
    // aspf=r: a mailing service's return path under the domain passes DMARC through its own servers
    name: 'staff, SPF only for a subdomain MAIL FROM (bounce.flamecrm.ru), no DKIM',
    build: async () => ({ ...viaEsp(compose(ADMIN)), mailFrom: 'msg-42@bounce.flamecrm.ru' }),
    staffDkimDomains: ['bounce.flamecrm.ru'], // a DKIM setting: no SPF identity
    verdict: 'reject',
    code: 'AUTH_STAFF_SUBDOMAIN',
    role: 'staff',
    authenticatedBy: null,
    enhanced: '5.7.1',
    reasonMentions: ['SPF passes for the MAIL FROM domain bounce.flamecrm.ru', 'not for flamecrm.ru itself'],
  },
  {
    name: 'requester, DKIM only for a subdomain (d=mail.example.ru): relaxed alignment',
    build: async () => viaEsp(await sign(compose('client@example.ru'), 'mail.example.ru', 's1')),
    verdict: 'accept',
    code: 'AUTH_ACCEPTED',
    role: 'requester',
    authenticatedBy: 'dkim',
  },
  {
    name: 'requester, DKIM of an unrelated domain only',
    build: async () => viaEsp(await sign(compose('client@example.ru'), 'unrelated.test', 'k1')),
    verdict: 'reject',
    code: 'AUTH_UNAUTHENTICATED',
    role: 'requester',
    authenticatedBy: null,
    enhanced: '5.7.22',
    reasonMentions: ['unrelated.test', 'd=example.ru'],
  },
  {
    name: 'staff From, DKIM of an unrelated domain only (DMARC p=reject)',
    build: async () => viaEsp(await sign(compose(ADMIN), 'unrelated.test', 'k1')),
    verdict: 'reject',
    code: 'AUTH_UNAUTHENTICATED',
    role: 'staff',
    authenticatedBy: null,
    enhanced: '5.7.26',
    reasonMentions: ['p=reject'],
  },
  {
    name: 'forged staff From against p=reject from a foreign IP',
    build: async () => ({
      message: compose(ADMIN),
      ip: '203.0.113.66',
      helo: 'evil.test',
      mailFrom: 'admin@flamecrm.ru',
    }),
    verdict: 'reject',
    code: 'AUTH_UNAUTHENTICATED',
    role: 'staff',
    authenticatedBy: null,
    enhanced: '5.7.26',
    reasonMentions: ['SPF fail', 'DMARC fail'],
  },
  {
    name: 'forwarded with an ARC seal by a trusted sealer',
    build: async () => forward(staffDirect(await sign(compose(ADMIN), 'flamecrm.ru', 'mail')), 'forwarder.test'),
    verdict: 'accept',
    code: 'AUTH_ACCEPTED',
    role: 'staff',
    authenticatedBy: 'arc',
  },
  {
    name: 'forwarded with an ARC seal by an untrusted sealer',
    build: async () =>
      forward(staffDirect(await sign(compose(ADMIN), 'flamecrm.ru', 'mail')), 'untrusted-forwarder.test'),
    verdict: 'reject',
    code: 'AUTH_UNAUTHENTICATED',
    role: 'staff',
    authenticatedBy: null,
    enhanced: '5.7.26',
    reasonMentions: ['untrusted-forwarder.test', 'ARC_TRUSTED_SEALERS'],
  },
  {
    name: 'a forgery forwarded by a trusted sealer (the sealer saw it fail)',
    build: async () =>
      forward(
        { message: compose(ADMIN), ip: '203.0.113.66', helo: 'evil.test', mailFrom: 'admin@flamecrm.ru' },
        'forwarder.test',
      ),
    verdict: 'reject',
    code: 'AUTH_UNAUTHENTICATED',
    role: 'staff',
    authenticatedBy: null,
    enhanced: '5.7.26',
  },
  {
    name: 'an authenticated stranger',
    build: async () => ({
      message: await sign(compose('Someone <someone@stranger.org>'), 'stranger.org', 'sel'),
      ip: '203.0.113.50',
      helo: 'mail.stranger.org',
      mailFrom: 'someone@stranger.org',
    }),
    verdict: 'reject',
    code: 'AUTH_NOT_ALLOWED',
    role: 'stranger',
    authenticatedBy: 'dmarc',
    enhanced: '5.7.1',
    reasonMentions: ['someone@stranger.org', 'STAFF_SENDERS'],
  },
  {
    name: 'a stranger during a DNS outage is still refused (DNS cannot make them allowed)',
    build: async () => ({
      message: compose('x@dns-timeout.ru'),
      ip: '198.51.100.7',
      helo: 'mail.dns-timeout.ru',
      mailFrom: 'x@dns-timeout.ru',
    }),
    verdict: 'reject',
    code: 'AUTH_NOT_ALLOWED',
    role: 'stranger',
    authenticatedBy: null,
    enhanced: '5.7.1',
  },
  {
    name: 'requester whose domain does not answer DNS (SPF and DMARC time out)',
    requester: 'client@dns-timeout.ru',
    build: async () => ({
      message: compose('client@dns-timeout.ru'),
      ip: '198.51.100.7',
      helo: 'mail.dns-timeout.ru',
      mailFrom: 'client@dns-timeout.ru',
    }),
    verdict: 'tempfail',
    code: 'AUTH_DNS_TEMPORARY',
    role: 'requester',
    authenticatedBy: null,
    enhanced: '4.7.0',
    reasonMentions: ['SPF record of dns-timeout.ru', 'DMARC record of dns-timeout.ru', 'retry'],
  },
  {
    name: 'requester whose SPF include times out',
    requester: 'client@spf-timeout.ru',
    build: async () => ({
      message: compose('client@spf-timeout.ru'),
      ip: '198.51.100.7',
      helo: 'mail.spf-timeout.ru',
      mailFrom: 'client@spf-timeout.ru',
    }),
    verdict: 'tempfail',
    code: 'AUTH_DNS_TEMPORARY',
    role: 'requester',
    authenticatedBy: null,
    enhanced: '4.7.24',
    reasonMentions: ['SPF record of spf-timeout.ru'],
  },
  {
    name: 'staff whose DKIM key lookup times out (SPF does not cover the sending IP)',
    build: async () => viaEsp(await sign(compose(ADMIN), 'flamecrm.ru', 'slow')),
    verdict: 'tempfail',
    code: 'AUTH_DNS_TEMPORARY',
    role: 'staff',
    authenticatedBy: null,
    enhanced: '4.7.5',
    reasonMentions: ['DKIM key of flamecrm.ru'],
  },
  {
    name: "trusted sealer's ARC key lookup times out",
    build: async () => {
      const sealed = await forward(
        staffDirect(await sign(compose(ADMIN), 'flamecrm.ru', 'mail')),
        'forwarder.test',
        'slowarc',
      );
      dns.setDelay('slowarc._domainkey.forwarder.test', Infinity);
      return sealed;
    },
    verdict: 'tempfail',
    code: 'AUTH_DNS_TEMPORARY',
    role: 'staff',
    authenticatedBy: null,
    enhanced: '4.7.5',
    reasonMentions: ['ARC seal key of forwarder.test'],
  },
  {
    name: 'staff, DKIM only, MIME fields added to a signature that covers none (attack run 4, F-low-1)',
    build: async () => viaEsp(addMimeFields(await sign(composeBare(ADMIN), 'flamecrm.ru', 'mail', NO_MIME_SIGNED))),
    verdict: 'reject',
    code: 'AUTH_MIME_UNSIGNED',
    role: 'staff',
    authenticatedBy: 'dmarc',
    enhanced: '5.7.21',
    reasonMentions: ['MIME-Version, Content-Type, Content-Transfer-Encoding', 'd=flamecrm.ru', 'SPF record'],
  },
  {
    name: 'staff, DKIM only, no MIME fields and a signature without them',
    build: async () => viaEsp(await sign(composeBare(ADMIN), 'flamecrm.ru', 'mail', NO_MIME_SIGNED)),
    verdict: 'accept',
    code: 'AUTH_ACCEPTED',
    role: 'staff',
    authenticatedBy: 'dmarc',
  },
  {
    name: 'staff, DKIM only, signed as Gmail signs (mime-version and content-type, no Content-Transfer-Encoding field)',
    build: async () =>
      viaEsp(
        await sign(
          Buffer.from(compose(ADMIN).toString().replace('Content-Transfer-Encoding: 8bit\r\n', '')),
          'flamecrm.ru',
          'mail',
          'mime-version:references:in-reply-to:from:date:message-id:subject:to:content-type',
        ),
      ),
    verdict: 'accept',
    code: 'AUTH_ACCEPTED',
    role: 'staff',
    authenticatedBy: 'dmarc',
  },
  {
    name: 'staff, DKIM only, signed as Mail.ru signs (all three fields)',
    build: async () =>
      viaEsp(
        await sign(
          compose(ADMIN),
          'flamecrm.ru',
          'mail',
          'Content-Transfer-Encoding:MIME-Version:Message-ID:Date:Subject:Cc:To:From:Content-Type',
        ),
      ),
    verdict: 'accept',
    code: 'AUTH_ACCEPTED',
    role: 'staff',
    authenticatedBy: 'dmarc',
  },
  {
    name: 'requester, DKIM only, Content-Transfer-Encoding unsigned (Microsoft 365 signs Content-Type and MIME-Version only)',
    build: async () =>
      viaEsp(
        await sign(
          compose('client@example.ru'),
          'example.ru',
          's1',
          'From:Date:Subject:Message-ID:Content-Type:MIME-Version',
        ),
      ),
    verdict: 'accept',
    code: 'AUTH_ACCEPTED',
    role: 'requester',
    authenticatedBy: 'dkim',
  },
  {
    name: 'staff, DKIM only, Content-Transfer-Encoding unsigned (as Microsoft 365 signs)',
    build: async () =>
      viaEsp(
        await sign(compose(ADMIN), 'flamecrm.ru', 'mail', 'From:Date:Subject:Message-ID:Content-Type:MIME-Version'),
      ),
    verdict: 'reject',
    code: 'AUTH_MIME_UNSIGNED',
    role: 'staff',
    authenticatedBy: 'dmarc',
    enhanced: '5.7.21',
    reasonMentions: ['does not cover Content-Transfer-Encoding:', 'd=flamecrm.ru'],
  },
  {
    name: "staff, signed as Microsoft 365 signs, SPF of the author's domain times out: SPF could vouch, so retry",
    build: async () => ({
      message: await sign(
        compose('admin@slow-spf.test'),
        'slow-spf.test',
        'mail',
        'From:Date:Subject:Message-ID:Content-Type:MIME-Version',
      ),
      ip: '127.0.0.2',
      helo: 'mx.slow-spf.test',
      mailFrom: 'admin@slow-spf.test',
    }),
    verdict: 'tempfail',
    code: 'AUTH_DNS_TEMPORARY',
    role: 'staff',
    authenticatedBy: 'dkim',
    enhanced: '4.7.24',
    reasonMentions: ['does not cover Content-Transfer-Encoding', 'SPF record of slow-spf.test'],
  },
  {
    name: "staff, signed as Microsoft 365 signs, SPF of the author's domain fails: still refused",
    build: async () => ({
      ...viaEsp(
        await sign(compose(ADMIN), 'flamecrm.ru', 'mail', 'From:Date:Subject:Message-ID:Content-Type:MIME-Version'),
      ),
      mailFrom: 'admin@flamecrm.ru',
    }),
    verdict: 'reject',
    code: 'AUTH_MIME_UNSIGNED',
    role: 'staff',
    authenticatedBy: 'dmarc',
    enhanced: '5.7.21',
    reasonMentions: ['does not cover Content-Transfer-Encoding:'],
  },
  {
    name: 'staff, SPF aligned: MIME fields the signature does not cover are not asked about',
    build: async () =>
      staffDirect(addMimeFields(await sign(composeBare(ADMIN), 'flamecrm.ru', 'mail', NO_MIME_SIGNED))),
    verdict: 'accept',
    code: 'AUTH_ACCEPTED',
    role: 'staff',
    authenticatedBy: 'dmarc',
  },
  {
    name: 'staff, forwarded under a trusted ARC seal: the sealer vouches for the fields as it received them',
    build: async () =>
      forward(
        staffDirect(addMimeFields(await sign(composeBare(ADMIN), 'flamecrm.ru', 'mail', NO_MIME_SIGNED))),
        'forwarder.test',
      ),
    verdict: 'accept',
    code: 'AUTH_ACCEPTED',
    role: 'staff',
    authenticatedBy: 'arc',
  },
  {
    name: 'several From addresses',
    build: async () => staffDirect(await sign(compose('admin@flamecrm.ru, boss@flamecrm.ru'), 'flamecrm.ru', 'mail')),
    verdict: 'reject',
    code: 'AUTH_MULTIPLE_AUTHORS',
    role: 'stranger',
    authenticatedBy: null,
    enhanced: '5.7.1',
  },
  {
    name: 'two From header fields',
    build: async () => staffDirect(compose(['admin@flamecrm.ru', 'boss@flamecrm.ru'])),
    verdict: 'reject',
    code: 'AUTH_MULTIPLE_AUTHORS',
    role: 'stranger',
    authenticatedBy: null,
    enhanced: '5.7.1',
  },
  {
    name: 'no From',
    build: async () => staffDirect(compose(null)),
    verdict: 'reject',
    code: 'AUTH_NO_AUTHOR',
    role: 'stranger',
    authenticatedBy: null,
    enhanced: '5.7.1',
  },
];

// Each message is built and authenticated once; both policies decide on the same results.
const checked = new Map<
  string,
  Promise<{ auth: AuthResults; fromAddresses: { address: string; name?: string }[]; bodyFields: string[] }>
>();
const check = (c: Case) => {
  let pending = checked.get(c.name);
  if (!pending) {
    pending = (async () => {
      const envelope = await c.build();
      const auth = await authenticate({ ...envelope, mta: MTA, resolver });
      const parsed = await simpleParser(envelope.message);
      const fromAddresses = (parsed.from?.value ?? []).map(({ address, name }) => ({ address: address ?? '', name }));
      const bodyFields = BODY_FIELDS.filter((field) => parsed.headers.has(field));
      return { auth, fromAddresses, bodyFields };
    })();
    checked.set(c.name, pending);
  }
  return pending;
};

// DNS timeouts dominate the run time: check every message at once, not one after another.
beforeAll(async () => {
  await Promise.all(cases.map(check));
});

const decide = async (c: Case, policy: AuthPolicy): Promise<AuthDecision> => {
  const { auth, fromAddresses, bodyFields } = await check(c);
  return authorize({
    fromAddresses,
    bodyFields,
    requester: c.requester ?? REQUESTER,
    staff: STAFF,
    auth,
    trustedSealers: TRUSTED_SEALERS,
    policy,
    ...(c.staffDkimDomains ? { staffDkimDomains: c.staffDkimDomains } : {}),
  });
};

describe('authorize, enforce', () => {
  it.each(cases)('$name → $verdict $enhanced', async (c) => {
    const decision = await decide(c, 'enforce');
    expect({
      verdict: decision.verdict,
      code: decision.code,
      role: decision.role,
      authenticated: decision.authenticated,
      authenticatedBy: decision.authenticatedBy,
      enhanced: decision.reply?.enhanced,
      replyCode: decision.reply?.code,
      wouldReject: decision.wouldReject,
    }).toEqual({
      verdict: c.verdict,
      code: c.code,
      role: c.role,
      authenticated: c.authenticatedBy !== null,
      authenticatedBy: c.authenticatedBy,
      enhanced: c.enhanced,
      replyCode: c.verdict === 'reject' ? 550 : c.verdict === 'tempfail' ? 451 : undefined,
      wouldReject: c.verdict !== 'accept',
    });
    expect(decision.wouldReply).toBeUndefined();
    expect(decision.reason).toMatch(/\.$/);
    for (const word of c.reasonMentions ?? []) expect(decision.reason).toContain(word);
    if (decision.reply) expect(decision.reply.text).not.toMatch(/[\r\n]/);
  });
});

describe('authorize, monitor', () => {
  it.each(cases)('$name → accepted, recorded as $verdict', async (c) => {
    const enforced = await decide(c, 'enforce');
    const monitored = await decide(c, 'monitor');
    expect(monitored.verdict).toBe('accept');
    expect(monitored.reply).toBeUndefined();
    expect(monitored.policy).toBe('monitor');
    expect(monitored.wouldReject).toBe(c.verdict !== 'accept');
    expect(monitored.wouldReply).toEqual(enforced.reply);
    // the record says exactly what enforce would have said
    const { verdict: _v, policy: _p, reply: _r, wouldReply: _w, ...finding } = monitored;
    const { verdict: _ev, policy: _ep, reply: _er, wouldReply: _ew, ...enforcedFinding } = enforced;
    expect(finding).toEqual(enforcedFinding);
  });
});

describe('authorize, who counts as staff or requester', () => {
  // results that authenticate any author at flamecrm.ru or example.ru alike
  const passing = (domain: string): AuthResults => ({
    fromDomain: domain,
    spf: { result: 'pass', domain, identity: 'mailfrom', aligned: true },
    dkim: [],
    dmarc: { result: 'none', policy: null, domain, alignment: { spf: null, dkim: null } },
    arc: { result: 'none', i: 0, sealers: [], sealerResults: null },
    headers: '',
    temporary: false,
    temporaryChecks: [],
  });

  it.each([
    ['admin@flamecrm.ru', ['@flamecrm.ru'], 'staff'],
    ['Admin@FLAMECRM.RU', ['@flamecrm.ru'], 'staff'],
    ['admin@mail.flamecrm.ru', ['@flamecrm.ru'], 'stranger'], // a domain entry is that domain only
    ['partner@agency.test', ['partner@Agency.test'], 'staff'],
    ['other@agency.test', ['partner@agency.test'], 'stranger'],
    ['client@example.ru', [], 'requester'],
    ['CLIENT@example.RU', [], 'requester'],
    ['client2@example.ru', [], 'stranger'],
  ] as const)('%s with STAFF_SENDERS %j is %s', (address, staff, role) => {
    const decision = authorize({
      fromAddresses: [{ address }],
      requester: 'client@example.ru',
      staff: [...staff],
      auth: passing(address.split('@')[1]!.toLowerCase()),
      bodyFields: [],
      trustedSealers: [],
      policy: 'enforce',
    });
    expect(decision.role).toBe(role);
    expect(decision.verdict).toBe(role === 'stranger' ? 'reject' : 'accept');
    expect(decision.author).toBe(address.toLowerCase());
  });

  it('refuses when the From that authentication read differs from the parsed one', () => {
    const decision = authorize({
      fromAddresses: [{ address: 'admin@flamecrm.ru' }],
      requester: 'client@example.ru',
      staff: ['@flamecrm.ru'],
      auth: passing('evil.test'),
      bodyFields: [],
      trustedSealers: [],
      policy: 'enforce',
    });
    expect(decision).toMatchObject({
      verdict: 'reject',
      role: 'staff',
      authenticated: false,
      reply: { code: 550, enhanced: '5.7.1' },
    });
  });
});
