// Who is notified of what (pure): ticket created → staff; a staff reply → the requester; a reply of
// the requester → staff, and one of a third party (a stranger, or a staff From that did not
// authenticate, that AUTH_POLICY=monitor accepted) → staff as such; never the author of the message. Each
// notification is one outbox row of kind 'mail' per recipient, with its own random Message-ID.
// With CRM_WEBHOOK_URL, every new ticket message also gets one row of kind 'webhook' for the CRM,
// with its own random event id.
import crypto from 'node:crypto';
import type { Config } from '../config.js';
import type { NewOutboxRow } from '../db/outbox.js';
import type { Ticket } from '../db/queries.js';

export type NotificationEvent = 'ticket_created' | 'staff_reply' | 'requester_reply' | 'stranger_reply';
export type Audience = 'staff' | 'requester';

export interface NotifyRules {
  staffTo: readonly string[];
  notifyRequester: boolean;
  /** The domain of our Message-IDs: the first of MAIL_DOMAINS. */
  domain: string;
  /** CRM_WEBHOOK_URL: every new ticket message is POSTed there; null: no webhooks. */
  webhookUrl: string | null;
}

export const notifyRules = (
  config: Pick<Config, 'notifyStaffTo' | 'notifyRequester' | 'mailDomains' | 'crmWebhookUrl'>,
): NotifyRules =>
  Object.freeze({
    staffTo: config.notifyStaffTo,
    notifyRequester: config.notifyRequester,
    domain: config.mailDomains[0]!,
    webhookUrl: config.crmWebhookUrl,
  });

/** What a notification needs to know of the message that caused it. */
export interface NotifiableMessage {
  ticketId: string;
  authorAddress: string | null;
  authorRole: string | null;
  /**
   * The author is who they say: an SMTP message that passed authorization (AUTH_ACCEPTED), or one
   * typed into the CLI or the CRM. Only then does a staff reply go out to the requester: in
   * AUTH_POLICY=monitor a forged staff From must not become mail from our domain to a customer.
   */
  trusted: boolean;
}

/** The payload of a 'mail' outbox row (src/outbox/mail.ts renders it at the first attempt). */
export type MailPayload = {
  messageId: string;
  audience: Audience;
};

/**
 * `<notify-TKT-1-<24 hex>@flamecrm.ru>`: the random part keeps the bare support@ fallback unguessable.
 * src/mail/ticket-binding.ts reads the ticket back out of this form (a staff answer's In-Reply-To names its ticket).
 */
export function notificationMessageId(ticketId: string, domain: string): string {
  return `<notify-${ticketId}-${crypto.randomBytes(12).toString('hex')}@${domain}>`;
}

/** The event of a 'webhook' outbox row, and the `type` of the JSON the CRM gets. */
export const WEBHOOK_EVENT = 'ticket_message.created';

/** The payload of a 'webhook' outbox row (src/outbox/webhook.ts builds the body at the first attempt). */
export type WebhookPayload = { eventId: string };

/** A webhook URL as rows and logs show it: without its query, where a CRM's token may sit. */
export function shownUrl(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}${u.search ? '?…' : ''}`;
}

/** The CRM's webhook of one new ticket message, when CRM_WEBHOOK_URL is set; an empty list otherwise. */
export function webhookFor(ticketId: string, rules: NotifyRules): NewOutboxRow[] {
  if (!rules.webhookUrl) return [];
  const payload: WebhookPayload = { eventId: crypto.randomUUID() };
  return [{ kind: 'webhook', event: WEBHOOK_EVENT, ticketId, recipient: shownUrl(rules.webhookUrl), payload }];
}

const same = (a: string | null, b: string) => !!a && a.toLowerCase() === b.toLowerCase();

function mail(event: NotificationEvent, audience: Audience, ticketId: string, to: string, rules: NotifyRules) {
  const payload: MailPayload = { messageId: notificationMessageId(ticketId, rules.domain), audience };
  return { kind: 'mail', event, ticketId, recipient: to.toLowerCase(), payload } satisfies NewOutboxRow;
}

/** The notifications of new ticket messages; `ticketMessageId` is filled in where each message is inserted. */
export function notificationsFor(
  messages: readonly NotifiableMessage[],
  tickets: readonly Ticket[],
  rules: NotifyRules,
): NewOutboxRow[] {
  const rows: NewOutboxRow[] = [];
  for (const m of messages) {
    const ticket = tickets.find((t) => t.id === m.ticketId);
    if (!ticket) continue;
    // every committed message, whoever wrote it: the CRM sees the verdict in the event
    rows.push(...webhookFor(ticket.id, rules));
    if (m.authorRole === 'staff' && m.trusted) {
      if (rules.notifyRequester && !same(m.authorAddress, ticket.requester))
        rows.push(mail('staff_reply', 'requester', ticket.id, ticket.requester, rules));
      continue;
    }
    // the requester, or anyone else the policy accepted (AUTH_POLICY=monitor): staff should know, and
    // know which: a third party's message is not the requester's, and neither is a staff From that
    // did not authenticate (to staff it is a third party's, whoever it claims to be)
    const event = m.authorRole === 'stranger' || m.authorRole === 'staff' ? 'stranger_reply' : 'requester_reply';
    for (const to of rules.staffTo)
      if (!same(m.authorAddress, to)) rows.push(mail(event, 'staff', ticket.id, to, rules));
  }
  return rows;
}

/** "Ticket created" for staff, whoever created it (the first message, if any, is in the mail). */
export function ticketCreatedNotifications(ticket: Ticket, rules: NotifyRules): NewOutboxRow[] {
  return rules.staffTo
    .filter((to) => !same(ticket.requester, to))
    .map((to) => mail('ticket_created', 'staff', ticket.id, to, rules));
}
