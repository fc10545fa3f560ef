// The resolver's short in-memory cache, against the loopback DNS server: answers and definite
// failures are kept for DNS_CACHE_SECONDS, temporary failures never.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createResolver } from '../../src/mail/dns.js';
import { loadZones, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { SMTP_ZONES } from '../helpers/server.js';

let dns: TestDnsServer;
beforeAll(async () => {
  dns = await startDnsServer(loadZones(SMTP_ZONES));
});
afterAll(async () => dns?.close());

const asked = (q: string) => dns.queries.filter((x) => x === q).length;

describe('DNS cache', () => {
  it('keeps an answer for cacheSeconds, then asks again', async () => {
    let clock = 1_000_000;
    const resolve = createResolver({ servers: [dns.address], timeoutMs: 300, cacheSeconds: 60, now: () => clock });
    const before = asked('TXT flamecrm.ru');
    expect(await resolve('flamecrm.ru', 'TXT')).toEqual([['v=spf1 ip4:127.0.0.1 -all']]);
    expect(await resolve('FLAMECRM.RU', 'TXT')).toEqual([['v=spf1 ip4:127.0.0.1 -all']]);
    expect(asked('TXT flamecrm.ru') - before).toBe(1);
    clock += 61_000;
    await resolve('flamecrm.ru', 'TXT');
    expect(asked('TXT flamecrm.ru') - before).toBe(2);
  });

  it('keeps NXDOMAIN but not a timeout', async () => {
    const resolve = createResolver({ servers: [dns.address], timeoutMs: 100, tries: 1, cacheSeconds: 60 });
    const nx = 'TXT no-such-name.test';
    const before = asked(nx);
    await expect(resolve('no-such-name.test', 'TXT')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await expect(resolve('no-such-name.test', 'TXT')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(asked(nx) - before).toBe(1);

    const slow = 'TXT dns-timeout.ru';
    const slowBefore = asked(slow);
    await expect(resolve('dns-timeout.ru', 'TXT')).rejects.toMatchObject({ code: 'ETIMEOUT' });
    await expect(resolve('dns-timeout.ru', 'TXT')).rejects.toMatchObject({ code: 'ETIMEOUT' });
    expect(asked(slow) - slowBefore).toBe(2);
  });

  it('keeps nothing with cacheSeconds 0, and no more than cacheEntries answers', async () => {
    const off = createResolver({ servers: [dns.address], timeoutMs: 300 });
    const before = asked('TXT example.ru');
    await off('example.ru', 'TXT');
    await off('example.ru', 'TXT');
    expect(asked('TXT example.ru') - before).toBe(2);

    const small = createResolver({ servers: [dns.address], timeoutMs: 300, cacheSeconds: 60, cacheEntries: 1 });
    await small('example.ru', 'TXT');
    await small('stranger.org', 'TXT'); // pushes example.ru out
    await small('example.ru', 'TXT');
    expect(asked('TXT example.ru') - before).toBe(4);
  });
});
