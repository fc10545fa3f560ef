// The signature of a CRM webhook: HMAC-SHA256 with CRM_WEBHOOK_SECRET over "<timestamp>.<body>",
// sent as `X-TicketMx-Signature: v1=<hex>` beside `X-TicketMx-Timestamp: <unix seconds>`. The
// timestamp is that of the attempt, so a captured request cannot be replayed later; the body is the
// same bytes on every attempt. verifyWebhook is what a receiver does (README "Webhook to the CRM").
import crypto from 'node:crypto';

export const SIGNATURE_HEADER = 'x-ticketmx-signature';
export const TIMESTAMP_HEADER = 'x-ticketmx-timestamp';
export const EVENT_ID_HEADER = 'x-ticketmx-event-id';
/** A receiver refuses a timestamp further than this from its clock (replays, and clocks far apart). */
export const TOLERANCE_SECONDS = 300;

const mac = (secret: string, timestamp: string, body: Buffer | string) =>
  crypto.createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');

/** The two headers of one attempt. */
export function signWebhook(
  secret: string,
  body: Buffer | string,
  now = Date.now(),
): { [TIMESTAMP_HEADER]: string; [SIGNATURE_HEADER]: string } {
  const timestamp = String(Math.floor(now / 1000));
  return { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: `v1=${mac(secret, timestamp, body)}` };
}

export type Verdict = { ok: true } | { ok: false; why: string };

/** The receiver's check: the signature is ours over these bytes, and the timestamp is recent. */
export function verifyWebhook(
  secret: string,
  body: Buffer | string,
  headers: { timestamp?: string | null; signature?: string | null },
  now = Date.now(),
): Verdict {
  const { timestamp, signature } = headers;
  if (!timestamp || !/^\d{1,12}$/.test(timestamp)) return { ok: false, why: 'no timestamp' };
  if (Math.abs(now / 1000 - Number(timestamp)) > TOLERANCE_SECONDS) return { ok: false, why: 'timestamp too old' };
  const given = /^v1=([0-9a-f]{64})$/.exec(signature?.trim() ?? '')?.[1];
  if (!given) return { ok: false, why: 'no v1 signature' };
  return crypto.timingSafeEqual(Buffer.from(given, 'hex'), Buffer.from(mac(secret, timestamp, body), 'hex'))
    ? { ok: true }
    : { ok: false, why: 'signature does not match' };
}
