// Authorization policy: may this author write to this ticket, given the verdicts of
// `authenticate()`? Pure (no I/O, no clock); the DATA phase turns the decision into an SMTP
// reply and stores it with the message.

import type { AddressRules } from './address.js';
import { type AuthReply, authReplies as replies } from './auth-replies.js';
import {
  type AuthResults,
  type CheckName,
  type DkimVerdict,
  domainOf,
  isAligned,
  normalizeDomain,
  type SpfVerdict,
  signedByAuthor,
} from './authenticate.js';
import type { ParsedHeader } from './parse.js';
import { fieldsNamingTicket } from './ticket-binding.js';

export type { AuthReply };

export type AuthPolicy = 'enforce' | 'monitor';
export type AuthorRole = 'staff' | 'requester' | 'stranger';

/** Stable codes for logs and storage: what was found, whatever the policy did with it. */
export type AuthDecisionCode =
  | 'AUTH_ACCEPTED'
  | 'AUTH_NO_AUTHOR'
  | 'AUTH_MULTIPLE_AUTHORS'
  | 'AUTH_NOT_ALLOWED'
  | 'AUTH_UNAUTHENTICATED'
  | 'AUTH_NOT_BOUND'
  | 'AUTH_MIME_UNSIGNED'
  | 'AUTH_STAFF_SUBDOMAIN'
  | 'AUTH_DNS_TEMPORARY';

export interface AuthDecision {
  /** What to do now. Under `monitor` always `accept`. */
  verdict: 'accept' | 'reject' | 'tempfail';
  code: AuthDecisionCode;
  policy: AuthPolicy;
  /** The single From address, lower case; null when there is none or several. */
  author: string | null;
  role: AuthorRole;
  authenticated: boolean;
  /** The first check that authenticated the author, in the order dmarc, dkim, spf, arc. */
  authenticatedBy: 'dmarc' | 'dkim' | 'spf' | 'arc' | null;
  /** A sentence for the log and the ticket history: what was found and what would fix it. */
  reason: string;
  /** `enforce` would not have accepted the message (550 or 451). */
  wouldReject: boolean;
  /** The reply to send; present exactly when `verdict` is not `accept`. */
  reply?: AuthReply;
  /** Under `monitor`: the reply `enforce` would have sent. */
  wouldReply?: AuthReply;
}

export interface AuthorizeInput {
  /** The parsed From: header (groups flattened). */
  fromAddresses: { address: string; name?: string }[];
  /** The ticket's requester address. */
  requester: string;
  /** STAFF_SENDERS: `a@b.ru` or `@domain.ru`. */
  staff: string[];
  auth: AuthResults;
  /** ARC_TRUSTED_SEALERS: domains whose ARC seal vouches for forwarded mail. */
  trustedSealers: string[];
  /**
   * STAFF_DKIM_DOMAINS: subdomains whose DKIM signature authenticates staff of their parent
   * domain. Absent: none (staff mail must be signed as d= the author's domain itself).
   */
  staffDkimDomains?: string[];
  policy: AuthPolicy;
  /**
   * The ticket the message is delivered to, and the header that may name it (ticket-binding.ts):
   * staff authenticated by a signature alone must have signed a field naming it. Absent: not
   * checked (AUTH_BIND_STAFF=false).
   */
  binding?: { ticketId: string; header: ParsedHeader; rules: AddressRules };
  /**
   * Which of BODY_FIELDS the header holds, as the parser read it (lower case): a signature alone
   * authenticates the message only if it covers each of them.
   */
  bodyFields: string[];
}

/**
 * The header fields that decide how the body is read: its charset, encoding and parts. Added or
 * changed after signing, they make the signed bytes show other text (or none, or other parts).
 */
export const BODY_FIELDS: readonly string[] = ['mime-version', 'content-type', 'content-transfer-encoding'];

/** The field names as people write them, for reasons and replies. */
const BODY_FIELD_NAMES: Readonly<Record<string, string>> = {
  'mime-version': 'MIME-Version',
  'content-type': 'Content-Type',
  'content-transfer-encoding': 'Content-Transfer-Encoding',
};

const normalizeAddress = (address: string): string => {
  const trimmed = address.trim();
  const at = trimmed.lastIndexOf('@');
  if (at < 0) return trimmed.toLowerCase();
  return `${trimmed.slice(0, at).toLowerCase()}@${normalizeDomain(trimmed.slice(at + 1))}`;
};

const roleOf = (author: string, authorDomain: string, staff: string[], requester: string): AuthorRole => {
  for (const entry of staff) {
    const trimmed = entry.trim();
    if (
      trimmed.startsWith('@')
        ? normalizeDomain(trimmed.slice(1)) === authorDomain
        : normalizeAddress(trimmed) === author
    ) {
      return 'staff';
    }
  }
  return requester && normalizeAddress(requester) === author ? 'requester' : 'stranger';
};

/**
 * Which identifiers authenticate the author. A requester's: DMARC's relaxed alignment (the DKIM d=
 * or the MAIL FROM domain shares the author's Organizational Domain), as every receiver reads it.
 * Staff's: the author's domain itself (strict), or for DKIM a subdomain listed in
 * STAFF_DKIM_DOMAINS. Whoever can sign for or send as some subdomain (a mailing service or SaaS it
 * is delegated to, and each of its account holders who can get that subdomain's key or return
 * path applied) is not every staff member; the mailboxes staff write from (Google Workspace,
 * Microsoft 365, Yandex 360, Mail.ru for business) sign as d= the domain itself and send with the
 * address itself as MAIL FROM.
 */
interface Alignment {
  strict: boolean;
  dkim: (row: DkimVerdict) => boolean;
  spf: (spf: SpfVerdict) => boolean;
}

const RELAXED: Alignment = { strict: false, dkim: (row) => row.aligned, spf: (spf) => spf.aligned };

const alignmentOf = (role: AuthorRole, authorDomain: string, staffDkimDomains: Set<string>): Alignment => {
  if (role !== 'staff') return RELAXED;
  return {
    strict: true,
    dkim: (row) => {
      const domain = normalizeDomain(row.domain);
      return row.aligned && (domain === authorDomain || staffDkimDomains.has(domain));
    },
    spf: (spf) => spf.aligned && normalizeDomain(spf.domain) === authorDomain,
  };
};

/** Did the newest sealer record a pass for the author's domain when the message reached it? */
const sealerVouches = (auth: AuthResults, authorDomain: string): boolean => {
  const seen = auth.arc.sealerResults;
  if (!seen) return false;
  return (
    (seen.dmarc?.result === 'pass' && (!seen.dmarc.domain || isAligned(authorDomain, seen.dmarc.domain))) ||
    (seen.spf?.result === 'pass' && isAligned(authorDomain, seen.spf.domain)) ||
    seen.dkim.some((row) => row.result === 'pass' && isAligned(authorDomain, row.domain))
  );
};

const authenticatedBy = (
  auth: AuthResults,
  authorDomain: string,
  trusted: Set<string>,
  align: Alignment,
): AuthDecision['authenticatedBy'] => {
  const dkim = auth.dkim.some((row) => row.result === 'pass' && align.dkim(row));
  const spf = auth.spf.result === 'pass' && align.spf(auth.spf);
  // DMARC passes by its record's alignment, relaxed as a rule: for staff, only with an identifier of their own
  if (auth.dmarc.result === 'pass' && auth.dmarc.domain === authorDomain && (!align.strict || dkim || spf))
    return 'dmarc';
  if (dkim) return 'dkim';
  if (spf) return 'spf';
  const sealer = auth.arc.sealers[auth.arc.sealers.length - 1];
  if (auth.arc.result === 'pass' && sealer && trusted.has(sealer) && sealerVouches(auth, authorDomain)) return 'arc';
  return null;
};

/**
 * A staff message names its ticket where it cannot have been changed since it was written: in a
 * field the author's passing DKIM signature covers. Mail that SPF authenticates came from the
 * author's own servers to this envelope, so it is not a replay; under a trusted ARC seal the
 * forwarder vouches for the fields as it received them.
 */
const bound = (
  auth: AuthResults,
  by: NonNullable<AuthDecision['authenticatedBy']>,
  { ticketId, header, rules }: NonNullable<AuthorizeInput['binding']>,
  align: Alignment,
): boolean => {
  if (auth.spf.result === 'pass' && align.spf(auth.spf)) return true;
  const namedIn = fieldsNamingTicket(header, ticketId, rules);
  return by === 'arc' ? namedIn.length > 0 : namedIn.some((field) => signedByAuthor(auth, field, align.dkim));
};

/**
 * The body fields of the message that nothing vouches for: none when SPF authenticates the author
 * (the message comes from their own servers as it is) or a trusted ARC seal does (the sealer read
 * it as it is); otherwise those the author's passing signature does not cover. An absent field is
 * fine: the body is read by the defaults, as it was signed.
 */
const unsignedBodyFields = (
  auth: AuthResults,
  by: NonNullable<AuthDecision['authenticatedBy']>,
  present: string[],
  align: Alignment,
): string[] => {
  if ((auth.spf.result === 'pass' && align.spf(auth.spf)) || by === 'arc') return [];
  return present.filter((field) => BODY_FIELDS.includes(field) && !signedByAuthor(auth, field, align.dkim));
};

/**
 * Temporary DNS errors that, had the lookup worked, could have lifted a refusal of staff mail that
 * only a signature authenticates (AUTH_NOT_BOUND, AUTH_MIME_UNSIGNED): the SPF record of the
 * author's own domain (a pass binds the message and vouches for its fields), or the key of another
 * signature of theirs that covers what `covers` asks. A trusted sealer's ARC decides nothing here:
 * a passing signature authenticates the message before ARC is asked (authenticatedBy).
 */
const temporaryVouchers = (auth: AuthResults, align: Alignment, covers: (row: DkimVerdict) => boolean): CheckName[] => {
  const checks: CheckName[] = [];
  if (auth.spf.result === 'temperror' && align.spf(auth.spf)) checks.push('spf');
  if (auth.dkim.some((row) => row.result === 'temperror' && align.dkim(row) && covers(row))) checks.push('dkim');
  return checks;
};

/** Temporary DNS errors that, had the lookup worked, could have authenticated the author. */
const decisiveTemporaryChecks = (auth: AuthResults, trusted: Set<string>, align: Alignment): CheckName[] => {
  const checks: CheckName[] = [];
  if (auth.spf.result === 'temperror' && align.spf(auth.spf)) checks.push('spf');
  if (auth.dkim.some((row) => row.result === 'temperror' && align.dkim(row))) checks.push('dkim');
  // DMARC's own organizational-domain walk may align what the PSL did not; a DMARC pass alone
  // does not authenticate staff (authenticatedBy), so for them its record decides nothing
  if (auth.dmarc.result === 'temperror' && !align.strict) checks.push('dmarc');
  const sealer = auth.arc.sealers[auth.arc.sealers.length - 1];
  if (auth.arc.result === 'temperror' && sealer && trusted.has(sealer)) checks.push('arc');
  return checks;
};

const temporaryCode = (checks: CheckName[]): '4.7.24' | '4.7.5' | '4.7.0' => {
  if (checks.length === 1 && checks[0] === 'spf') return '4.7.24';
  if (checks.every((check) => check === 'dkim' || check === 'arc')) return '4.7.5';
  return '4.7.0';
};

const describeTemporary = (check: CheckName, auth: AuthResults, domain: string): string => {
  switch (check) {
    case 'spf':
      return `the SPF record of ${auth.spf.domain}`;
    case 'dkim':
      return `the DKIM key of ${domain}`;
    case 'dmarc':
      return `the DMARC record of ${domain}`;
    case 'arc':
      return `the ARC seal key of ${auth.arc.sealers[auth.arc.sealers.length - 1] ?? 'the forwarder'}`;
  }
};

const describeDkim = (auth: AuthResults): string =>
  auth.dkim.length ? auth.dkim.map((row) => `${row.domain}: ${row.result}`).join(', ') : 'no signature';

const arcHint = (auth: AuthResults, trusted: Set<string>): string => {
  const sealer = auth.arc.sealers[auth.arc.sealers.length - 1];
  if (!sealer) return '';
  if (auth.arc.result !== 'pass') return ` The ARC chain sealed by ${sealer} did not validate (${auth.arc.result}).`;
  if (!trusted.has(sealer)) return ` It was forwarded by ${sealer}, which is not in ARC_TRUSTED_SEALERS.`;
  return ` ${sealer} is a trusted ARC sealer but did not record a pass for the author's domain.`;
};

interface Finding {
  code: AuthDecisionCode;
  reason: string;
  reply?: AuthReply;
}

/** Decides whether the author of a message may write to the ticket. */
export const authorize = (input: AuthorizeInput): AuthDecision => {
  const { auth, policy } = input;
  const trusted = new Set(input.trustedSealers.map(normalizeDomain));
  const addresses = input.fromAddresses.filter((entry) => entry.address?.trim());
  const single = addresses.length === 1 ? addresses[0] : undefined;
  const author = single ? normalizeAddress(single.address) : null;
  const authorDomain = author ? normalizeDomain(domainOf(author)) : null;

  let role: AuthorRole = 'stranger';
  let by: AuthDecision['authenticatedBy'] = null;
  let finding: Finding;

  const multipleFromFields =
    auth.dmarc.skipReason === 'multiple-from-fields' || auth.dmarc.skipReason === 'multiple-author-domains';
  if (!author || !authorDomain) {
    finding =
      addresses.length > 1 || multipleFromFields
        ? {
            code: 'AUTH_MULTIPLE_AUTHORS',
            reason: `The message has ${addresses.length || 'several'} From addresses; the author must be one address, so it cannot be checked.`,
            reply: replies.multipleAuthors(addresses.length || 2),
          }
        : {
            code: 'AUTH_NO_AUTHOR',
            reason: 'The message has no From address, so its author cannot be checked.',
            reply: replies.noAuthor(),
          };
  } else if (multipleFromFields) {
    // mailparser saw one author but the header has several From fields: mailauth (and
    // downstream clients) may read another one
    finding = {
      code: 'AUTH_MULTIPLE_AUTHORS',
      reason: `The message has several From header fields (${author} among them); the author must be one address.`,
      reply: replies.multipleAuthors(2),
    };
  } else {
    role = roleOf(author, authorDomain, input.staff, input.requester);
    const align = alignmentOf(role, authorDomain, new Set((input.staffDkimDomains ?? []).map(normalizeDomain)));
    const sameFrom = auth.fromDomain === authorDomain;
    by = sameFrom ? authenticatedBy(auth, authorDomain, trusted, align) : null;
    // staff only: a requester's mail that a forwarder passes on is often signed by Yandex or Microsoft 365,
    // which leave these fields out, and garbling their own text in their own ticket gains nobody anything
    const unsignedFields = by && role === 'staff' ? unsignedBodyFields(auth, by, input.bodyFields, align) : [];
    const unsigned = unsignedFields.map((f) => BODY_FIELD_NAMES[f] ?? f);
    const who =
      role === 'stranger'
        ? `${author} is neither staff nor the ticket's requester`
        : `${author} is ${role === 'staff' ? 'staff' : "the ticket's requester"}`;

    // what could not be fetched, in words
    const unfetched = (temporary: CheckName[]) =>
      temporary.map((check) => describeTemporary(check, auth, authorDomain)).join(' and ');
    // a refusal of a message only a signature authenticates that a lookup still open could lift
    const temporaryRefusal = (signedBy: string, refusal: string, temporary: CheckName[]): Finding => {
      const what = unfetched(temporary);
      return {
        code: 'AUTH_DNS_TEMPORARY',
        reason: `${who}, authenticated by ${signedBy.toUpperCase()} for ${authorDomain}, but only by a signature, and ${refusal}; ${what} could not be fetched (temporary DNS error) and might vouch for it, so the sending server should retry.`,
        reply: replies.dnsTemporary(temporaryCode(temporary)),
      };
    };

    if (role === 'stranger') {
      finding = {
        code: 'AUTH_NOT_ALLOWED',
        reason: `${who}${by ? ` (authenticated by ${by.toUpperCase()})` : ''}; add the address or its domain to STAFF_SENDERS if it should be allowed to write to tickets.`,
        reply: replies.notAllowed(author),
      };
    } else if (by && role === 'staff' && input.binding && !bound(auth, by, input.binding, align)) {
      const { ticketId, header, rules } = input.binding;
      const namedIn = fieldsNamingTicket(header, ticketId, rules);
      const temporary = temporaryVouchers(auth, align, (row) => namedIn.some((f) => row.signedFields.includes(f)));
      finding = temporary.length
        ? temporaryRefusal(by, `no field it covers names ${ticketId}`, temporary)
        : {
            code: 'AUTH_NOT_BOUND',
            reason:
              `${who}, authenticated by ${by.toUpperCase()} for ${authorDomain}, but only by a signature, and no field it ` +
              `covers names ${ticketId} (To or Cc with the ticket's address, [${ticketId}] in the Subject, X-Ticket-ID, or a ` +
              'notification of the ticket in In-Reply-To or References): it may be a genuine staff message sent again to ' +
              "another ticket. Reply to the ticket's notification, or put the ticket's address in To or Cc.",
            reply: replies.notBound(ticketId),
          };
    } else if (by && unsigned.length) {
      const names = unsigned.join(', ');
      const temporary = temporaryVouchers(auth, align, (row) =>
        unsignedFields.every((f) => row.signedFields.includes(f)),
      );
      finding = temporary.length
        ? temporaryRefusal(by, `it does not cover ${names}`, temporary)
        : {
            code: 'AUTH_MIME_UNSIGNED',
            reason:
              `${who}, authenticated by ${by.toUpperCase()} for ${authorDomain}, but only by a signature, and it does not ` +
              `cover ${names}: these decide how the signed body is read (charset, encoding, parts), and anyone ` +
              'holding the message could have added or changed them, so the text stored would not be the text signed. ' +
              `Sign ${names} with DKIM (h=) as d=${authorDomain}, or send through ${authorDomain}'s own mail ` +
              'servers (listed in its SPF record).',
            reply: replies.mimeUnsigned(authorDomain, names),
          };
    } else if (by) {
      finding = { code: 'AUTH_ACCEPTED', reason: `${who}, authenticated by ${by.toUpperCase()} for ${authorDomain}.` };
    } else if (!sameFrom) {
      finding = {
        code: 'AUTH_UNAUTHENTICATED',
        reason: `${who}, but the From header reads as ${auth.fromDomain ?? 'no single domain'} to the authentication checks, so ${authorDomain} cannot be authenticated.`,
        reply: replies.ambiguousFrom(),
      };
    } else {
      const temporary = decisiveTemporaryChecks(auth, trusted, align);
      if (temporary.length) {
        const what = unfetched(temporary);
        finding = {
          code: 'AUTH_DNS_TEMPORARY',
          reason: `${who}, but nothing authenticated it yet and ${what} could not be fetched (temporary DNS error); the sending server should retry.`,
          reply: replies.dnsTemporary(temporaryCode(temporary)),
        };
      } else if (align.strict && authenticatedBy(auth, authorDomain, trusted, RELAXED)) {
        finding = staffSubdomain(auth, authorDomain, who);
      } else {
        finding = unauthenticated(auth, authorDomain, who, trusted);
      }
    }
  }

  const wouldReject = finding.reply !== undefined;
  const enforce = policy === 'enforce';
  const reply = enforce ? finding.reply : undefined;
  return {
    verdict: !reply ? 'accept' : reply.code === 451 ? 'tempfail' : 'reject',
    code: finding.code,
    policy,
    author,
    role,
    authenticated: by !== null,
    authenticatedBy: by,
    reason: finding.reason,
    wouldReject,
    ...(reply ? { reply } : {}),
    ...(!enforce && finding.reply ? { wouldReply: finding.reply } : {}),
  };
};

/**
 * The part of authorize() that needs no authentication: no author, several, or one who may not
 * write to the ticket. The pipeline asks it first, so that such a message is refused before its
 * signatures are verified and its body is parsed. null when authentication decides.
 */
export const authorizeAuthor = (input: Omit<AuthorizeInput, 'auth'>): AuthDecision | null => {
  const addresses = input.fromAddresses.filter((entry) => entry.address?.trim());
  const single = addresses.length === 1 ? addresses[0] : undefined;
  const author = single ? normalizeAddress(single.address) : null;
  const authorDomain = author ? normalizeDomain(domainOf(author)) : null;
  let finding: Finding;
  let role: AuthorRole = 'stranger';
  if (!author || !authorDomain) {
    finding =
      addresses.length > 1
        ? {
            code: 'AUTH_MULTIPLE_AUTHORS',
            reason: `The message has ${addresses.length} From addresses; the author must be one address, so it cannot be checked.`,
            reply: replies.multipleAuthors(addresses.length),
          }
        : {
            code: 'AUTH_NO_AUTHOR',
            reason: 'The message has no From address, so its author cannot be checked.',
            reply: replies.noAuthor(),
          };
  } else {
    role = roleOf(author, authorDomain, input.staff, input.requester);
    if (role !== 'stranger') return null;
    finding = {
      code: 'AUTH_NOT_ALLOWED',
      reason: `${author} is neither staff nor the ticket's requester; add the address or its domain to STAFF_SENDERS if it should be allowed to write to tickets.`,
      reply: replies.notAllowed(author),
    };
  }
  const enforce = input.policy === 'enforce';
  return {
    verdict: enforce ? 'reject' : 'accept',
    code: finding.code,
    policy: input.policy,
    author,
    role,
    authenticated: false,
    authenticatedBy: null,
    reason: finding.reason,
    wouldReject: true,
    ...(enforce ? { reply: finding.reply } : { wouldReply: finding.reply }),
  };
};

/**
 * Staff whose message DMARC's relaxed alignment would authenticate, but only through a subdomain
 * of their domain (a DKIM d= or a MAIL FROM domain under it): say which, and the setting.
 */
const staffSubdomain = (auth: AuthResults, domain: string, who: string): Finding => {
  const signers = [
    ...new Set(auth.dkim.filter((row) => row.result === 'pass' && row.aligned).map((row) => row.domain)),
  ];
  const spf = auth.spf.result === 'pass' && auth.spf.aligned ? auth.spf : null;
  const found = [
    ...signers.map((signer) => `DKIM passes for d=${signer}`),
    ...(spf ? [`SPF passes for the ${spf.identity === 'helo' ? 'HELO name' : 'MAIL FROM domain'} ${spf.domain}`] : []),
  ];
  const listed = signers[0]
    ? `If ${domain}'s staff mail really is signed as d=${signers[0]}, add it to STAFF_DKIM_DOMAINS.`
    : '';
  return {
    code: 'AUTH_STAFF_SUBDOMAIN',
    reason:
      `${who}, but only a subdomain of ${domain} authenticates it: ` +
      `${found.length ? found.join(' and ') : `DMARC passes for ${domain} by relaxed alignment`}, not for ${domain} itself. ` +
      `Staff mail must be signed with DKIM as d=${domain} or sent from ${domain}'s own mail servers with a MAIL FROM ` +
      `at ${domain}: whoever can sign for or send as a subdomain (a mailing service it is delegated to) is not every ` +
      `staff member. ${listed}`.trimEnd(),
    reply: replies.staffSubdomain(
      domain,
      signers[0] ? `d=${signers[0]}` : spf ? `${spf.identity === 'helo' ? 'HELO' : 'MAIL FROM'} ${spf.domain}` : null,
    ),
  };
};

/** An allowed author whose message nothing authenticated: say which check to fix. */
const unauthenticated = (auth: AuthResults, domain: string, who: string, trusted: Set<string>): Finding => {
  const spf = auth.spf;
  const spfText = `SPF ${spf.result} for ${spf.domain}${spf.result === 'pass' && !spf.aligned ? ' (not aligned)' : ''}`;
  const facts = `Found: ${spfText}; DKIM ${describeDkim(auth)}; DMARC ${auth.dmarc.result}.${arcHint(auth, trusted)}`;
  const fix = `Send through ${domain}'s own mail servers (listed in its SPF record) or sign with DKIM as d=${domain}.`;
  const reason = (problem: string): string =>
    `${who}, but the message is not authenticated: ${problem}. ${facts} ${fix}`;

  const passing = auth.dkim.filter((row) => row.result === 'pass');
  const dkimFailed = auth.dkim.length > 0 && passing.length === 0;
  const dkimNotAuthor = passing.length > 0; // none of them aligned, or we would not be here
  const spfFailed = spf.result === 'fail' || spf.result === 'softfail' || spf.result === 'permerror';

  if (auth.dmarc.result === 'fail') {
    return {
      code: 'AUTH_UNAUTHENTICATED',
      reason: reason(
        `${domain} publishes DMARC p=${auth.dmarc.policy ?? 'none'} and neither SPF nor DKIM passed aligned with it`,
      ),
      reply: replies.dmarcFailed(domain, auth.dmarc.policy),
    };
  }
  if (spfFailed && (dkimFailed || dkimNotAuthor)) {
    return {
      code: 'AUTH_UNAUTHENTICATED',
      reason: reason('both SPF and DKIM failed'),
      reply: replies.multipleFailed(domain),
    };
  }
  if (dkimNotAuthor) {
    return {
      code: 'AUTH_UNAUTHENTICATED',
      reason: reason(
        `DKIM passes only for ${passing.map((row) => row.domain).join(', ')}, not for the author's domain`,
      ),
      reply: replies.dkimNotAuthor(domain),
    };
  }
  if (dkimFailed) {
    return {
      code: 'AUTH_UNAUTHENTICATED',
      reason: reason('no DKIM signature verified'),
      reply: replies.noDkim(domain),
    };
  }
  if (spf.result === 'permerror') {
    return {
      code: 'AUTH_UNAUTHENTICATED',
      reason: reason(`the SPF record of ${spf.domain} is broken`),
      reply: replies.spfError(domain),
    };
  }
  if (spfFailed) {
    return {
      code: 'AUTH_UNAUTHENTICATED',
      reason: reason(`SPF ${spf.result} and no DKIM signature`),
      reply: replies.spfFailed(domain),
    };
  }
  return {
    code: 'AUTH_UNAUTHENTICATED',
    reason: reason('there is no DKIM signature and SPF did not pass aligned'),
    reply: replies.noDkim(domain),
  };
};
