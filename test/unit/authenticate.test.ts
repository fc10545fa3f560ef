// The resolver and authenticate() against a real DNS server on loopback (the DNS_SERVERS path):
// answers and DNS error codes, and the verdicts for signed, sealed, unsigned and DNS-starved mail.

import { authenticate as mailauthAuthenticate, sealMessage } from 'mailauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthResults, authenticate } from '../../src/mail/authenticate.js';
import { createResolver, isTemporaryDnsError, type Resolver } from '../../src/mail/dns.js';
import { loadZones, publishDkimKey, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { dkimSigned } from '../helpers/mail-auth.js';

const MTA = 'mx.ticket-mx.test';

let dns: TestDnsServer;
let resolver: Resolver;
let flamecrmKey: string;
let slowKey: string;
let arcKey: string;
let slowArcKey: string;

beforeAll(async () => {
  dns = await startDnsServer(loadZones(new URL('../../fixtures/dns/zones.json', import.meta.url)));
  resolver = createResolver({ servers: [dns.address], timeoutMs: 250, tries: 2 });
  flamecrmKey = publishDkimKey(dns, 'flamecrm.ru', 'mail');
  slowKey = publishDkimKey(dns, 'flamecrm.ru', 'slow');
  arcKey = publishDkimKey(dns, 'forwarder.test', 'arc');
  slowArcKey = publishDkimKey(dns, 'forwarder.test', 'slowarc');
  dns.setDelay('slow._domainkey.flamecrm.ru', Infinity);
});

afterAll(async () => {
  await dns?.close();
});

describe('createResolver', () => {
  it.each([
    ['flamecrm.ru', 'TXT', [['v=spf1 ip4:127.0.0.0/8 -all']]],
    ['FlameCRM.ru.', 'TXT', [['v=spf1 ip4:127.0.0.0/8 -all']]],
    ['flamecrm.ru', 'MX', [{ exchange: 'mx.flamecrm.ru', priority: 10 }]],
    ['mx.flamecrm.ru', 'A', ['127.0.0.1']],
    ['1.0.0.127.in-addr.arpa', 'PTR', ['mx.flamecrm.ru']],
  ])('answers %s %s', async (name, type, answer) => {
    // as dns.promises.resolve answers: Node 22 and later add `type: 'MX'` to each MX record
    expect(await resolver(name, type)).toMatchObject(answer);
  });

  it.each([
    ['nowhere.test', 'TXT', 'ENOTFOUND', false],
    ['flamecrm.ru', 'AAAA', 'ENODATA', false],
    ['dns-timeout.ru', 'TXT', 'ETIMEOUT', true],
  ])('fails %s %s with %s (temporary: %s)', async (name, type, code, temporary) => {
    const err = await resolver(name, type).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code });
    expect(isTemporaryDnsError(err)).toBe(temporary);
  });

  it('gives up on a silent server within its timeout', async () => {
    const started = Date.now();
    await expect(resolver('slow._domainkey.flamecrm.ru', 'TXT')).rejects.toMatchObject({ code: 'ETIMEOUT' });
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('reports a server that is not there as temporary', async () => {
    const gone = await startDnsServer({ records: {} });
    await gone.close();
    const err = await createResolver({ servers: [gone.address], timeoutMs: 150, tries: 1 })('flamecrm.ru', 'TXT').catch(
      (e: unknown) => e,
    );
    expect(isTemporaryDnsError(err)).toBe(true);
  });

  it('returns a TXT record longer than one UDP answer intact', async () => {
    const long = `v=DKIM1; k=rsa; p=${'A'.repeat(1_400)}`;
    dns.setRecords('long._domainkey.flamecrm.ru', 'TXT', [long]);
    const answer = (await resolver('long._domainkey.flamecrm.ru', 'TXT')) as string[][];
    expect(answer).toHaveLength(1);
    expect(answer[0]!.join('')).toBe(long);
    expect(answer[0]!.length).toBeGreaterThan(1); // split into 255-byte character-strings
  });

  it('shares one lookup between concurrent identical questions, and keeps nothing after', async () => {
    const asked = () => dns.queries.filter((q) => q === 'TXT example.ru').length;
    const before = asked();
    await Promise.all([resolver('example.ru', 'TXT'), resolver('EXAMPLE.ru', 'TXT'), resolver('example.ru', 'TXT')]);
    expect(asked() - before).toBe(1);
    await resolver('example.ru', 'TXT');
    expect(asked() - before).toBe(2);
  });

  it.each([['127.0.0.1'], ['127.0.0.1:5353'], ['[::1]:53'], ['::1']])('accepts server %s', (server) => {
    expect(() => createResolver({ servers: [server], timeoutMs: 100 })).not.toThrow();
  });

  it('refuses a server that is not an address', () => {
    expect(() => createResolver({ servers: ['dns.example.ru'], timeoutMs: 100 })).toThrow();
  });

  it.each([
    ['ETIMEOUT', true],
    ['ESERVFAIL', true],
    ['ECONNREFUSED', true],
    ['EREFUSED', true],
    ['ENOTFOUND', false],
    ['ENODATA', false],
    [undefined, false],
  ])('isTemporaryDnsError(%s) is %s', (code, temporary) => {
    expect(isTemporaryDnsError(Object.assign(new Error('x'), { code }))).toBe(temporary);
  });
});

const compose = (fromLines: string[], body = 'Добрый день! Проблема решена.\r\n'): Buffer =>
  Buffer.from(
    [
      ...fromLines.map((from) => `From: ${from}`),
      'To: <support+TKT-7@flamecrm.ru>',
      'Subject: Re: [TKT-7] VPN',
      'Date: Wed, 15 Jan 2025 09:30:00 +0300',
      'Message-ID: <a1@flamecrm.ru>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      body,
    ].join('\r\n'),
  );

const sign = (message: Buffer, selector: string, privateKey: string): Promise<Buffer> =>
  dkimSigned(message, 'flamecrm.ru', selector, privateKey);

const staff = { ip: '127.0.0.1', helo: 'mx.flamecrm.ru', mailFrom: 'admin@flamecrm.ru', mta: MTA };

/** A forwarding mailbox: checks the original, appends a footer, seals with ARC, resends. */
const forward = async (message: Buffer, selector: string, privateKey: string): Promise<Buffer> => {
  const seen = await mailauthAuthenticate(message, {
    ...staff,
    sender: staff.mailFrom,
    mta: 'mx.forwarder.test',
    resolver,
    disableBimi: true,
  });
  const modified = Buffer.concat([message, Buffer.from('-- \r\nforwarded\r\n')]);
  const seal = await sealMessage(modified, {
    signingDomain: 'forwarder.test',
    selector,
    privateKey,
    authResults: seen.arc ? (seen.arc.authResults ?? '') : '',
    cv: seen.arc ? seen.arc.status.result : 'none',
  });
  return Buffer.concat([seal, modified]);
};
const fromForwarder = {
  ip: '192.0.2.25',
  helo: 'out.forwarder.test',
  mailFrom: 'SRS0=x=y=flamecrm.ru=admin@forwarder.test',
  mta: MTA,
};

describe('authenticate', () => {
  it('gives plain verdicts for staff mail that passes everything', async () => {
    const message = await sign(compose(['Админ <admin@flamecrm.ru>']), 'mail', flamecrmKey);
    const result = await authenticate({ message, ...staff, resolver });
    expect(result).toMatchObject({
      fromDomain: 'flamecrm.ru',
      spf: { result: 'pass', domain: 'flamecrm.ru', identity: 'mailfrom', aligned: true },
      dkim: [
        {
          result: 'pass',
          domain: 'flamecrm.ru',
          selector: 'mail',
          aligned: true,
          signedFields: expect.arrayContaining(['from', 'subject']),
        },
      ],
      dmarc: {
        result: 'pass',
        policy: 'reject',
        domain: 'flamecrm.ru',
        alignment: { spf: 'flamecrm.ru', dkim: 'flamecrm.ru' },
      },
      arc: { result: 'none', i: 0, sealers: [], sealerResults: null },
      temporary: false,
      temporaryChecks: [],
    } satisfies Partial<AuthResults>);
    expect(result.headers).toMatch(/^Received-SPF: pass /);
    expect(result.headers).toContain(`Authentication-Results: ${MTA};`);
    expect(result.headers).toContain('dkim=pass header.i=@flamecrm.ru header.s=mail');
    expect(result.headers).toMatch(/\r\n$/);
    // stored as JSON as it is
    expect(JSON.parse(JSON.stringify(result))).toEqual(result);
  });

  it('checks the HELO identity for the null sender', async () => {
    const result = await authenticate({
      message: compose(['mailer-daemon@flamecrm.ru']),
      ...staff,
      mailFrom: '',
      resolver,
    });
    expect(result.spf).toMatchObject({ identity: 'helo', domain: 'mx.flamecrm.ru', result: 'none', aligned: true });
    expect(result.dkim).toEqual([]);
  });

  it('reports a failing SPF and DMARC for a forged From', async () => {
    const result = await authenticate({
      message: compose(['admin@flamecrm.ru']),
      ...staff,
      ip: '203.0.113.66',
      resolver,
    });
    expect(result).toMatchObject({
      spf: { result: 'fail', domain: 'flamecrm.ru', aligned: true },
      dkim: [],
      dmarc: { result: 'fail', policy: 'reject', domain: 'flamecrm.ru' },
      temporary: false,
    });
  });

  it('reports the ARC chain, its sealers and what the sealer saw', async () => {
    const message = await forward(await sign(compose(['admin@flamecrm.ru']), 'mail', flamecrmKey), 'arc', arcKey);
    const result = await authenticate({ message, ...fromForwarder, resolver });
    expect(result).toMatchObject({
      spf: { result: 'pass', domain: 'forwarder.test', aligned: false },
      dkim: [{ result: 'neutral', domain: 'flamecrm.ru', aligned: true }], // the footer broke it
      dmarc: { result: 'fail' },
      arc: {
        result: 'pass',
        i: 1,
        sealers: ['forwarder.test'],
        sealerResults: {
          mta: 'mx.forwarder.test',
          dmarc: { result: 'pass', domain: 'flamecrm.ru' },
          spf: { result: 'pass', domain: 'flamecrm.ru' },
          dkim: [{ result: 'pass', domain: 'flamecrm.ru' }],
        },
      },
      temporary: false,
    });
    expect(result.headers).toContain('arc=pass');
  });

  it('reports an unreachable DKIM key as temperror instead of throwing', async () => {
    const message = await sign(compose(['admin@flamecrm.ru']), 'slow', slowKey);
    const result = await authenticate({ message, ...staff, ip: '203.0.113.9', resolver });
    expect(result.dkim).toMatchObject([
      { result: 'temperror', domain: 'flamecrm.ru', selector: 'slow', aligned: true },
    ]);
    expect(result.temporaryChecks).toEqual(['dkim']);
    expect(result.temporary).toBe(true);
    expect(result.headers).toContain('dkim=temperror');
  });

  it('reports an unreachable ARC seal key as temperror (mailauth says fail)', async () => {
    const message = await forward(
      await sign(compose(['admin@flamecrm.ru']), 'mail', flamecrmKey),
      'slowarc',
      slowArcKey,
    );
    dns.setDelay('slowarc._domainkey.forwarder.test', Infinity);
    const result = await authenticate({ message, ...fromForwarder, resolver });
    expect(result.arc).toMatchObject({ result: 'temperror', sealers: ['forwarder.test'], sealerResults: null });
    expect(result.temporaryChecks).toContain('arc');
    expect(result.headers).toContain('arc=fail');
  });

  it('reports a domain whose DNS times out as SPF and DMARC temperror, within a bounded time', async () => {
    const started = Date.now();
    const result = await authenticate({
      message: compose(['client@dns-timeout.ru']),
      ip: '198.51.100.7',
      helo: 'mail.dns-timeout.ru',
      mailFrom: 'client@dns-timeout.ru',
      mta: MTA,
      resolver,
    });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(result).toMatchObject({
      spf: { result: 'temperror', domain: 'dns-timeout.ru', aligned: true },
      dmarc: { result: 'temperror', domain: 'dns-timeout.ru' },
      temporary: true,
      temporaryChecks: ['spf', 'dmarc'],
    });
  });

  it('treats a domain that does not exist as a definite answer', async () => {
    const result = await authenticate({
      message: compose(['someone@nowhere.test']),
      ip: '203.0.113.70',
      helo: 'nowhere.test',
      mailFrom: 'someone@nowhere.test',
      mta: MTA,
      resolver,
    });
    expect(result).toMatchObject({
      spf: { result: 'none' },
      dmarc: { result: 'none', policy: null },
      temporary: false,
    });
  });

  it.each([
    ['two From fields', ['admin@flamecrm.ru', 'boss@flamecrm.ru'], 'multiple-from-fields'],
    ['two domains in one From', ['admin@flamecrm.ru, client@example.ru'], 'multiple-author-domains'],
    ['no From', [], 'no-author-domain'],
  ])('has no single From domain with %s', async (_name, fromLines, skipReason) => {
    const result = await authenticate({ message: compose(fromLines), ...staff, resolver });
    expect(result.fromDomain).toBeNull();
    expect(result.dmarc).toMatchObject({ result: 'none', skipReason });
    expect(result.spf.aligned).toBe(false);
  });
});
