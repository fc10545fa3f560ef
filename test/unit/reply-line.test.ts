// Reply lines within RFC 5321's 512 octets in printable ASCII, whatever the client sent
// (src/mail/reply-line.ts): every factory that quotes a client's value quotes it cut, and keeps
// its own words; the line is held to its octets even where a factory did not.
import { describe, expect, it } from 'vitest';
import { authReplies } from '../../src/mail/auth-replies.js';
import { asciiReplyText, fitReplyLine, QUOTE_MAX, quote, REPLY_LINE_MAX } from '../../src/mail/reply-line.js';
import { reply, type SmtpReply } from '../../src/smtp/reply.js';

const HOSTILE = `${'a'.repeat(100_000)}@${'b'.repeat(50_000)}.ru`;
const octets = (r: SmtpReply) => Buffer.byteLength(`${r}\r\n`);

describe('quote()', () => {
  it('leaves a usual value alone and cuts a long one to its start and ...', () => {
    expect(quote('ivan@example.ru')).toBe('ivan@example.ru');
    const q = quote(HOSTILE);
    expect(q).toHaveLength(QUOTE_MAX);
    expect(q).toBe(`${'a'.repeat(QUOTE_MAX - 3)}...`);
  });

  it('quotes in printable ASCII: an IDN domain as its A-label, other characters as ?', () => {
    expect(quote('иван@пример.рф')).toBe('????@xn--e1afmkfd.xn--p1ai');
    expect(quote('a\u00a0b\u3000c')).toBe('a?b?c');
    expect(quote(`${'я'.repeat(10_000)}@example.ru`)).toBe(`${'?'.repeat(QUOTE_MAX - 3)}...`);
  });
});

describe('fitReplyLine()', () => {
  it('holds a line of any text to 512 octets with its CRLF, in ASCII', () => {
    const text = fitReplyLine('550 5.7.1', `x ${'ж'.repeat(2_000)}`);
    expect(Buffer.byteLength(`550 5.7.1 ${text}\r\n`)).toBe(REPLY_LINE_MAX);
    expect(text).toMatch(/^x \?+\.\.\.$/);
    expect(fitReplyLine('250', 'Ok')).toBe('Ok');
  });

  it('converts only the start of a huge text (a 10 MB line is cut in milliseconds)', () => {
    const started = performance.now();
    expect(asciiReplyText('é'.repeat(10))).toBe('??????????');
    fitReplyLine('550', 'ж'.repeat(10_000_000));
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});

// Every factory whose arguments can come from the client, with the value in its place. A new
// factory must be listed here or among OURS (its arguments are ours: limits, ids, config).
const CLIENT_VALUED: Record<string, (v: string) => SmtpReply> = {
  relayDenied: (v) => reply.relayDenied(v),
  noSuchMailbox: (v) => reply.noSuchMailbox(v),
  badTag: (v) => reply.badTag(v),
  noSuchTicket: (v) => reply.noSuchTicket(v),
  ticketClosed: (v) => reply.ticketClosed(v),
  supportTicketClosed: (v) => reply.supportTicketClosed(v),
  ticketRateLimited: (v) => reply.ticketRateLimited(v, 20),
  reportRecorded: (v) => reply.reportRecorded('raw-1', v), // what was recorded: a report's Action among it
  notAllowed: (v) => reply.authRejected(authReplies.notAllowed(v)),
  dmarcFailed: (v) => reply.authRejected(authReplies.dmarcFailed(v, 'reject')),
  dmarcPolicy: (v) => reply.authRejected(authReplies.dmarcFailed(v, v)),
  multipleFailed: (v) => reply.authRejected(authReplies.multipleFailed(v)),
  dkimNotAuthor: (v) => reply.authRejected(authReplies.dkimNotAuthor(v)),
  spfFailed: (v) => reply.authRejected(authReplies.spfFailed(v)),
  spfError: (v) => reply.authRejected(authReplies.spfError(v)),
  noDkim: (v) => reply.authRejected(authReplies.noDkim(v)),
  notBound: (v) => reply.authRejected(authReplies.notBound(v)),
  // the staff domain is ours (STAFF_SENDERS); what passed (a d= or a MAIL FROM under it) is the client's
  staffSubdomain: (v) => reply.authRejected(authReplies.staffSubdomain('flamecrm.ru', v)),
  mimeUnsigned: (v) => reply.authRejected(authReplies.mimeUnsigned(v, 'Content-Type')),
  // the name of a parameter the client sent (smtp-server upper-cases it)
  mailParameterUnknown: (v) => reply.mailParameterUnknown(v),
  rcptParameterUnknown: (v) => reply.rcptParameterUnknown(v),
};
const OURS = new Set([
  'attachmentsLimit',
  'notAReply',
  'rcptTempfail',
  'committed',
  'duplicate',
  'tooManyConnections',
  'tooManyFromNetwork',
  'rateLimited',
  'authRejected',
  'authTempfail',
  'busyClient',
  'busyNetwork',
  'tooBig',
  'bareNewline',
  'headerLimit',
  'duplicateHeader',
  'unroutedTooBig',
  'unroutedQuota',
  'unroutedFull',
  'unparseable',
  'tooManyParts',
  'dataTempfail',
  'shuttingDown',
  'multipleAuthors',
  'dnsTemporary',
]);

describe('every reply that quotes the client', () => {
  it('is listed, so that a new factory is too', () => {
    const withArguments = [...Object.entries(reply), ...Object.entries(authReplies)]
      .filter(([, make]) => make.length > 0)
      .map(([name]) => name);
    expect(withArguments.filter((name) => !(name in CLIENT_VALUED) && !OURS.has(name))).toEqual([]);
  });

  it.each(Object.entries(CLIENT_VALUED))('%s: a 100 K value gives a precise line within 512 octets', (_, make) => {
    const short = make('VALUE');
    const long = make(HOSTILE);
    expect(octets(long)).toBeLessThanOrEqual(REPLY_LINE_MAX);
    expect(long.toString()).toMatch(/^[\x20-\x7e]*$/);
    expect(`${long.code} ${long.enhanced}`).toBe(`${short.code} ${short.enhanced}`);
    // the value's start in its place and every word of the reply's own, nothing else cut
    expect(long.text).toContain('a'.repeat(100));
    expect(long.text.replaceAll(quote(HOSTILE), 'VALUE')).toBe(short.text);
  });

  it('a factory that quoted nothing would still be held to 512 octets', () => {
    const r = reply.attachmentsLimit(HOSTILE);
    expect(octets(r)).toBe(REPLY_LINE_MAX);
    expect(r.toString()).toMatch(/^552 5\.3\.4 a+\.\.\.$/);
  });
});
