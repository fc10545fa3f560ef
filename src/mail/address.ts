// What a recipient address means to us, decided from the address alone (no I/O):
// foreign domain, postmaster/abuse, a ticket tag, a VERP bounce address, or nothing we know; signed
// reply addresses (support+TKT-1.<mac>@), so that an address cannot be guessed from a ticket number;
// and the signed envelope senders of our notifications (bounces+<outbox id>.<mac>@).
import crypto from 'node:crypto';
import { TICKET_ID } from './ticket-id.js';

export type Recipient =
  | { kind: 'foreign'; domain: string }
  | { kind: 'postmaster'; localPart: string }
  | { kind: 'ticket'; ticketId: string; mac: string | null }
  /** bounces+<outbox id>.<mac>@: where delivery reports of our notifications come back; null parts: malformed. */
  | { kind: 'bounce'; outboxId: string | null; mac: string | null }
  | { kind: 'bad-tag'; tag: string }
  | { kind: 'no-tag' }
  | { kind: 'unknown-mailbox' };

export interface AddressRules {
  mailDomains: readonly string[];
  supportLocalPart: string;
}

/**
 * An address a ticket's requester or a staff member is given by (the API, the CLI): one @, a dot in
 * the domain, no spaces, angle brackets or control characters. Not RFC 5322: what a person types.
 */
export const EMAIL_ADDRESS_RE = /^[^@\s<>\p{Cc}]+@[^@\s<>\p{Cc}]+\.[^@\s<>\p{Cc}]+$/u;

const ROLE_ACCOUNTS = new Set(['postmaster', 'abuse']);
/** The local part of our notifications' envelope senders (config.ts refuses it as SUPPORT_LOCAL_PART). */
export const BOUNCE_LOCAL_PART = 'bounces';
const BOUNCE_TAG_RE = /^(\d{1,18})\.([a-f0-9]{16})$/i;
// TKT-<digits>, optionally .<mac> when reply addresses are signed. Clients may lowercase it.
const TAG_RE = new RegExp(`^(${TICKET_ID})(?:\\.([a-z0-9_-]{4,64}))?$`, 'i');

export function classifyRecipient(address: string, rules: AddressRules): Recipient {
  const at = address.lastIndexOf('@');
  // RFC 5321 4.5.1: <postmaster> without a domain must be accepted.
  if (at < 0)
    return ROLE_ACCOUNTS.has(address.toLowerCase())
      ? { kind: 'postmaster', localPart: address.toLowerCase() }
      : { kind: 'unknown-mailbox' };
  const domain = address
    .slice(at + 1)
    .toLowerCase()
    .replace(/\.$/, '');
  if (!rules.mailDomains.includes(domain)) return { kind: 'foreign', domain };

  const localPart = address.slice(0, at).toLowerCase();
  if (ROLE_ACCOUNTS.has(localPart)) return { kind: 'postmaster', localPart };
  const plus = localPart.indexOf('+');
  const base = plus < 0 ? localPart : localPart.slice(0, plus);
  if (base === BOUNCE_LOCAL_PART) {
    const m = plus < 0 ? null : BOUNCE_TAG_RE.exec(localPart.slice(plus + 1));
    return { kind: 'bounce', outboxId: m ? m[1]! : null, mac: m ? m[2]!.toLowerCase() : null };
  }
  if (base !== rules.supportLocalPart) return { kind: 'unknown-mailbox' };
  if (plus < 0) return { kind: 'no-tag' };

  const tag = address.slice(0, at).slice(plus + 1);
  const m = TAG_RE.exec(tag);
  if (!m) return { kind: 'bad-tag', tag };
  return { kind: 'ticket', ticketId: m[1]!.toUpperCase(), mac: m[2] ?? null };
}

export interface SigningRules {
  replyAddressSecret: string | null;
  replyAddressSecretPrevious: string | null;
  replyAddressUnsigned: 'refuse' | 'accept';
}

const MAC_LENGTH = 12; // hex digits: 48 bits, far beyond what can be guessed over SMTP

/** A short HMAC of the ticket id; lower case because mail clients may lowercase addresses. */
export function macFor(ticketId: string, secret: string): string {
  return crypto.createHmac('sha256', secret).update(ticketId.toUpperCase()).digest('hex').slice(0, MAC_LENGTH);
}

export type SignatureCheck = 'valid' | 'not-required' | 'unsigned' | 'bad';

export function checkSignature(ticketId: string, mac: string | null, rules: SigningRules): SignatureCheck {
  if (!rules.replyAddressSecret) return 'not-required';
  if (mac === null) return rules.replyAddressUnsigned === 'accept' ? 'not-required' : 'unsigned';
  const given = Buffer.from(mac.toLowerCase());
  for (const secret of [rules.replyAddressSecret, rules.replyAddressSecretPrevious]) {
    if (!secret) continue;
    const expected = Buffer.from(macFor(ticketId, secret));
    // constant time, so the MAC cannot be found one character at a time
    if (given.length === expected.length && crypto.timingSafeEqual(given, expected)) return 'valid';
  }
  return 'bad';
}

/** The address staff reply to for a ticket: signed when a secret is set. */
export function replyAddress(ticketId: string, rules: AddressRules & Partial<SigningRules>): string {
  const mac = rules.replyAddressSecret ? `.${macFor(ticketId, rules.replyAddressSecret)}` : '';
  return `${rules.supportLocalPart}+${ticketId}${mac}@${rules.mailDomains[0]}`;
}

const VERP_MAC_LENGTH = 16; // hex digits

function verpMac(outboxId: string, secret: string): string {
  return crypto.createHmac('sha256', secret).update(`verp:${outboxId}`).digest('hex').slice(0, VERP_MAC_LENGTH);
}

/** The envelope sender of one outbox row's mail: its delivery reports come back to our own MX. */
export function bounceAddress(outboxId: string, secret: string, domain: string): string {
  return `${BOUNCE_LOCAL_PART}+${outboxId}.${verpMac(outboxId, secret)}@${domain}`;
}

/** Whether bounces+<outboxId>.<mac>@ is one we made (constant time). */
export function checkBounceMac(outboxId: string, mac: string, secret: string): boolean {
  const given = Buffer.from(mac.toLowerCase());
  const expected = Buffer.from(verpMac(outboxId, secret));
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}
