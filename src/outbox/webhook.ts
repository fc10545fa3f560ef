// The 'webhook' kind of delivery: every committed ticket message POSTed to CRM_WEBHOOK_URL as JSON,
// signed (webhook-signature.ts). The body — with the event id the CRM de-duplicates by — is built
// at the first attempt from the stored message (the JSON of src/api/ticket-json.ts) and re-sent
// byte for byte on every retry; only the timestamp and the signature are of each attempt.
import { z } from 'zod';
import { TEXT_PREVIEW_CHARS } from '../api/limits.js';
import { MessageJson, messagesJson, TicketJson, ticketJson } from '../api/ticket-json.js';
import type { Config } from '../config.js';
import type { ClaimedRow } from '../db/outbox.js';
import type { Pool } from '../db/pool.js';
import { findTicket, findTicketMessageBounded } from '../db/queries.js';
import { type Delivery, type DeliveryResult, PermanentFailure } from './delivery.js';
import { shownUrl, WEBHOOK_EVENT, type WebhookPayload } from './notify.js';
import { EVENT_ID_HEADER, signWebhook } from './webhook-signature.js';

export const WebhookEvent = z
  .object({
    id: z.string().describe('the event id: the same on every retry; de-duplicate by it'),
    type: z.literal(WEBHOOK_EVENT),
    createdAt: z.iso.datetime().describe('when the event was queued: the commit of the message'),
    ticket: TicketJson.nullable().describe('the ticket at the first attempt; null if it no longer exists'),
    message: MessageJson,
  })
  .meta({ id: 'WebhookEvent' });
export type WebhookEvent = z.infer<typeof WebhookEvent>;

export interface WebhookSettings {
  url: string;
  secret: string;
  timeoutMs: number;
}

export const webhookSettings = (
  config: Pick<Config, 'crmWebhookUrl' | 'crmWebhookSecret' | 'crmWebhookTimeoutMs'>,
): WebhookSettings | null =>
  config.crmWebhookUrl && config.crmWebhookSecret
    ? { url: config.crmWebhookUrl, secret: config.crmWebhookSecret, timeoutMs: config.crmWebhookTimeoutMs }
    : null;

/** The body of the event: the message as GET /v1/tickets/{id}?full=true shows it, and its ticket. */
export async function composeWebhook(pool: Pool, row: ClaimedRow): Promise<Buffer> {
  const { eventId } = row.payload as WebhookPayload;
  if (!eventId) throw new PermanentFailure('a webhook row without an event id');
  if (!row.ticketMessageId) throw new PermanentFailure('a webhook row without a ticket message');
  const message = await findTicketMessageBounded(pool, null, { id: row.ticketMessageId }, TEXT_PREVIEW_CHARS);
  if (!message) throw new PermanentFailure(`ticket message ${row.ticketMessageId} no longer exists`);
  const ticket = await findTicket(pool, message.ticketId);
  const event: WebhookEvent = {
    id: eventId,
    type: WEBHOOK_EVENT,
    createdAt: row.createdAt.toISOString(),
    ticket: ticket ? ticketJson(ticket) : null,
    message: (await messagesJson(pool, [message], true))[0]!,
  };
  return Buffer.from(JSON.stringify(WebhookEvent.parse(event)));
}

/** What a CRM answered, for the outbox row: "HTTP 503 Service Unavailable: <the start of its body>". */
async function describe(res: Response): Promise<string> {
  const text = (await start(res, 1024)).replace(/\s+/g, ' ').trim().slice(0, 200);
  return `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}${text ? `: ${text}` : ''}`;
}

/** The first bytes of a body, never more: a CRM's error page can be large, or never end. */
async function start(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < max) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } catch {
    // what arrived is enough to describe the answer
  } finally {
    reader.cancel().catch(() => {});
  }
  return Buffer.concat(chunks).subarray(0, max).toString('utf8');
}

/** One POST: any 2xx is delivered; anything else, or no answer in time, is tried again later. */
export async function postWebhook(
  s: WebhookSettings,
  body: Buffer,
  eventId: string,
  signal: AbortSignal,
  now = Date.now(),
): Promise<DeliveryResult> {
  const timeout = AbortSignal.timeout(s.timeoutMs);
  let res: Response;
  try {
    res = await fetch(s.url, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'ticket-mx',
        [EVENT_ID_HEADER]: eventId,
        ...signWebhook(s.secret, body, now),
      },
      // a signed event goes where it was configured to, never where a redirect points
      redirect: 'manual',
      signal: AbortSignal.any([signal, timeout]),
    });
  } catch (err) {
    if (timeout.aborted) return { outcome: 'deferred', reply: `no answer within ${s.timeoutMs} ms`, timedOut: true };
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return { outcome: 'deferred', reply: cause?.code ?? cause?.message ?? (err as Error).message };
  }
  const reply = await describe(res);
  return res.status >= 200 && res.status < 300 ? { outcome: 'sent', reply } : { outcome: 'deferred', reply };
}

/**
 * To this sender's CRM_WEBHOOK_URL, not the row's recipient (the URL it was queued for): a corrected
 * URL delivers what waited for it.
 */
export function webhookDelivery(pool: Pool, s: WebhookSettings): Delivery {
  return {
    kind: 'webhook',
    target: shownUrl(s.url),
    prepare: (row) => composeWebhook(pool, row),
    deliver: (row, content, signal) => postWebhook(s, content, (row.payload as WebhookPayload).eventId, signal),
    close: async () => {},
  };
}
