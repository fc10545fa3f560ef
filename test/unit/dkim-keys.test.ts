// The DKIM/ARC key cache across messages (src/mail/dkim-keys.ts), which patches mailauth's internals:
// what it relies on exists in the pinned mailauth, it reads a record as mailauth does, verdicts are
// the same with it and without it, a key is parsed once for many messages, and a rotated key (new
// bytes under the same selector) is never verified against the old one.
import { createRequire } from 'node:module';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { authenticate } from '../../src/mail/authenticate.js';
import { assertPatchable, clearKeyCache, keyCacheStats, keyCacheSwitch, recordOf } from '../../src/mail/dkim-keys.js';
import { createResolver, type Resolver } from '../../src/mail/dns.js';
import { publishDkimKey, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { arcForwarded, dkimSigned } from '../helpers/mail-auth.js';
import { buildMessage } from '../helpers/smtp-client.js';

const tools = createRequire(import.meta.url)('mailauth/lib/tools.js');
const { DkimVerifier } = createRequire(import.meta.url)('mailauth/lib/dkim/dkim-verifier.js');

let dns: TestDnsServer;
// no DNS cache: every message asks the server, as after DNS_CACHE_SECONDS
let resolver: Resolver;
let key: string;

const check = (message: Buffer) =>
  authenticate({
    message,
    ip: '127.0.0.1',
    helo: 'mail.flamecrm.ru',
    mailFrom: 'ivan@flamecrm.ru',
    mta: 'mx',
    resolver,
  });
const signed = (i: number, privateKey = key, selector = 'mail') =>
  dkimSigned(buildMessage({ messageId: `<keys-${i}@flamecrm.ru>` }), 'flamecrm.ru', selector, privateKey);

beforeAll(async () => {
  dns = await startDnsServer({
    records: {
      'flamecrm.ru': { TXT: ['v=spf1 -all'] },
      '_dmarc.flamecrm.ru': { TXT: ['v=DMARC1; p=reject'] },
    },
  });
  resolver = createResolver({ servers: [dns.address], timeoutMs: 1000, cacheSeconds: 0 });
  key = publishDkimKey(dns, 'flamecrm.ru', 'mail');
});

afterAll(async () => {
  keyCacheSwitch.enabled = true;
  await dns?.close();
});

beforeEach(() => {
  keyCacheSwitch.enabled = true;
  clearKeyCache();
});

describe('what the patch relies on', () => {
  it('exists in the pinned mailauth, and a verifier gets the wrapped cache', () => {
    expect(() => assertPatchable(tools, DkimVerifier)).not.toThrow();
    const cache = new DkimVerifier({ resolver }).keyCache;
    expect(cache.resolver).toBe(resolver); // the ARC checks reuse it only for the same resolver
    expect(Object.getOwnPropertySymbols(cache).map(String)).toContain('Symbol(ticketmx.keyCache)');
  });

  it('is checked at load, naming what moved', () => {
    expect(() => assertPatchable({ toALabel: tools.toALabel }, DkimVerifier)).toThrow(
      /mailauth has no tools\.getPublicKey: src\/mail\/dkim-keys\.ts/,
    );
  });

  it("reads a key record as mailauth's getPublicKey does", async () => {
    const p = publishDkimKey(dns, 'flamecrm.ru', 'split');
    const record = (await resolver('split._domainkey.flamecrm.ru', 'TXT')) as string[][];
    // several strings (a 2048-bit key is over 255 bytes) and whitespace in between
    const list = [[` ${record[0]![0]}`, ...record[0]!.slice(1).map((s) => ` ${s} `)]];
    expect(list[0]!.length).toBeGreaterThan(1);
    const upstream = await tools.getPublicKey('DKIM', 'split._domainkey.flamecrm.ru', 1024, async () => list, {});
    expect(recordOf(list)).toBe(upstream.rr);
    expect(recordOf([])).toBe('');
    expect(p).toContain('PRIVATE KEY');
  });
});

describe('keys across messages', () => {
  it('verifies exactly as mailauth alone does, parsing the key once for many messages', async () => {
    const messages = await Promise.all([1, 2, 3, 4, 5].map((i) => signed(i)));
    keyCacheSwitch.enabled = false;
    const without = [];
    for (const m of messages) without.push(await check(m));
    expect(keyCacheStats).toEqual({ hits: 0, misses: 0 });
    keyCacheSwitch.enabled = true;
    const withCache = [];
    for (const m of messages) withCache.push(await check(m));
    expect(withCache.map((r) => r.dkim)).toEqual(without.map((r) => r.dkim));
    expect(withCache.map((r) => r.headers)).toEqual(without.map((r) => r.headers));
    expect(withCache[0]!.dkim[0]).toMatchObject({ result: 'pass', domain: 'flamecrm.ru', selector: 'mail' });
    expect(keyCacheStats).toEqual({ hits: 4, misses: 1 });
  });

  it('never verifies against the old key once the record changes (a rotated key)', async () => {
    expect((await check(await signed(10))).dkim[0]!.result).toBe('pass');
    const old = key;
    const rotated = publishDkimKey(dns, 'flamecrm.ru', 'mail');
    try {
      // the cached key would pass a message of the old key; the record says otherwise now
      expect((await check(await signed(11, old))).dkim[0]!.result).toBe('fail');
      expect((await check(await signed(12, rotated))).dkim[0]!.result).toBe('pass');
      expect(keyCacheStats.misses).toBe(2);
    } finally {
      key = rotated;
    }
  });

  it('shares a key between selectors that publish the same record, and keeps each answer of mailauth', async () => {
    const record = ((await resolver('mail._domainkey.flamecrm.ru', 'TXT')) as string[][])[0]!.join('');
    dns.setRecords('other._domainkey.flamecrm.ru', 'TXT', [record]);
    const a = await check(await signed(20));
    const b = await check(await signed(21, key, 'other'));
    expect([a.dkim[0]!.result, b.dkim[0]!.result]).toEqual(['pass', 'pass']);
    expect(b.dkim[0]!.selector).toBe('other');
    expect(keyCacheStats).toEqual({ hits: 1, misses: 1 });
    // a key too short for the question is mailauth's refusal, not a cached pass
    const short = publishDkimKey(dns, 'flamecrm.ru', 'short', 512);
    const weak = await check(await signed(22, short, 'short'));
    expect(weak.dkim[0]!.result).not.toBe('pass');
  });

  it('verifies an ARC seal through the same cache', async () => {
    const sealerKey = publishDkimKey(dns, 'forwarder.test', 'arc');
    dns.setRecords('forwarder.test', 'TXT', ['v=spf1 -all']);
    const forwarded = await arcForwarded(
      await signed(30),
      { ip: '127.0.0.1', helo: 'mail.flamecrm.ru', mailFrom: 'ivan@flamecrm.ru' },
      { domain: 'forwarder.test', selector: 'arc', privateKey: sealerKey },
      dns,
    );
    for (let i = 0; i < 2; i++) {
      const r = await check(forwarded);
      expect(r.arc.result).toBe('pass');
    }
    expect(keyCacheStats.hits).toBeGreaterThan(0);
  });
});
