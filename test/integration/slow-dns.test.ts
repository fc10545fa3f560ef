// Hostile DNS: a sender whose authoritative DNS answers slowly, and a message with hundreds of
// DKIM signatures, hold neither the one worker thread nor other senders' messages. The DNS of
// authentication is fetched on the main thread (src/mail/auth-dns.ts), SPF from the start of
// DATA; the worker replays the answers. Real server, real PostgreSQL, a real DNS server that
// delays the slow domain's answers, clients bound to loopback addresses of different networks.
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DKIM_MAX_SIGNATURES } from '../../src/mail/dkim-limit.js';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { loadZones, publishDkimKey, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { dkimSigned } from '../helpers/mail-auth.js';
import { SMTP_ZONES, startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, deliver, type Reply } from '../helpers/smtp-client.js';

/** Each answer of the slow domain comes this late; its SPF needs three in a row. */
const DELAY_MS = 3_000;
/**
 * What another sender's reply may take meanwhile (the first also starts the worker thread): generous
 * for a loaded machine, and well under the slow one's 9 s, which a held worker makes it wait.
 */
const PROMPT_MS = 5_000;

let db: TestDatabase;
let dns: TestDnsServer;
let server: TestServer;
let key: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dns = await startDnsServer(loadZones(SMTP_ZONES));
  // SPF: the record, an include, and the include's include, each DELAY_MS late (9 s in a row)
  dns.setRecords('slow.test', 'TXT', ['v=spf1 include:a.slow.test -all']);
  dns.setRecords('a.slow.test', 'TXT', ['v=spf1 include:b.slow.test -all']);
  dns.setRecords('b.slow.test', 'TXT', ['v=spf1 ip4:127.0.0.5 -all']);
  dns.setRecords('_dmarc.slow.test', 'TXT', ['v=DMARC1; p=reject']);
  dns.setDelay('slow.test', DELAY_MS);
  key = publishDkimKey(dns, 'flood.test', 'mail');
  dns.setRecords('flood.test', 'TXT', ['v=spf1 -all']);
  dns.setRecords('_dmarc.flood.test', 'TXT', ['v=DMARC1; p=reject']);
  server = await startTestServer(
    db.url,
    {
      AUTH_POLICY: 'enforce',
      TICKET_MAX_MESSAGES_PER_HOUR: '0',
      OUTBOX_SEND_IN_SERVE: 'false',
      LOG_LEVEL: 'info',
      // one thread, every message on it (as on a 2-core machine)
      PIPELINE_WORKERS: '1',
      PIPELINE_INLINE_MAX_BYTES: '0',
      // a lookup (3 x 5 s, src/mail/dns.ts) outlasts the slow answers; the budget the slow SPF's 9 s
      DNS_TIMEOUT_MS: '5000',
      AUTH_DNS_BUDGET_MS: '15000',
      HOOK_TIMEOUT_MS: '40000',
    },
    dns,
  );
  await insertTestTicket(db.pool, 'TKT-7001', 'client@slow.test');
  await insertTestTicket(db.pool, 'TKT-7002', 'client@example.ru');
  await insertTestTicket(db.pool, 'TKT-7003', 'client@flood.test');
}, 60_000);

afterAll(async () => {
  await server?.close();
  await dns?.close();
  await db?.drop();
});

const timed = async (reply: Promise<Reply>) => {
  const started = performance.now();
  const r = await reply;
  return { ...r, ms: performance.now() - started };
};

describe('a sender whose DNS answers slowly', () => {
  it("holds neither the worker nor other senders' replies, and still gets its own answer", async () => {
    const slowTo = 'support+TKT-7001@flamecrm.ru';
    const slow = timed(
      deliver(server.port, {
        ip: '127.0.0.5',
        from: 'client@slow.test',
        to: [slowTo],
        message: buildMessage({ from: 'client@slow.test', to: slowTo, messageId: '<slow-1@slow.test>' }),
      }),
    );
    // the slow one is in DATA, waiting on its DNS
    await expect.poll(() => dns.queries.includes('TXT slow.test'), { timeout: 10_000 }).toBe(true);
    const to = 'support+TKT-7002@flamecrm.ru';
    for (let i = 0; i < 3; i++) {
      const other = await timed(
        deliver(server.port, {
          ip: '127.0.0.2',
          from: 'client@example.ru',
          to: [to],
          message: buildMessage({ from: 'client@example.ru', to, messageId: `<fast-${i}@example.ru>` }),
        }),
      );
      expect(`${other.code} ${other.enhanced}`).toBe('250 2.0.0');
      expect(other.ms).toBeLessThan(PROMPT_MS);
    }
    const own = await slow;
    // all three answers came, so SPF passed for its own server: the requester is accepted
    expect(`${own.code} ${own.enhanced}`).toBe('250 2.0.0');
    expect(own.ms).toBeGreaterThan(2 * DELAY_MS);
    // the steps in the worker asked nothing themselves: each slow question was looked up once
    // (c-ares may have tried it more than once, with one DNS id)
    for (const name of ['slow.test', 'a.slow.test', 'b.slow.test', '_dmarc.slow.test'])
      expect(dns.lookups.filter((q) => q === `TXT ${name}`)).toHaveLength(1);
    const logged = server.logsWithCode('DATA_COMMITTED').find((l) => l.messageId === '<slow-1@slow.test>');
    expect(logged?.auth).toBe('AUTH_ACCEPTED');
  }, 60_000);
});

describe('a message with hundreds of DKIM signatures', () => {
  it(`is answered promptly; only ${DKIM_MAX_SIGNATURES} are verified, the rest count for nothing`, async () => {
    const to = 'support+TKT-7003@flamecrm.ru';
    const base = Buffer.from(buildMessage({ from: 'client@flood.test', to, messageId: '<flood-1@flood.test>' }));
    // one good signature first; then 349 that each name another selector (a key lookup each), sign
    // only the first byte of the body (l=1: a body hash each, and it matches, so the key is looked
    // up), and whose b= is random bytes
    const signed = await dkimSigned(base, 'flood.test', 'mail', key);
    const good = signed.subarray(0, signed.length - base.length);
    const firstByteHash = crypto.createHash('sha256').update('T').digest('base64');
    const floods = Array.from(
      { length: 349 },
      (_, i) =>
        `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=flood.test; s=sel${i}; l=1; h=from:to:subject; ` +
        `bh=${firstByteHash}; b=${crypto.randomBytes(256).toString('base64')}\r\n`,
    );
    const message = Buffer.concat([good, Buffer.from(floods.join('')), base]);
    const before = dns.queries.length;
    const r = await timed(deliver(server.port, { ip: '127.0.0.6', from: 'client@flood.test', to: [to], message }));
    // the good one is among those verified: it authenticates the requester
    expect(`${r.code} ${r.enhanced}`).toBe('250 2.0.0');
    expect(r.ms).toBeLessThan(10_000);
    const keyQueries = dns.queries.slice(before).filter((q) => q.includes('._domainkey.flood.test'));
    expect(new Set(keyQueries).size).toBeLessThanOrEqual(DKIM_MAX_SIGNATURES);
    expect(server.logsWithCode('AUTH_DKIM_SIGNATURES_CAPPED')).toHaveLength(1);
  }, 60_000);
});

describe('a sender whose DNS takes longer than AUTH_DNS_BUDGET_MS', () => {
  let short: TestServer;
  beforeAll(async () => {
    // SPF: four answers in a row, each 2 s late (8 s); the budget is 3 s
    dns.setRecords('slower.test', 'TXT', ['v=spf1 include:a.slower.test -all']);
    dns.setRecords('a.slower.test', 'TXT', ['v=spf1 include:b.slower.test -all']);
    dns.setRecords('b.slower.test', 'TXT', ['v=spf1 include:c.slower.test -all']);
    dns.setRecords('c.slower.test', 'TXT', ['v=spf1 ip4:127.0.0.7 -all']);
    dns.setRecords('_dmarc.slower.test', 'TXT', ['v=DMARC1; p=reject']);
    dns.setDelay('slower.test', 2_000);
    short = await startTestServer(
      db.url,
      {
        AUTH_POLICY: 'enforce',
        TICKET_MAX_MESSAGES_PER_HOUR: '0',
        OUTBOX_SEND_IN_SERVE: 'false',
        LOG_LEVEL: 'info',
        PIPELINE_WORKERS: '1',
        DNS_TIMEOUT_MS: '5000',
        AUTH_DNS_BUDGET_MS: '3000',
        // the retry comes after the resolver's cache has let the answers go (as a real retry, minutes later)
        DNS_CACHE_SECONDS: '0',
      },
      dns,
    );
    await insertTestTicket(db.pool, 'TKT-7004', 'client@slower.test');
  }, 60_000);
  afterAll(() => short?.close());

  it('gets 451 4.7.24 once; the lookups go on, and its retry is answered from what they learned', async () => {
    const to = 'support+TKT-7004@flamecrm.ru';
    const send = () =>
      timed(
        deliver(short.port, {
          ip: '127.0.0.7',
          from: 'client@slower.test',
          to: [to],
          message: buildMessage({ from: 'client@slower.test', to, messageId: '<slower-1@slower.test>' }),
        }),
      );
    const first = await send();
    expect(`${first.code} ${first.enhanced}`).toBe('451 4.7.24');
    expect(first.ms).toBeLessThan(8_000);
    // the last answer of the chain, after the reply
    await expect.poll(() => dns.queries.includes('TXT c.slower.test'), { timeout: 15_000, interval: 200 }).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const retry = await send();
    expect(`${retry.code} ${retry.enhanced}`).toBe('250 2.0.0');
    expect(retry.ms).toBeLessThan(PROMPT_MS);
  }, 60_000);
});
