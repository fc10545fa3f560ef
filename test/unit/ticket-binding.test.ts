// Which header fields name the ticket a message is delivered to: what a staff member's DKIM
// signature must cover for the message to count as written to that ticket (authorize.ts).
import { describe, expect, it } from 'vitest';
import { macFor } from '../../src/mail/address.js';
import { parseMessage } from '../../src/mail/parse.js';
import { fieldsNamingTicket } from '../../src/mail/ticket-binding.js';
import { notificationMessageId } from '../../src/outbox/notify.js';

const RULES = { mailDomains: ['flamecrm.ru', 'support.flamecrm.ru'], supportLocalPart: 'support' };

const named = async (headers: string[], ticketId = 'TKT-2001') => {
  const raw = Buffer.from(
    [
      'From: Ivan <ivan@flamecrm.ru>',
      'Date: Wed, 02 Dec 2026 10:00:00 +0300',
      'Message-ID: <b-1@flamecrm.ru>',
      ...headers,
      'Content-Type: text/plain; charset=utf-8',
      '',
      'Готово.',
      '',
    ].join('\r\n'),
  );
  return fieldsNamingTicket(await parseMessage(raw), ticketId, RULES).sort();
};

describe('fieldsNamingTicket', () => {
  it('finds the ticket address in To and Cc, in any case, of any of our domains, in groups, signed or not', async () => {
    expect(await named(['To: client <client@example.ru>', 'Cc: Support <SUPPORT+tkt-2001@FlameCRM.ru>'])).toEqual([
      'cc',
    ]);
    expect(await named(['To: helpdesk: support+TKT-2001@support.flamecrm.ru, a@b.ru;'])).toEqual(['to']);
    const mac = macFor('TKT-2001', 'a-long-enough-secret-for-the-mac');
    expect(await named([`To: support+TKT-2001.${mac}@flamecrm.ru`])).toEqual(['to']);
  });

  it('takes TKT-0001 in To, Subject and X-Ticket-ID as TKT-1, as routing does, and TKT-1 not as TKT-0001', async () => {
    const padded = ['To: support+TKT-0001@flamecrm.ru', 'Subject: Re: [TKT-0001] x', 'X-Ticket-ID: TKT-0001'];
    expect(await named(padded, 'TKT-1')).toEqual(['subject', 'to', 'x-ticket-id']);
    expect(await named(padded, 'TKT-0001')).toEqual(['subject', 'to', 'x-ticket-id']);
    expect(await named(['To: support+TKT-1@flamecrm.ru', 'Subject: [TKT-1]'], 'TKT-0001')).toEqual([]);
    expect(await named(['To: support+TKT-0010@flamecrm.ru'], 'TKT-1')).toEqual([]);
  });

  it("does not take another ticket, another domain's address, or another mailbox's tag", async () => {
    expect(
      await named([
        'To: support+TKT-2002@flamecrm.ru, support+TKT-2001@evil.test',
        'Cc: sales+TKT-2001@flamecrm.ru, "support+TKT-2001@flamecrm.ru" <x@evil.test>',
        'Subject: Re: [TKT-20011] TKT-2001 without brackets',
      ]),
    ).toEqual([]);
  });

  it('finds [TKT-…] in the Subject among other tags, and X-Ticket-ID', async () => {
    expect(await named(['Subject: Re: [TKT-1999] [ tkt-2001 ] Принтер', 'X-Ticket-ID: TKT-2001'])).toEqual([
      'subject',
      'x-ticket-id',
    ]);
    expect(await named(['X-Ticket-ID: TKT-2002'])).toEqual([]);
  });

  it('finds our own notifications of the ticket in In-Reply-To and References (the ids notify.ts makes)', async () => {
    const ours = notificationMessageId('TKT-2001', 'flamecrm.ru');
    const other = notificationMessageId('TKT-2002', 'flamecrm.ru');
    expect(await named([`In-Reply-To: ${ours}`, `References: <a@b.ru> ${other}`])).toEqual(['in-reply-to']);
    expect(await named([`References: ${other} ${ours}`])).toEqual(['references']);
    // the same form under a domain that is not ours is anyone's Message-ID
    expect(await named([`In-Reply-To: ${ours.replace('@flamecrm.ru', '@evil.test')}`])).toEqual([]);
  });
});
