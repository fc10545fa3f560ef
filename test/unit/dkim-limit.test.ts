// The DKIM signature cap (src/mail/dkim-limit.ts) and the DNS fetched before authentication
// (src/mail/auth-dns.ts), against a real DNS server on loopback: authenticating against the
// recording gives the verdicts that authenticating live gives, asking nothing more, and a message
// with more valid signatures than the cap has only the cap's worth verified.
import crypto from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  AuthDnsFetch,
  type AuthDnsInput,
  clearDmarcAsked,
  clearLateAnswers,
  dmarcPrefetches,
  LATE_KEEP_MS,
  LATE_NEGATIVE_KEEP_MS,
  replayResolver,
} from '../../src/mail/auth-dns.js';
import { authenticate } from '../../src/mail/authenticate.js';
import { DKIM_MAX_SIGNATURES, OVER_LIMIT } from '../../src/mail/dkim-limit.js';
import { createResolver, type Resolver } from '../../src/mail/dns.js';
import { loadZones, publishDkimKey, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { arcForwarded, dkimSigned } from '../helpers/mail-auth.js';
import { buildMessage } from '../helpers/smtp-client.js';

const MTA = 'mx.ticket-mx.test';

let dns: TestDnsServer;
let resolver: Resolver;
const keys: Record<string, string> = {};

beforeAll(async () => {
  dns = await startDnsServer(loadZones(new URL('../../fixtures/dns/zones.json', import.meta.url)));
  resolver = createResolver({ servers: [dns.address], timeoutMs: 500, tries: 2 });
  keys.flamecrm = publishDkimKey(dns, 'flamecrm.ru', 'mail');
  keys.other = publishDkimKey(dns, 'mail.unrelated.test', 'esp');
  keys.arc = publishDkimKey(dns, 'forwarder.test', 'arc');
});

afterAll(async () => {
  await dns?.close();
});

const message = (from = 'ivan@flamecrm.ru') => Buffer.from(buildMessage({ from, messageId: `<${Math.random()}@t>` }));

/** authenticate() as the steps run it, against the recording of an AuthDnsFetch, and what went live. */
async function replayed(raw: Buffer, input: AuthDnsInput) {
  const fetch = new AuthDnsFetch(resolver, input);
  const recording = await fetch.record(raw, performance.now() + 5_000);
  const live = asking(resolver);
  const spf = fetch.spfResult;
  const replay = asking(replayResolver(recording, live.resolver));
  const auth = await authenticate({ message: raw, ...input, resolver: replay.resolver, ...(spf ? { spf } : {}) });
  return { auth, live: live.asked, asked: replay.asked, recording, spf };
}

/** `resolver`, and each question put to it (`TYPE name`). */
function asking(resolver: Resolver) {
  const asked: string[] = [];
  return {
    asked,
    resolver: ((name, type) => {
      asked.push(`${type} ${name}`);
      return resolver(name, type);
    }) as Resolver,
  };
}

const envelope = (over: Partial<AuthDnsInput> = {}): AuthDnsInput => ({
  ip: '127.0.0.1',
  helo: 'mail.flamecrm.ru',
  mailFrom: 'ivan@flamecrm.ru',
  mta: MTA,
  ...over,
});

describe('authentication against the DNS fetched before it', () => {
  it.each([
    ['unsigned, SPF pass', async () => message(), envelope()],
    [
      'DKIM-signed, SPF fail',
      async () => dkimSigned(message(), 'flamecrm.ru', 'mail', keys.flamecrm!),
      envelope({ ip: '127.9.9.9' }),
    ],
    [
      'signed by a subdomain of another organization',
      async () => dkimSigned(message(), 'mail.unrelated.test', 'esp', keys.other!),
      envelope({ ip: '127.9.9.9' }),
    ],
    ['the null sender', async () => message(), envelope({ mailFrom: '', helo: 'mx.flamecrm.ru' })],
    [
      'forwarded and ARC-sealed',
      async () =>
        arcForwarded(
          await dkimSigned(message(), 'flamecrm.ru', 'mail', keys.flamecrm!),
          { ip: '127.0.0.1', helo: 'mail.flamecrm.ru', mailFrom: 'ivan@flamecrm.ru' },
          { domain: 'forwarder.test', selector: 'arc', privateKey: keys.arc! },
          dns,
        ),
      envelope({ ip: '127.9.9.9', mailFrom: 'list@forwarder.test' }),
    ],
  ])('%s: the same verdicts as live, nothing asked live', async (_name, build, input) => {
    const raw = await build();
    const direct = await authenticate({ message: raw, ...input, resolver });
    const { auth, live, asked, spf } = await replayed(raw, input);
    expect(live).toEqual([]);
    expect({ ...auth, headers: '' }).toEqual({ ...direct, headers: '' });
    // SPF was found while the bytes came, on the recorded answers: authenticate() took that result
    // and asked nothing of SPF's own again (its record is the envelope domain's TXT)
    expect(spf).toBeDefined();
    const spfDomain = (input.mailFrom || input.helo).split('@').pop()!;
    expect(asked).not.toContain(`TXT ${spfDomain}`);
  });

  it('without the early SPF result, authenticate() evaluates SPF on the recording: the same verdict', async () => {
    const input = envelope();
    const raw = message();
    const fetch = new AuthDnsFetch(resolver, input);
    const recording = await fetch.record(raw, performance.now() + 5_000);
    const replay = asking(replayResolver(recording, resolver));
    const again = await authenticate({ message: raw, ...input, resolver: replay.resolver });
    expect(replay.asked).toContain('TXT flamecrm.ru');
    const taken = await authenticate({ message: raw, ...input, resolver: replay.resolver, spf: fetch.spfResult! });
    expect(taken.spf).toEqual(again.spf);
    expect(taken.headers).toEqual(again.headers);
    expect(taken.spf.result).toBe('pass');
  });

  it('asks the DMARC questions of the message before with the same domains, and the recording still holds all', async () => {
    clearDmarcAsked();
    const input = envelope({ ip: '192.0.2.9' }); // SPF fails: DMARC rests on the record alone
    const before = { ...dmarcPrefetches };
    for (const round of [1, 2, 3]) {
      const raw = message();
      const direct = await authenticate({ message: raw, ...input, resolver });
      const { auth, live, recording } = await replayed(raw, input);
      expect(live, `round ${round}`).toEqual([]);
      expect({ ...auth, headers: '' }).toEqual({ ...direct, headers: '' });
      expect(auth.dmarc).toMatchObject({ result: 'fail', policy: 'reject', domain: 'flamecrm.ru' });
      expect(recording.map(([q]) => q)).toContain('TXT _dmarc.flamecrm.ru');
    }
    // evaluated for the first message; the two after it asked the kept questions
    expect(dmarcPrefetches.evaluated - before.evaluated).toBe(1);
    expect(dmarcPrefetches.kept - before.kept).toBe(2);
  });

  it('evaluates DMARC again when an answer is not the one kept, and records what it asks now', async () => {
    clearDmarcAsked();
    const input = envelope({ ip: '127.9.9.9', mailFrom: 'ann@news.memo.test', helo: 'mail.memo.test' });
    dns.setRecords('_dmarc.news.memo.test', 'TXT', ['v=DMARC1; p=reject']);
    dns.setRecords('_dmarc.memo.test', 'TXT', ['v=DMARC1; p=none']);
    const first = await replayed(message('ann@news.memo.test'), input);
    expect(first.auth.dmarc).toMatchObject({ result: 'fail', policy: 'reject', domain: 'news.memo.test' });
    // the subdomain's record goes: DMARC now looks for the organization's, which the kept
    // questions do not hold
    dns.setRecords('_dmarc.news.memo.test', 'TXT', []);
    dns.setRecords('_dmarc.memo.test', 'TXT', ['v=DMARC1; p=quarantine']);
    const before = { ...dmarcPrefetches };
    const raw = message('ann@news.memo.test');
    const direct = await authenticate({ message: raw, ...input, resolver });
    const second = await replayed(raw, input);
    expect(dmarcPrefetches.evaluated - before.evaluated).toBe(1);
    expect(dmarcPrefetches.kept - before.kept).toBe(0);
    expect(second.live).toEqual([]);
    expect(second.auth.dmarc).toMatchObject({ result: 'fail', policy: 'quarantine', domain: 'news.memo.test' });
    expect({ ...second.auth, headers: '' }).toEqual({ ...direct, headers: '' });
  });

  it('keeps questions by the Author Domain DMARC reads: a From of two domains keeps none for the second', async () => {
    clearDmarcAsked();
    const input = envelope({ ip: '192.0.2.9', mailFrom: 'bounce@mailer.memo.test', helo: 'mailer.memo.test' });
    dns.setRecords('_dmarc.victim.memo.test', 'TXT', ['v=DMARC1; p=reject']);
    // read by DMARC as two Author Domains: evaluated, nothing asked, nothing to keep for victim's
    const forged = await replayed(message('a@evil.memo.test@victim.memo.test'), input);
    expect(forged.auth.dmarc.result).toBe('none');
    const before = { ...dmarcPrefetches };
    const real = await replayed(message('ceo@victim.memo.test'), input);
    expect(dmarcPrefetches.evaluated - before.evaluated).toBe(1);
    expect(real.recording.map(([q]) => q)).toContain('TXT _dmarc.victim.memo.test');
    expect(real.live).toEqual([]);
    expect(real.auth.dmarc).toMatchObject({ result: 'fail', policy: 'reject', domain: 'victim.memo.test' });
  });

  it('records a question still open at the budget as a timeout (a temperror), and asks it no more', async () => {
    const input = envelope({ mailFrom: 'someone@spf-timeout.ru' });
    const fetch = new AuthDnsFetch(resolver, input);
    const started = performance.now();
    const recording = await fetch.record(message('someone@spf-timeout.ru'), started + 100);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(recording).toContainEqual([
      'TXT _spf.unresponsive.test',
      { error: expect.objectContaining({ code: 'ETIMEOUT' }) },
    ]);
    // SPF had not finished: the steps evaluate it again, on the recording, where that is a timeout
    expect(fetch.spfResult).toBeUndefined();
    const live: string[] = [];
    const auth = await authenticate({
      message: message('someone@spf-timeout.ru'),
      ...input,
      resolver: replayResolver(recording, (name, type) => {
        live.push(`${type} ${name}`);
        return resolver(name, type);
      }),
    });
    expect(auth.spf.result).toBe('temperror');
    expect(live).toEqual([]);
  });
});

describe(`at most ${DKIM_MAX_SIGNATURES} DKIM signatures verified`, () => {
  /** `n` valid signatures of other selectors (l=1, their body hash right, their b= random) above `below`. */
  const flood = (n: number, below: Buffer, bodyStart: string) =>
    Buffer.concat([
      Buffer.from(
        Array.from(
          { length: n },
          (_, i) =>
            `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=flamecrm.ru; s=flood${i}; l=1; h=from; ` +
            `bh=${crypto.createHash('sha256').update(bodyStart).digest('base64')}; ` +
            `b=${crypto.randomBytes(256).toString('base64')}\r\n`,
        ).join(''),
      ),
      below,
    ]);

  it(`past the cap: not verified, no pass, no key looked up; counted`, async () => {
    const signed = await dkimSigned(message(), 'flamecrm.ru', 'mail', keys.flamecrm!);
    const before = dns.queries.length;
    // the good signature comes last, past the cap
    const auth = await authenticate({ message: flood(20, signed, 'T'), ...envelope({ ip: '127.9.9.9' }), resolver });
    expect(auth.dkim).toHaveLength(DKIM_MAX_SIGNATURES);
    expect(auth.dkim.every((row) => row.result !== 'pass')).toBe(true);
    expect(auth.dkimUnverified).toBe(21 - DKIM_MAX_SIGNATURES);
    const keyQueries = dns.queries.slice(before).filter((q) => q.includes('._domainkey.'));
    expect(keyQueries.length).toBeLessThanOrEqual(DKIM_MAX_SIGNATURES);
    expect(OVER_LIMIT).toContain(String(DKIM_MAX_SIGNATURES));
  });

  it('within the cap: verified as before', async () => {
    const signed = await dkimSigned(message(), 'flamecrm.ru', 'mail', keys.flamecrm!);
    const auth = await authenticate({
      message: flood(DKIM_MAX_SIGNATURES - 1, signed, 'T'),
      ...envelope({ ip: '127.9.9.9' }),
      resolver,
    });
    expect(auth.dkim).toHaveLength(DKIM_MAX_SIGNATURES);
    expect(auth.dkim.filter((row) => row.result === 'pass').map((row) => row.selector)).toEqual(['mail']);
    expect(auth.dkimUnverified).toBe(0);
  });
});

describe('answers that come after the budget, kept for the retry', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    clearLateAnswers();
  });

  /**
   * One message whose SPF record (TXT late.test) comes after the budget as `outcome`; then the
   * questions a retry `afterMs` later asks the live resolver.
   */
  const retryAsks = async (outcome: () => Promise<unknown>, afterMs: number): Promise<string[]> => {
    clearLateAnswers();
    const input = envelope({ mailFrom: 'someone@late.test' });
    let answer: (() => void) | undefined;
    const slow: Resolver = (name, type) =>
      name === 'late.test' && type === 'TXT'
        ? new Promise((resolve, reject) => {
            answer = () => outcome().then(resolve, reject);
          })
        : Promise.reject(Object.assign(new Error('nx'), { code: 'ENOTFOUND' }));
    const recording = await new AuthDnsFetch(slow, input).record(message('someone@late.test'), performance.now() + 50);
    expect(recording).toContainEqual(['TXT late.test', { error: expect.objectContaining({ code: 'ETIMEOUT' }) }]);
    answer?.();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const now = Date.now();
    vi.spyOn(Date, 'now').mockReturnValue(now + afterMs);
    const asked: string[] = [];
    const live: Resolver = (name, type) => {
      asked.push(`${type} ${name}`);
      return slow(name, type);
    };
    const retry = new AuthDnsFetch(live, input);
    await retry.record(message('someone@late.test'), performance.now() + 50);
    return asked.filter((q) => q === 'TXT late.test');
  };
  const spfRecord = () => Promise.resolve([['v=spf1 -all']]);
  const noSuchName = () =>
    Promise.reject(Object.assign(new Error('queryTxt ENOTFOUND late.test'), { code: 'ENOTFOUND' }));

  it('a record: kept for the retries of the first hour', async () => {
    expect(await retryAsks(spfRecord, LATE_NEGATIVE_KEEP_MS + 60_000)).toEqual([]);
    expect(await retryAsks(spfRecord, LATE_KEEP_MS + 60_000)).toEqual(['TXT late.test']);
  });

  it('no such name: kept for the first retry only, then asked again (it may have been published since)', async () => {
    expect(await retryAsks(noSuchName, 60_000)).toEqual([]);
    expect(await retryAsks(noSuchName, LATE_NEGATIVE_KEEP_MS + 60_000)).toEqual(['TXT late.test']);
  });
});
