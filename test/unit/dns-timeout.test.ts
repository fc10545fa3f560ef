// A lookup's time is what DNS_TIMEOUT_MS says, whatever answers came before. c-ares (1.32 on)
// times a try by the server's recent answers instead (five times their average, 250 ms at least)
// once it has a few: after fast answers from a local resolver, two tries of 250 and 500 ms were
// all that a slow domain got, where DNS_TIMEOUT_MS=2000 promised 2 s and 4 s, and its SPF was a
// temperror (451 4.7.x). Against the loopback DNS server, which delays one name's answers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createResolver, lookupTimeMs } from '../../src/mail/dns.js';
import { loadZones, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { SMTP_ZONES } from '../helpers/server.js';

let dns: TestDnsServer;
beforeAll(async () => {
  dns = await startDnsServer(loadZones(SMTP_ZONES));
  dns.setRecords('slow.example', 'TXT', ['v=spf1 -all']);
  dns.setRecords('slower.example', 'TXT', ['v=spf1 -all']);
});
afterAll(async () => dns?.close());

/** Lookups of names that answer at once, enough for c-ares to time its tries by them. */
const fast = async (resolve: ReturnType<typeof createResolver>, n: number) => {
  for (let i = 0; i < n; i++) await resolve(`fast-${i}-${Math.random()}.example`, 'TXT').catch(() => undefined);
};

describe('a lookup after fast answers', () => {
  it('still gets the time DNS_TIMEOUT_MS gives it (an answer 1 s late, 400 ms the first try)', async () => {
    const resolve = createResolver({ servers: [dns.address], timeoutMs: 400 });
    await fast(resolve, 12);
    dns.setDelay('slow.example', 1_000);
    const started = performance.now();
    expect(await resolve('slow.example', 'TXT')).toEqual([['v=spf1 -all']]);
    expect(performance.now() - started).toBeGreaterThan(900);
    // c-ares tried it more than once meanwhile, as one lookup
    expect(dns.lookups.filter((q) => q === 'TXT slow.example')).toHaveLength(1);
  });

  it('and no more: ETIMEOUT when that time is up', async () => {
    const resolve = createResolver({ servers: [dns.address], timeoutMs: 200 });
    await fast(resolve, 12);
    dns.setDelay('slower.example', 5_000);
    const started = performance.now();
    await expect(resolve('slower.example', 'TXT')).rejects.toMatchObject({ code: 'ETIMEOUT' });
    const took = performance.now() - started;
    expect(took).toBeGreaterThanOrEqual(lookupTimeMs(200) - 20);
    expect(took).toBeLessThan(lookupTimeMs(200) + 1_000);
  });
});
