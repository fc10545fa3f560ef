// Recipient classification: the RCPT_* rows of the README's "What it answers", from the address alone.
import { describe, expect, it } from 'vitest';
import {
  bounceAddress,
  checkBounceMac,
  classifyRecipient,
  EMAIL_ADDRESS_RE,
  replyAddress,
} from '../../src/mail/address.js';
import {
  canonicalTicketId,
  findReferenced,
  NEW_TICKET_ID_RE,
  namesTicket,
  parseTicketId,
  TICKET_ID_RE,
} from '../../src/mail/ticket-id.js';
import { ticketReferences } from '../../src/mail/ticket-ref.js';

const rules = { mailDomains: ['flamecrm.ru', 'help.flamecrm.ru'], supportLocalPart: 'support' };

describe('classifyRecipient', () => {
  it.each([
    ['support+TKT-12345@flamecrm.ru', { kind: 'ticket', ticketId: 'TKT-12345', mac: null }],
    ['support+tkt-12345@FLAMECRM.RU', { kind: 'ticket', ticketId: 'TKT-12345', mac: null }],
    ['Support+Tkt-7@help.flamecrm.ru', { kind: 'ticket', ticketId: 'TKT-7', mac: null }],
    ['support+TKT-7.ab12cd34@flamecrm.ru', { kind: 'ticket', ticketId: 'TKT-7', mac: 'ab12cd34' }],
    ['support+TKT-7@flamecrm.ru.', { kind: 'ticket', ticketId: 'TKT-7', mac: null }],
    ['support+TKT-@flamecrm.ru', { kind: 'bad-tag', tag: 'TKT-' }],
    ['support+TKT-1-2@flamecrm.ru', { kind: 'bad-tag', tag: 'TKT-1-2' }],
    ['support+12345@flamecrm.ru', { kind: 'bad-tag', tag: '12345' }],
    ['support+TKT-1234567890123456789@flamecrm.ru', { kind: 'bad-tag', tag: 'TKT-1234567890123456789' }],
    ['support@flamecrm.ru', { kind: 'no-tag' }],
    ['info@flamecrm.ru', { kind: 'unknown-mailbox' }],
    ['supporter+TKT-1@flamecrm.ru', { kind: 'unknown-mailbox' }],
    ['postmaster@flamecrm.ru', { kind: 'postmaster', localPart: 'postmaster' }],
    ['ABUSE@help.flamecrm.ru', { kind: 'postmaster', localPart: 'abuse' }],
    ['Postmaster', { kind: 'postmaster', localPart: 'postmaster' }],
    ['support', { kind: 'unknown-mailbox' }],
    ['support+TKT-1@gmail.com', { kind: 'foreign', domain: 'gmail.com' }],
    ['support+TKT-1@sub.help.flamecrm.ru', { kind: 'foreign', domain: 'sub.help.flamecrm.ru' }],
    ['postmaster@example.org', { kind: 'foreign', domain: 'example.org' }],
    ['bounces+42.0123456789abcdef@flamecrm.ru', { kind: 'bounce', outboxId: '42', mac: '0123456789abcdef' }],
    ['Bounces+42.0123456789ABCDEF@help.flamecrm.ru', { kind: 'bounce', outboxId: '42', mac: '0123456789abcdef' }],
    ['bounces@flamecrm.ru', { kind: 'bounce', outboxId: null, mac: null }],
    ['bounces+42@flamecrm.ru', { kind: 'bounce', outboxId: null, mac: null }],
    ['bounces+42.0123@flamecrm.ru', { kind: 'bounce', outboxId: null, mac: null }],
    ['bounces+x.0123456789abcdef@flamecrm.ru', { kind: 'bounce', outboxId: null, mac: null }],
    ['bounces+42.0123456789abcdef@gmail.com', { kind: 'foreign', domain: 'gmail.com' }],
  ])('%s', (address, expected) => {
    expect(classifyRecipient(address, rules)).toEqual(expected);
  });
});

describe('ticket ids: one definition for addresses, X-Ticket-ID, subjects, the API and the CLI', () => {
  it.each([
    ['TKT-12345', 'TKT-12345'],
    ['tkt-7', 'TKT-7'],
    ['Tkt-123456789012345678', 'TKT-123456789012345678'],
    ['TKT-1234567890123456789', null],
    ['TKT-', null],
    ['TKT-1.abcd', null],
    [' TKT-1', null],
    ['TKT-١', null], // digits of other scripts are not ticket numbers
  ])('%j → %j', (value, expected) => {
    expect(parseTicketId(value)).toBe(expected);
  });

  it('has no flags, so that the OpenAPI pattern means what the server checks', () => {
    expect(TICKET_ID_RE.flags).toBe('');
    expect(TICKET_ID_RE.source).toBe('^[Tt][Kk][Tt]-\\d{1,18}$');
  });

  // attack run 4, F-info-1: TKT-000000000000000001 was a ticket beside TKT-1
  it('makes new tickets only without leading zeros: one number, one ticket', () => {
    for (const id of ['TKT-1', 'tkt-42', 'TKT-0', 'TKT-123456789012345678'])
      expect(NEW_TICKET_ID_RE.test(id)).toBe(true);
    for (const id of ['TKT-01', 'TKT-000000000000000001', 'TKT-00', 'TKT-1234567890123456789', 'TKT-'])
      expect(NEW_TICKET_ID_RE.test(id)).toBe(false);
    expect(NEW_TICKET_ID_RE.flags).toBe('');
    expect(canonicalTicketId('TKT-000000000000000001')).toBe('TKT-1');
    expect(canonicalTicketId('tkt-0042')).toBe('TKT-42');
    expect(canonicalTicketId('TKT-000')).toBe('TKT-0');
    expect(canonicalTicketId('TKT-100')).toBe('TKT-100');
  });

  it('finds TKT-0001 as TKT-1, unless a ticket of that very id exists', async () => {
    const find = (have: string[]) => async (id: string) => (have.includes(id) ? id : null);
    expect(await findReferenced('TKT-0001', find(['TKT-1']))).toBe('TKT-1');
    expect(await findReferenced('TKT-0001', find(['TKT-1', 'TKT-0001']))).toBe('TKT-0001');
    expect(await findReferenced('TKT-0001', find([]))).toBeNull();
    expect(await findReferenced('TKT-1', find(['TKT-0001']))).toBeNull();
    expect(namesTicket('TKT-0001', 'TKT-1')).toBe(true);
    expect(namesTicket('TKT-0001', 'TKT-0001')).toBe(true);
    expect(namesTicket('TKT-1', 'TKT-0001')).toBe(false);
    expect(namesTicket('TKT-10', 'TKT-1')).toBe(false);
  });

  it('finds the id of X-Ticket-ID and of [TKT-…] in the subject, in any case and spacing', () => {
    const refs = (xTicketId: string | undefined, subject: string | null) =>
      ticketReferences({
        headers: new Map(xTicketId === undefined ? [] : [['x-ticket-id', xTicketId]]),
        subject,
        inReplyTo: null,
        references: [],
      });
    expect(refs(' tkt-42 ', 'Re: [ Tkt-7 ] Printer')).toMatchObject({ header: 'TKT-42', subject: 'TKT-7' });
    expect(refs('TKT-42 TKT-43', 'Re: TKT-7 Printer')).toMatchObject({ header: null, subject: null });
    expect(refs(undefined, 'Re: [TKT-1234567890123456789]')).toMatchObject({ header: null, subject: null });
  });
});

describe('EMAIL_ADDRESS_RE: a requester or staff address as the API and the CLI take it', () => {
  it.each([
    ['ann@example.ru', true],
    ['Ann.Berg+crm@mail.example.co.uk', true],
    ['анна@пример.рф', true],
    ['ann@localhost', false],
    ['ann@@example.ru', false],
    ['Ann <ann@example.ru>', false],
    ['ann @example.ru', false],
    ['ann\u0001@example.ru', false],
    ['ann@example.ru\u009b', false],
  ])('%j → %s', (value, ok) => {
    expect(EMAIL_ADDRESS_RE.test(value)).toBe(ok);
  });
});

describe('replyAddress', () => {
  it('uses the first mail domain', () => {
    expect(replyAddress('TKT-9', rules)).toBe('support+TKT-9@flamecrm.ru');
  });
});

describe('bounce addresses (VERP)', () => {
  const secret = 'the-verp-secret-of-this-database';

  it('signs the outbox id, and only the address made for that id verifies', () => {
    const address = bounceAddress('42', secret, 'flamecrm.ru');
    expect(address).toMatch(/^bounces\+42\.[0-9a-f]{16}@flamecrm\.ru$/);
    const parsed = classifyRecipient(address, rules);
    expect(parsed).toMatchObject({ kind: 'bounce', outboxId: '42' });
    const mac = (parsed as { mac: string }).mac;
    expect(checkBounceMac('42', mac, secret)).toBe(true);
    expect(checkBounceMac('43', mac, secret)).toBe(false);
    expect(checkBounceMac('42', mac, 'another-secret-entirely')).toBe(false);
    expect(checkBounceMac('42', mac.toUpperCase(), secret)).toBe(true);
    expect(checkBounceMac('42', '0'.repeat(16), secret)).toBe(false);
    expect(checkBounceMac('42', mac.slice(1), secret)).toBe(false);
  });
});
