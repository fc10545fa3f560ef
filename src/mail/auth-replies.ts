// The words of an authorization refusal: RFC 7372 codes where one fits, RFC 3463 otherwise. Part
// of the finding of authorize() (what it stores with the message, what `monitor` would have said);
// the SMTP layer sends them as DATA_AUTH_REJECTED (550 5.7.x) or DATA_AUTH_TEMPFAIL (451 4.7.x).
// The author and its domain come from the message: quoted, never whole (src/mail/reply-line.ts).
import { quote } from './reply-line.js';

/** What authorize() answers when it does not accept: a 550 5.7.x or a 451 4.7.x. */
export interface AuthReply {
  code: 550 | 451;
  enhanced: string;
  text: string;
}

// The authorization replies. RFC 7372 codes where one fits, RFC 3463 otherwise:
//   5.7.1  delivery not authorized: the author may not write to this ticket, or has no
//          single identity to check, or a staff signature does not name this ticket
//   5.7.20 no passing DKIM signature (and SPF did not authenticate the author either)
//   5.7.21 DKIM passes for the author's domain but is not acceptable: it alone authenticates the
//          message and does not cover the fields that decide how the body is read
//   5.7.22 DKIM passes, but for a domain that is not the author's, or for staff, only for a
//          subdomain of it (RFC 7372: "valid DKIM signature found but not author-matched")
//   5.7.23 SPF failed and nothing else authenticated the author
//   5.7.24 SPF permerror (a broken record) and nothing else authenticated the author
//   5.7.26 more than one check failed; DMARC fail is this by definition (neither SPF nor DKIM
//          aligned), as large receivers answer it
// (5.7.27 is "sender address has null MX", not an SPF code, so it is not used.)
// Temporary, so that a DNS glitch never bounces a real admin:
//   4.7.24 SPF temperror (RFC 7372 X.7.24 "SPF validation error", the 4xx form)
//   4.7.5  a DKIM or ARC key could not be fetched: RFC 3463 X.7.5 "cryptographic failure …
//          necessary information such as key was not available"; RFC 7372 has no DKIM temp code
//   4.7.0  the DMARC record could not be fetched, or several of the above
export const authReplies = {
  noAuthor: (): AuthReply => ({
    code: 550,
    enhanced: '5.7.1',
    text: 'Message has no From address; a reply needs a single author',
  }),
  multipleAuthors: (count: number): AuthReply => ({
    code: 550,
    enhanced: '5.7.1',
    text: `Message has ${count} From addresses; a reply needs a single author`,
  }),
  notAllowed: (author: string): AuthReply => ({
    code: 550,
    enhanced: '5.7.1',
    text: `<${quote(author)}> is not allowed to write to this ticket`,
  }),
  ambiguousFrom: (): AuthReply => ({
    code: 550,
    enhanced: '5.7.1',
    text: 'The From header could not be read unambiguously; authentication is impossible',
  }),
  dmarcFailed: (domain: string, policy: string | null): AuthReply => ({
    code: 550,
    enhanced: '5.7.26',
    text: `Message not authenticated: DMARC check failed for ${quote(domain)}${policy ? ` (p=${quote(policy)})` : ''}`,
  }),
  multipleFailed: (domain: string): AuthReply => ({
    code: 550,
    enhanced: '5.7.26',
    text: `Message not authenticated: SPF and DKIM both failed for ${quote(domain)}`,
  }),
  dkimNotAuthor: (domain: string): AuthReply => ({
    code: 550,
    enhanced: '5.7.22',
    text: `Message not authenticated: no valid DKIM signature of ${quote(domain)}`,
  }),
  /**
   * Staff authenticated only by a subdomain of their domain. `found`: what passed (`d=news.x.ru`,
   * `MAIL FROM bounce.x.ru`); a DKIM signature makes it 5.7.22, an SPF pass alone 5.7.1.
   */
  staffSubdomain: (domain: string, found: string | null): AuthReply => ({
    code: 550,
    enhanced: found === null || found.startsWith('d=') ? '5.7.22' : '5.7.1',
    text: `Staff mail not authenticated: ${found === null ? 'a subdomain' : quote(found)} is not ${quote(domain)}; sign as d=${quote(domain)} or send through ${quote(domain)}'s own servers`,
  }),
  /** `fields`: the field names, joined by commas. */
  mimeUnsigned: (domain: string, fields: string): AuthReply => ({
    code: 550,
    enhanced: '5.7.21',
    text: `DKIM signature of ${quote(domain)} does not cover ${quote(fields)}: sign them, or send through ${quote(domain)}'s own servers`,
  }),
  spfFailed: (domain: string): AuthReply => ({
    code: 550,
    enhanced: '5.7.23',
    text: `Message not authenticated: SPF check failed for ${quote(domain)}`,
  }),
  spfError: (domain: string): AuthReply => ({
    code: 550,
    enhanced: '5.7.24',
    text: `Message not authenticated: SPF record of ${quote(domain)} is broken`,
  }),
  noDkim: (domain: string): AuthReply => ({
    code: 550,
    enhanced: '5.7.20',
    text: `Message not authenticated: no passing DKIM signature and no SPF pass for ${quote(domain)}`,
  }),
  notBound: (ticketId: string): AuthReply => ({
    code: 550,
    enhanced: '5.7.1',
    text: `Staff signature does not name ${quote(ticketId)}: put the ticket's address in To or Cc, or reply to its notification`,
  }),
  dnsTemporary: (enhanced: '4.7.24' | '4.7.5' | '4.7.0'): AuthReply => ({
    code: 451,
    enhanced,
    text: 'Temporary DNS failure while authenticating the sender, try again later',
  }),
};
