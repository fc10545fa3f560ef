// The webhook's signature as a receiver checks it: computed independently (WebCrypto), verified by
// our verifier, refused when a byte, the timestamp or the secret differs, or when it is stale.
import { describe, expect, it } from 'vitest';
import { signWebhook, TOLERANCE_SECONDS, verifyWebhook } from '../../src/outbox/webhook-signature.js';

const SECRET = 's'.repeat(40);
const body = Buffer.from('{"id":"e1","message":{"text":"Привет"}}');
const now = Date.UTC(2026, 0, 27, 12, 0, 0);

async function webCryptoHmac(secret: string, text: Buffer): Promise<string> {
  const key = await crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  return Buffer.from(await crypto.subtle.sign('HMAC', key, text)).toString('hex');
}

describe('webhook signature', () => {
  it('is HMAC-SHA256 over "<timestamp>.<body bytes>", hex, as v1=…', async () => {
    const h = signWebhook(SECRET, body, now);
    expect(h['x-ticketmx-timestamp']).toBe(String(now / 1000));
    const expected = await webCryptoHmac(SECRET, Buffer.concat([Buffer.from(`${now / 1000}.`), body]));
    expect(h['x-ticketmx-signature']).toBe(`v1=${expected}`);
  });

  it('verifies what was signed, within the tolerance either way', () => {
    const h = signWebhook(SECRET, body, now);
    const headers = { timestamp: h['x-ticketmx-timestamp'], signature: h['x-ticketmx-signature'] };
    expect(verifyWebhook(SECRET, body, headers, now)).toEqual({ ok: true });
    expect(verifyWebhook(SECRET, body.toString('utf8'), headers, now + TOLERANCE_SECONDS * 1000)).toEqual({ ok: true });
    expect(verifyWebhook(SECRET, body, headers, now - TOLERANCE_SECONDS * 1000)).toEqual({ ok: true });
  });

  it.each([
    ['another body', { body: Buffer.from(body.toString('utf8').replace('e1', 'e2')) }, 'signature does not match'],
    ['another secret', { secret: 't'.repeat(40) }, 'signature does not match'],
    ['another timestamp', { timestamp: String(now / 1000 + 1) }, 'signature does not match'],
    ['a stale timestamp', { at: now + (TOLERANCE_SECONDS + 1) * 1000 }, 'timestamp too old'],
    ['no timestamp', { timestamp: '' }, 'no timestamp'],
    ['no signature', { signature: '' }, 'no v1 signature'],
    ['a signature of another scheme', { signature: `v0=${'0'.repeat(64)}` }, 'no v1 signature'],
  ])(
    'refuses %s',
    (_what, change: { body?: Buffer; secret?: string; timestamp?: string; signature?: string; at?: number }, why) => {
      const h = signWebhook(SECRET, body, now);
      const verdict = verifyWebhook(
        change.secret ?? SECRET,
        change.body ?? body,
        {
          timestamp: change.timestamp ?? h['x-ticketmx-timestamp'],
          signature: change.signature ?? h['x-ticketmx-signature'],
        },
        change.at ?? now,
      );
      expect(verdict).toEqual({ ok: false, why });
    },
  );
});
