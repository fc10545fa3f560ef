// Authentication of one received message: SPF, DKIM, DMARC and ARC by mailauth, on the bytes
// the DATA phase already holds, turned into plain verdicts. Deciding what the verdicts allow is
// `authorize()`'s job; nothing here rejects, and DNS trouble is reported, never thrown.
import { createRequire } from 'node:module';
import type { ARCChainEntry, AuthenticateOptions } from 'mailauth';
import './dkim-keys.js';
import type { SpfResult } from './auth-dns.js';
import { unverifiedSignatures } from './dkim-limit.js';
import { isTemporaryDnsError, type Resolver } from './dns.js';
import { EARLY_SPF, mailauth } from './mailauth-lean.js';

const mailauthAuthenticate = mailauth.authenticate;

// mailauth's own alignment helpers (not in its typings), so that "aligned" here means what it
// means in its DMARC code: same Organizational Domain by the Public Suffix List, A-labels.
const mailauthTools = createRequire(import.meta.url)('mailauth/lib/tools.js') as {
  getAlignment(fromDomain: string, domains: string[], strict: boolean): { domain: string } | false;
  formatDomain(domain: string): string;
};

export type CheckName = 'spf' | 'dkim' | 'dmarc' | 'arc';

/** mailauth's result keywords: pass, fail, softfail, neutral, none, policy, temperror, permerror. */
export type CheckResult = string;

export interface SpfVerdict {
  result: CheckResult;
  /** The domain SPF checked: the MAIL FROM domain, or the HELO name for a null sender. */
  domain: string;
  identity: 'mailfrom' | 'helo';
  /** `domain` shares its Organizational Domain with the From domain (relaxed alignment). */
  aligned: boolean;
  comment?: string;
}

export interface DkimVerdict {
  result: CheckResult;
  /** `d=` */
  domain: string;
  /** `s=` */
  selector: string;
  /** `d=` shares its Organizational Domain with the From domain, whatever the result. */
  aligned: boolean;
  /** Header fields the signature covers (its `h=` as found in the message), lower case. */
  signedFields: string[];
  /** Body bytes past its `l=` that the signature does not cover; such a signature is `policy`, not `pass`. */
  unsignedBodyBytes?: number;
  comment?: string;
}

export interface DmarcVerdict {
  /** `none` also when there is no record or DMARC could not be evaluated (see `skipReason`). */
  result: CheckResult;
  /** Effective policy of the record (`none` / `quarantine` / `reject`); null without a record. */
  policy: string | null;
  /** The author (From) domain the policy is about. */
  domain: string | null;
  /** Identifiers DMARC found aligned, by the record's own aspf/adkim modes. */
  alignment: { spf: string | null; dkim: string | null };
  /** Why DMARC was not evaluated: `no-author-domain`, `multiple-author-domains`, … */
  skipReason?: string;
  comment?: string;
}

/** What the newest ARC set's sealer recorded when it received the message. */
export interface ArcSealerResults {
  /** The sealer's authserv-id. */
  mta: string | null;
  dmarc: { result: CheckResult; domain: string | null } | null;
  spf: { result: CheckResult; domain: string | null } | null;
  dkim: { result: CheckResult; domain: string | null }[];
}

export interface ArcVerdict {
  /** `pass`, `fail`, `none`, or `temperror` when a seal key lookup hit a temporary DNS error
   *  (mailauth itself reports that as `fail` in the header). */
  result: CheckResult;
  /** Highest instance, 0 without a chain. */
  i: number;
  /** `d=` of each ARC-Seal, oldest first; the last one sealed most recently. */
  sealers: string[];
  /** Set only when the chain passed. */
  sealerResults: ArcSealerResults | null;
  comment?: string;
}

export interface AuthResults {
  /** Domain of the single From address as mailauth read it (A-label, lower case); null when
   *  the message has no From address, several, or several From fields. */
  fromDomain: string | null;
  spf: SpfVerdict;
  dkim: DkimVerdict[];
  dmarc: DmarcVerdict;
  arc: ArcVerdict;
  /** `Received-SPF:` and `Authentication-Results:` header lines, CRLF-terminated. */
  headers: string;
  /** Some check ended in a temporary DNS error; a retry may give another answer. */
  temporary: boolean;
  temporaryChecks: CheckName[];
  /** Valid DKIM signatures past DKIM_MAX_SIGNATURES (src/mail/dkim-limit.ts): not verified, in no verdict. */
  dkimUnverified?: number;
}

export interface AuthenticateInput {
  /** The message as received (header and body), not modified. */
  message: Buffer;
  /** Client IP address. */
  ip: string;
  /** EHLO/HELO name. */
  helo: string;
  /** MAIL FROM address; '' for the null sender `<>`. */
  mailFrom: string;
  /** Our host name: the authserv-id of Authentication-Results. */
  mta: string;
  resolver: Resolver;
  /**
   * mailauth's SPF result for this envelope, found on the answers `resolver` gives (auth-dns.ts
   * AuthDnsFetch.spfResult): taken as it is, SPF is not evaluated again.
   */
  spf?: SpfResult;
}

// The same for every message. BIMI is off: it fetches logos over HTTPS and undici on Node 20
// only works thanks to an override. SPF lookup limits stay mailauth's (RFC 7208: 10 lookups,
// 2 void lookups).
const BASE_OPTIONS = Object.freeze({
  disableBimi: true,
  trustReceived: false,
  minBitLength: 1024,
} satisfies AuthenticateOptions);

export const domainOf = (address: string): string => {
  const at = address.lastIndexOf('@');
  return at < 0 ? address : address.slice(at + 1);
};

/** Lower case A-label without the trailing dot, as mailauth compares domains. */
export const normalizeDomain = (domain: string): string => {
  try {
    return mailauthTools.formatDomain(domain);
  } catch {
    return domain.toLowerCase();
  }
};

/** Relaxed (RFC 7489 3.1) alignment: both share one Organizational Domain. */
export const isAligned = (fromDomain: string | null, domain: string | null | undefined): boolean =>
  !!fromDomain && !!domain && mailauthTools.getAlignment(fromDomain, [domain], false) !== false;

const tagValue = (entry: ARCChainEntry, header: 'arc-seal' | 'arc-message-signature', tag: 'd' | 's'): string =>
  String(entry[header]?.parsed?.[tag]?.value ?? '').toLowerCase();

const keyName = (selector: string, domain: string): string => `${selector}._domainkey.${domain}`;

type MailauthResult = Awaited<ReturnType<typeof mailauthAuthenticate>>;

// biome-ignore lint/suspicious/noExplicitAny: mailauth's parsed ARC results are untyped JSON
const toSealerResults = (parsed: Record<string, any> | undefined): ArcSealerResults | null => {
  if (!parsed) return null;
  const str = (value: unknown): string | null => (typeof value === 'string' && value ? value : null);
  return {
    mta: str(parsed.mta),
    dmarc: parsed.dmarc ? { result: String(parsed.dmarc.result), domain: str(parsed.dmarc.header?.from) } : null,
    spf: parsed.spf
      ? {
          result: String(parsed.spf.result),
          domain: str(parsed.spf.smtp?.mailfrom) && domainOf(parsed.spf.smtp.mailfrom),
        }
      : null,
    dkim: (Array.isArray(parsed.dkim) ? parsed.dkim : []).map((entry: (typeof parsed.dkim)[number]) => ({
      result: String(entry.result),
      // header.d only in strict mode; header.i is `@domain` or an address in that domain
      domain: str(entry.header?.d) ?? (str(entry.header?.i) && domainOf(entry.header.i)),
    })),
  };
};

const toArcVerdict = (arc: MailauthResult['arc'], temporaryNames: Set<string>): ArcVerdict => {
  if (!arc) return { result: 'none', i: 0, sealers: [], sealerResults: null };
  const chain = Array.isArray(arc.chain) ? arc.chain : [];
  let result: CheckResult = arc.status.result;
  if (result === 'fail' && temporaryNames.size) {
    // mailauth treats every ARC failure as permanent; a seal or signature key that could not
    // be fetched is not, so a DNS glitch cannot undo a trusted forwarder's vouching
    const keyLookupFailed = chain.some((entry) =>
      (['arc-seal', 'arc-message-signature'] as const).some((header) =>
        temporaryNames.has(keyName(tagValue(entry, header, 's'), tagValue(entry, header, 'd'))),
      ),
    );
    if (keyLookupFailed) result = 'temperror';
  }
  return {
    result,
    i: typeof arc.i === 'number' ? arc.i : 0,
    sealers: chain.map((entry) => tagValue(entry, 'arc-seal', 'd')),
    sealerResults: result === 'pass' ? toSealerResults(arc.authenticationResults) : null,
    ...(arc.status.comment ? { comment: arc.status.comment } : {}),
  };
};

/** Runs SPF, DKIM, DMARC and ARC for one message. Rejects only on a bug, never on DNS trouble. */
export const authenticate = async (input: AuthenticateInput): Promise<AuthResults> => {
  // Names whose lookup failed temporarily, as "name" lower case: mailauth turns DNS errors
  // into results, and for ARC into a plain `fail`, so this is how ARC temperror is recognised.
  const temporaryNames = new Set<string>();
  const resolver: Resolver = (name, rrtype) =>
    input.resolver(name, rrtype).catch((err: unknown) => {
      if (isTemporaryDnsError(err)) temporaryNames.add(name.toLowerCase());
      throw err;
    });

  const options: AuthenticateOptions = {
    ...BASE_OPTIONS,
    ip: input.ip,
    helo: input.helo,
    sender: input.mailFrom || undefined,
    mta: input.mta,
    resolver,
  };
  // (a key of ours, not in mailauth's typings: src/mail/mailauth-lean.ts)
  if (input.spf) Object.assign(options, { [EARLY_SPF]: input.spf });
  const result = await mailauthAuthenticate(input.message, options);

  const headerFrom = result.dkim.headerFrom ?? [];
  const firstFrom = headerFrom[0];
  const fromDomain =
    headerFrom.length === 1 && result.dkim.fromFields === 1 && firstFrom ? normalizeDomain(domainOf(firstFrom)) : null;

  const spfResult = result.spf;
  const spfDomain = spfResult ? spfResult.domain : normalizeDomain(domainOf(input.mailFrom || input.helo));
  const spf: SpfVerdict = {
    result: spfResult ? spfResult.status.result : 'none',
    domain: spfDomain,
    identity: input.mailFrom ? 'mailfrom' : 'helo',
    aligned: isAligned(fromDomain, spfDomain),
    // biome-ignore lint/complexity/useOptionalChain: spfResult may be false, not only undefined
    ...(spfResult && spfResult.status.comment ? { comment: spfResult.status.comment } : {}),
  };

  // an unsigned message gets one placeholder row ("dkim=none (message not signed)"): skip it.
  // A pass whose l= leaves part of the body unsigned does not authenticate that part, which is
  // what the ticket would show: RFC 8601's `policy` ("signed, but not acceptable to the ADMD").
  const dkim: DkimVerdict[] = result.dkim.results
    .filter((row) => row.signingDomain)
    .map((row) => {
      const unsigned = Number((row.status as { underSized?: number }).underSized) || 0;
      const partial = row.status.result === 'pass' && unsigned > 0;
      const keys = (row as { signingHeaders?: { keys?: unknown } }).signingHeaders?.keys;
      return {
        result: partial ? 'policy' : row.status.result,
        domain: (row.signingDomain ?? '').toLowerCase(),
        selector: row.selector ?? '',
        aligned: isAligned(fromDomain, row.signingDomain),
        signedFields: String(keys ?? '')
          .split(':')
          .map((k) => k.trim().toLowerCase())
          .filter(Boolean),
        ...(partial
          ? { unsignedBodyBytes: unsigned, comment: `l= leaves ${unsigned} body bytes unsigned` }
          : row.status.comment
            ? { comment: row.status.comment }
            : {}),
      };
    });

  const dmarcResult = result.dmarc;
  // mailauth lets a partial signature align for DMARC (it only sorts such signatures last): a pass
  // that rests on one alone, without SPF, is no pass here either.
  const onlyPartial =
    !!dmarcResult &&
    dmarcResult.status.result === 'pass' &&
    !dmarcResult.alignment?.spf?.result &&
    Number((dmarcResult.alignment?.dkim as { underSized?: number } | undefined)?.underSized) > 0;
  const dmarc: DmarcVerdict = dmarcResult
    ? {
        result: onlyPartial ? 'fail' : dmarcResult.status.result,
        // without a record mailauth leaves policy unset
        policy: dmarcResult.policy || null,
        domain: dmarcResult.status.header?.from ?? fromDomain,
        alignment: {
          spf: dmarcResult.alignment?.spf?.result ?? null,
          dkim: onlyPartial ? null : (dmarcResult.alignment?.dkim?.result ?? null),
        },
        ...(onlyPartial ? { comment: 'aligned only through a DKIM signature whose l= leaves the body unsigned' } : {}),
      }
    : {
        result: 'none',
        policy: null,
        domain: fromDomain,
        alignment: { spf: null, dkim: null },
        ...(result.dmarcSkipReason ? { skipReason: result.dmarcSkipReason } : {}),
      };

  const arc = toArcVerdict(result.arc, temporaryNames);

  const temporaryChecks: CheckName[] = [];
  if (spf.result === 'temperror') temporaryChecks.push('spf');
  if (dkim.some((row) => row.result === 'temperror')) temporaryChecks.push('dkim');
  if (dmarc.result === 'temperror') temporaryChecks.push('dmarc');
  if (arc.result === 'temperror') temporaryChecks.push('arc');

  return {
    fromDomain,
    spf,
    dkim,
    dmarc,
    arc,
    headers: result.headers,
    temporary: temporaryChecks.length > 0,
    temporaryChecks,
    dkimUnverified: unverifiedSignatures((result.dkim as { headers?: unknown }).headers),
  };
};

/**
 * Whether a header field is vouched for by the author's domain: a passing DKIM signature, aligned
 * with From, covers it. (The header block holds one instance of it at most: bytes.ts.) `aligned`:
 * which signatures count as the author's; by default DMARC's relaxed alignment (authorize() asks
 * staff mail for d= equal to the author's domain).
 */
export const signedByAuthor = (
  auth: AuthResults,
  field: string,
  aligned: (row: DkimVerdict) => boolean = (row) => row.aligned,
): boolean => auth.dkim.some((row) => row.result === 'pass' && aligned(row) && row.signedFields.includes(field));
