// The pipeline of one message, from its bytes to the rows it writes: parse the header → route →
// classify → check the author → authenticate → authorize → parse the body → extract → rows. Cheap
// refusals come first, and a step only runs when the ones before it let the message through, so a
// stranger's 25 MB message is refused on its From line. Runs in a worker thread (worker.ts); what
// talks to the world (DNS, the ticket lookups) is injected as `PipelineWorld`; the DNS answers
// authentication needs were fetched before, on the main thread (src/mail/auth-dns.ts).
import crypto from 'node:crypto';
import type { Config } from '../config.js';
import type { Envelope, ForwardedMessage, Ticket, TicketMessageRow, UnroutedMessageRow } from '../db/queries.js';
import { type UnroutedSpent, unroutedLimits, unroutedOver } from '../db/unrouted-budget.js';
import { attachmentRows, checkAttachmentLimits } from '../mail/attachments.js';
import type { DnsRecording, SpfResult } from '../mail/auth-dns.js';
import { type AuthResults, authenticate, signedByAuthor } from '../mail/authenticate.js';
import { type AuthDecision, authorize, authorizeAuthor, BODY_FIELDS } from '../mail/authorize.js';
import { bodyOffset } from '../mail/bytes.js';
import { classifyInput, classifyMessage, type NotAReply } from '../mail/classify.js';
import type { Resolver } from '../mail/dns.js';
import {
  idempotencyKey,
  MAX_MIME_PARTS,
  type ParsedHeader,
  type ParsedMessage,
  parseHeader,
  parseMessage,
  TooManyParts,
  UnparseableMessage,
} from '../mail/parse.js';
import { type LineBound, PastLineBound } from '../mail/reply-text/index.js';
import { bodyText, replyOfParsed } from '../mail/reply-text/message.js';
import { sanitizeHtml } from '../mail/sanitize.js';
import { type TicketReferences, ticketReferences } from '../mail/ticket-ref.js';
import { isClosed } from '../mail/ticket-status.js';
import { notificationsFor, notifyRules } from '../outbox/notify.js';
import { decodedTagsFit, INLINE_LINE_BOUND, NotInline } from './inline.js';
import type { Analysis, Facts, MessageRows, Route } from './types.js';

type TicketRoute = Extract<Route, { kind: 'ticket' }>;

/**
 * Up to this size a message is parsed whole at once (one parse is cheaper than two, and its body
 * costs little); above it the header is parsed alone first, so that a refusal costs no body parse.
 */
const WHOLE_PARSE_BYTES = 256 * 1024;

/** The settings the steps read: the worker gets exactly these. */
export type PipelineSettings = Pick<
  Config,
  | 'smtpHostname'
  | 'mailDomains'
  | 'supportLocalPart'
  | 'notificationSenders'
  | 'staffSenders'
  | 'staffDkimDomains'
  | 'arcTrustedSealers'
  | 'authPolicy'
  | 'authBindStaff'
  | 'replyAddressSecret'
  | 'attachmentMaxCount'
  | 'attachmentMaxBytes'
  | 'unroutedMaxMessageBytes'
  | 'unroutedMaxBytesPerNetworkPerDay'
  | 'unroutedMaxBytesPerDay'
  | 'ticketClosedStatuses'
  | 'notifyStaffTo'
  | 'notifyRequester'
  | 'crmWebhookUrl'
>;

/** The tickets a message to the bare support@ names, by each way of naming one. */
export interface SupportTickets {
  /** X-Ticket-ID: counts only when the author's DKIM signature covers it. */
  header: Ticket | null;
  subject: Ticket | null;
  /** In-Reply-To/References matched against the notifications we sent. */
  notification: Ticket | null;
}

/** What the steps ask of the world; the main thread answers (pool.ts), or a test does. */
export interface PipelineWorld {
  resolver: Resolver;
  /** With `guessable` false (signed reply addresses), X-Ticket-ID and the subject are not looked up. */
  findSupportTickets(refs: TicketReferences, guessable: boolean): Promise<SupportTickets>;
  /** Bytes of unrouted mail stored today for this client network and for all (all instances together). */
  unroutedBytesToday(network: string): Promise<UnroutedSpent>;
}

export interface PipelineInput {
  raw: Buffer;
  envelope: Envelope;
  routes: Route[];
  /** The client's network (limits.ts networkKey): what unrouted mail is counted under. */
  network: string;
  /**
   * The answers authentication needs, fetched on the main thread (src/mail/auth-dns.ts): the
   * steps' resolver answers from them (pool.ts, pipeline.ts), so that no worker waits for DNS.
   */
  dns?: DnsRecording;
  /** SPF's result, when it was found on those answers (AuthDnsFetch.spfResult): not evaluated again. */
  spf?: SpfResult;
}

/**
 * `inline`: the message runs on the main thread (src/pipeline/inline.ts); past the inline bounds in its
 * decoded HTML's tags (right after the parse) or in the lines its reply text is read from (before the
 * rules read one), it is given up with NotInline, for a worker to process.
 */
export async function analyse(
  input: PipelineInput,
  world: PipelineWorld,
  settings: PipelineSettings,
  options: { inline?: boolean } = {},
): Promise<Analysis> {
  const { raw, envelope, routes } = input;
  const facts: Facts = { network: input.network };
  // why mailparser refused the bytes, when it did: the same on every retry, so parsed once
  let failure: UnparseableMessage | null = null;
  const unparseable = (err: unknown): null => {
    if (!(err instanceof UnparseableMessage)) throw err;
    failure = err;
    return null;
  };

  // 1. The header (its block was bounded before it got here). A large message has it parsed alone,
  //    its body only once the steps below let it through; a small one is parsed once, whole.
  const whole = raw.length <= WHOLE_PARSE_BYTES ? await parseMessage(raw).catch(unparseable) : null;
  const header = whole ?? (await parseHeader(raw, bodyOffset(raw)).catch(unparseable));
  if (!header) return undecodable(failure, facts, settings);
  if (options.inline && whole && !decodedTagsFit(whole.html)) throw new NotInline();
  facts.messageId = header.messageId;
  facts.from = header.from[0]?.address;
  const key = idempotencyKey(raw, header);
  const unroutedRow = (address: string, ticketId: string | null, reason: string): UnroutedMessageRow => ({
    recipient: address.toLowerCase(),
    ticketId,
    reason,
    idempotencyKey: key,
    fromAddress: header.from[0]?.address ?? null,
    subject: header.subject,
    messageId: header.messageId,
    envelope,
  });

  // 2. Routes: the bare support@ address names its ticket in the message.
  // one route a ticket: two addresses of one ticket (two of our domains, signed and unsigned) are
  // one ticket message, and so one notification and one webhook
  const explicit = routes
    .filter((r): r is TicketRoute => r.kind === 'ticket')
    .filter((r, i, all) => all.findIndex((o) => o.ticket.id === r.ticket.id) === i);
  const supports = routes.filter((r) => r.kind === 'support');
  const candidates = supports.length
    ? await world.findSupportTickets(ticketReferences(header), !settings.replyAddressSecret)
    : null;
  const named = candidates && (candidates.header ?? candidates.subject ?? candidates.notification);
  if (!explicit.length && supports.length === routes.length && !named) return { kind: 'no-ticket', facts };

  // 3. Auto-replies, bounces, loops and our own notifications never become ticket messages.
  const notReply = explicit.length || named ? classify(header, envelope, settings) : null;
  if (notReply || (!explicit.length && !named)) {
    const reason = notReply ? `${notReply.kind}: ${notReply.reason}` : null;
    // an unsigned X-Ticket-ID names no ticket, not even on an auto-reply's row
    const supportTicket = candidates ? (candidates.notification ?? candidates.subject) : null;
    const unrouted = routes.map((route) =>
      route.kind === 'ticket'
        ? unroutedRow(route.address, route.ticket.id, reason!)
        : route.kind === 'postmaster'
          ? unroutedRow(route.address, null, 'postmaster')
          : unroutedRow(route.address, supportTicket?.id ?? null, reason ?? 'no ticket reference'),
    );
    if (notReply) Object.assign(facts, { notReply: notReply.kind, reason: notReply.reason });
    return unroutedAnalysis(
      input,
      world,
      settings,
      { ticketMessages: [], unrouted, attachments: [], outbox: [] },
      notReply,
      facts,
    );
  }

  // 4. The author, before any signature is verified: no From, several, or a stranger is refused
  //    on what the header says (under enforce; monitor goes on and records).
  for (const route of explicit) {
    const early = authorizeAuthor(authorizeArgs(header, route.ticket, settings));
    if (early?.verdict === 'reject') return authRefusal(early, facts);
  }

  // 5. Authentication; then the ticket of mail to support@, X-Ticket-ID only when it is signed.
  const auth = await authenticate({
    message: raw,
    ip: envelope.clientIp,
    helo: envelope.helo ?? '',
    mailFrom: envelope.mailFrom ?? '',
    mta: settings.smtpHostname,
    resolver: world.resolver,
    ...(input.spf ? { spf: input.spf } : {}),
  });
  if (auth.dkimUnverified) facts.dkimUnverified = auth.dkimUnverified;
  const ticketRoutes: TicketRoute[] = [...explicit];
  const unrouted: UnroutedMessageRow[] = [];
  const reference = candidates && supportTicket(candidates, auth);
  // a closed ticket takes no mail, whichever way it was named
  const closed = reference && isClosed(reference.ticket.status, settings) ? reference.ticket.id : null;
  const found = closed ? null : reference;
  for (const route of routes) {
    if (route.kind === 'postmaster') unrouted.push(unroutedRow(route.address, null, 'postmaster'));
    if (route.kind !== 'support') continue;
    if (found && !ticketRoutes.some((r) => r.ticket.id === found.ticket.id)) {
      ticketRoutes.push({ kind: 'ticket', ticket: found.ticket, address: route.address });
      facts.via = found.via;
    } else if (!found) {
      // other recipients take the message; this copy is kept, not lost
      unrouted.push(unroutedRow(route.address, closed, closed ? `ticket ${closed} is closed` : 'no ticket reference'));
    }
  }
  if (!ticketRoutes.length) {
    if (routes.every((r) => r.kind === 'support'))
      return closed ? { kind: 'ticket-closed', ticket: closed, facts } : { kind: 'no-ticket', facts };
    return unroutedAnalysis(
      input,
      world,
      settings,
      { ticketMessages: [], unrouted, attachments: [], outbox: [] },
      null,
      facts,
    );
  }
  facts.tickets = ticketRoutes.map((r) => r.ticket.id);

  // 6. Authorization: one reply for all recipients. A refusal for any ticket refuses the message
  //    (nothing is silently dropped); a permanent refusal outranks a temporary one.
  const decisions = ticketRoutes.map((route) =>
    authorize({
      ...authorizeArgs(header, route.ticket, settings),
      auth,
      ...(settings.authBindStaff ? { binding: { ticketId: route.ticket.id, header, rules: settings } } : {}),
    }),
  );
  const refusal = decisions.find((d) => d.verdict === 'reject') ?? decisions.find((d) => d.verdict === 'tempfail');
  Object.assign(facts, decisionFacts(refusal ?? decisions[0]!));
  if (refusal?.reply) return { kind: 'auth', decision: refusal, facts };

  // 7. The body: MIME parse, text, attachments, reply text and sanitized HTML.
  const parsed = whole ?? (failure ? null : await parseMessage(raw).catch(unparseable));
  if (!parsed) return undecodable(failure, facts, settings);
  const text = bodyText(parsed);
  if (!isUsable(parsed, text)) return { kind: 'unparseable', parser: false, facts };
  const attachments = attachmentRows(parsed.attachments, parsed.html);
  facts.attachments = attachments.length;
  const limits = checkAttachmentLimits(attachments, {
    maxCount: settings.attachmentMaxCount,
    maxTotalBytes: settings.attachmentMaxBytes,
  });
  if (!limits.ok) return { kind: 'attachments-limit', why: limits.reason, facts };
  const body = bodyOfHere(parsed, text, facts, options.inline === true);
  const ticketMessages = ticketRoutes.map((route, i) =>
    ticketMessageRow(route, parsed, body, key, envelope, auth, decisions[i]!),
  );
  // queued in the same transaction, and only for the ticket messages that transaction inserts
  const outbox = notificationsFor(
    ticketMessages.map((m) => ({ ...m, trusted: m.authVerdict === 'AUTH_ACCEPTED' })),
    ticketRoutes.map((r) => r.ticket),
    notifyRules(settings),
  );
  return {
    kind: 'store',
    rows: { ticketMessages, unrouted, attachments, outbox },
    unroutedOnly: false,
    notReply: null,
    facts,
  };
}

/**
 * mailparser refused the bytes (the message's fault and the same on every retry): the refusal
 * says why, and the log line has the parser's words. Past MAX_MIME_PARTS the parser stops, so the
 * attachments it gave by then are a lower bound: already over the limit, that is the answer.
 */
function undecodable(failure: UnparseableMessage | null, facts: Facts, settings: PipelineSettings): Analysis {
  if (failure) facts.err = failure.message;
  if (!(failure instanceof TooManyParts)) return { kind: 'unparseable', parser: failure !== null, facts };
  if (failure.attachmentsSeen > settings.attachmentMaxCount) {
    facts.attachments = failure.attachmentsSeen;
    const why = `at least ${failure.attachmentsSeen} attachments, more than the limit of ${settings.attachmentMaxCount}`;
    return { kind: 'attachments-limit', why, facts };
  }
  return { kind: 'too-many-parts', limit: MAX_MIME_PARTS, facts };
}

/** Mail that no ticket takes has its own size limit and byte budgets per day: per client network, and all networks'. */
async function unroutedAnalysis(
  input: PipelineInput,
  world: PipelineWorld,
  settings: PipelineSettings,
  rows: MessageRows,
  notReply: NotAReply | null,
  facts: Facts,
): Promise<Analysis> {
  const size = input.raw.length;
  if (size > settings.unroutedMaxMessageBytes)
    return { kind: 'unrouted-too-big', size, limit: settings.unroutedMaxMessageBytes, facts };
  const limits = unroutedLimits(settings);
  const over =
    limits.perNetwork || limits.all ? unroutedOver(await world.unroutedBytesToday(input.network), limits, size) : null;
  if (over === 'network') return { kind: 'unrouted-quota', limit: limits.perNetwork, facts };
  if (over === 'all') return { kind: 'unrouted-full', limit: limits.all, facts };
  return { kind: 'store', rows, unroutedOnly: true, notReply, facts };
}

function authRefusal(decision: AuthDecision, facts: Facts): Analysis {
  return { kind: 'auth', decision, facts: { ...facts, ...decisionFacts(decision) } };
}

function decisionFacts(d: AuthDecision): Facts {
  return {
    auth: d.code,
    role: d.role,
    authenticatedBy: d.authenticatedBy,
    wouldReject: d.wouldReject,
    reason: d.reason,
  };
}

function authorizeArgs(header: ParsedHeader, ticket: Ticket, settings: PipelineSettings) {
  return {
    fromAddresses: header.from,
    requester: ticket.requester,
    staff: settings.staffSenders,
    staffDkimDomains: settings.staffDkimDomains,
    trustedSealers: settings.arcTrustedSealers,
    policy: settings.authPolicy,
    bodyFields: BODY_FIELDS.filter((field) => header.headers.has(field)),
  };
}

/**
 * The ticket of a message to the bare support@ address: X-Ticket-ID when the author's DKIM
 * signature covers it, then [TKT-…] in the subject, then our notifications' Message-IDs. With
 * signed reply addresses only the last counts (findSupportTickets looks up nothing else).
 */
function supportTicket(
  candidates: SupportTickets,
  auth: AuthResults,
): { ticket: Ticket; via: NonNullable<Facts['via']> } | null {
  if (candidates.header && signedByAuthor(auth, 'x-ticket-id'))
    return { ticket: candidates.header, via: 'x-ticket-id' };
  if (candidates.subject) return { ticket: candidates.subject, via: 'subject' };
  if (candidates.notification) return { ticket: candidates.notification, via: 'in-reply-to' };
  return null;
}

function classify(header: ParsedHeader, envelope: Envelope, settings: PipelineSettings): NotAReply | null {
  // the settings are the OwnAddresses: mailDomains, supportLocalPart, notificationSenders
  return classifyMessage(classifyInput(header, envelope.mailFrom, settings));
}

/**
 * Something a person could read: text, HTML that shows text or an image, or a file. A From line
 * alone is not a reply (a missing boundary can leave just the headers decodable).
 */
function isUsable(parsed: ParsedMessage, text: string): boolean {
  return (
    /[^\s\u0000]/.test(text) || (parsed.html !== null && /<img\b/i.test(parsed.html)) || parsed.attachments.length > 0
  );
}

interface Body {
  replyText: string;
  fullText: string;
  removedText: string;
  forwarded: ForwardedMessage | null;
  html: string | null;
}

/** bodyOf, within the main thread's bound of lines when it runs there: past it, NotInline. */
function bodyOfHere(parsed: ParsedMessage, fullText: string, facts: Facts, inline: boolean): Body {
  if (!inline) return bodyOf(parsed, fullText, facts);
  try {
    return bodyOf(parsed, fullText, facts, INLINE_LINE_BOUND);
  } catch (err) {
    if (err instanceof PastLineBound) throw new NotInline(err.message);
    throw err;
  }
}

/** What the ticket shows (the answer), and everything else kept beside it. */
function bodyOf(parsed: ParsedMessage, fullText: string, facts: Facts, bound?: LineBound): Body {
  const extracted = replyOfParsed(parsed, fullText, bound);
  if (extracted.inputCut) facts.replyInputCut = true;
  return {
    replyText: extracted.reply,
    fullText,
    removedText: extracted.removed,
    forwarded: extracted.forwarded ?? null,
    html: parsed.html === null ? null : sanitizeHtml(parsed.html, parsed.text),
  };
}

function ticketMessageRow(
  route: TicketRoute,
  parsed: ParsedMessage,
  body: Body,
  key: string,
  envelope: Envelope,
  auth: AuthResults,
  decision: AuthDecision,
): TicketMessageRow {
  const author = parsed.from.length === 1 ? parsed.from[0]! : null;
  return {
    ticketId: route.ticket.id,
    idempotencyKey: key,
    authorAddress: author?.address ?? null,
    authorName: author?.name || null,
    authorRole: decision.role,
    subject: parsed.subject,
    ...body,
    messageId: parsed.messageId,
    inReplyTo: parsed.inReplyTo,
    references: parsed.references,
    sentAt: parsed.date,
    envelope,
    authResults: {
      spf: auth.spf,
      dkim: auth.dkim,
      dmarc: auth.dmarc,
      arc: auth.arc,
      temporaryChecks: auth.temporaryChecks,
      decision: {
        verdict: decision.verdict,
        policy: decision.policy,
        role: decision.role,
        authenticatedBy: decision.authenticatedBy,
        wouldReject: decision.wouldReject,
        wouldReply: decision.wouldReply ?? null,
      },
    },
    authHeader: auth.headers,
    authVerdict: decision.code,
    authReason: decision.reason,
  };
}

/** The SHA-256 stored beside the raw bytes (computed where the CPU work is done). */
export const sha256Of = (raw: Buffer): Buffer => crypto.createHash('sha256').update(raw).digest();
