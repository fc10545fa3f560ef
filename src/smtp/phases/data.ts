// DATA: the bytes (read with a byte cap, CRLF only, the header block bounded, within the share of
// the buffer their client and network may hold: src/smtp/limits.ts; past it the session is closed
// with 421 at once rather than read to its end), the budget (messages processed
// at once and what they cost), the deadline, and the reply to the pipeline's outcome. What happens
// to the message in between is the pipeline's (src/pipeline/). Any trouble of ours, including our
// own deadline, answers 451.
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { Envelope } from '../../db/queries.js';
import { DeadlineExceeded, failureTag } from '../../deadline.js';
import type { AuthDnsFetch } from '../../mail/auth-dns.js';
import { colonEndedLines, emptyHeaderShape, inspectHeader, LineEndings } from '../../mail/bytes.js';
import { DKIM_MAX_SIGNATURES } from '../../mail/dkim-limit.js';
import { GrowingBuffer } from '../../mail/growing-buffer.js';
import { costOf, Overloaded } from '../../pipeline/budget.js';
import { recordRefusals } from '../../pipeline/deliver.js';
import { INLINE_SHAPE, type MessageShape } from '../../pipeline/inline.js';
import type { Facts, Outcome, Route } from '../../pipeline/types.js';
import { logDecision, type SmtpContext, tnxOf } from '../context.js';
import { type BufferVerdict, networkKey } from '../limits.js';
import { reply, type SmtpReply } from '../reply.js';
import { storeDeliveryReport } from './bounce.js';

type Callback = (err?: Error | null, message?: string) => void;

/**
 * Answers `reply` (a 421) now, in the middle of the DATA, and closes the session: nothing more of it
 * is read. The log line is the caller's to write.
 */
export type HangUp = (session: SMTPServerSession, reply: SmtpReply) => void;

/**
 * `hangUp` ends a session whose message passed its share of the buffer: its bytes would be refused
 * to the end anyway, and reading them to the final dot is smtp-server's dot-scanning in JavaScript on
 * the main thread. Eighty such streams from eight /24s (2 GB in 15 s, attack run 4) kept a staff
 * MTA 20 s from its greeting and made pg's connect timer late (451 DB_UNAVAILABLE). RFC 5321 allows
 * 421 at any time; the client retries later, as it would after 451.
 */
export function onData(ctx: SmtpContext, hangUp: HangUp) {
  return (stream: SMTPServerDataStream, session: SMTPServerSession, callback: Callback): void => {
    const { config } = ctx;
    const routes = session.envelope.rcptTo.map((a) => ctx.routes.get(a)).filter((r): r is Route => !!r);
    // mail that only postmaster@/abuse@ or our bounce addresses take has its own, smaller cap:
    // nothing past it is kept
    const unroutedOnly = routes.length > 0 && routes.every((r) => r.kind === 'postmaster' || r.kind === 'bounce');
    const cap = unroutedOnly
      ? Math.min(config.maxMessageBytes, config.unroutedMaxMessageBytes)
      : config.maxMessageBytes;
    const lineEndings = new LineEndings();
    // each chunk is copied into one buffer as it arrives (and is garbage at once), doubled as it
    // fills; not made the size a client declares (SIZE=): measured, that peaked higher (README)
    const received = new GrowingBuffer(cap);
    let bytes = 0;
    let tooBig = false;
    // Why the buffer took no more of this message (the figures at that moment), if it did not.
    let busy: BufferVerdict | null = null;
    // The session was closed (hangUp) when the buffer refused the message: its reply is given.
    let hungUp = false;
    // What this message holds of the buffer all connections share; given back exactly once.
    const claim = ctx.buffered.claim(session.remoteAddress);
    // SPF needs only the envelope: it runs while the bytes arrive (src/mail/auth-dns.ts)
    const authenticates = routes.some((r) => r.kind === 'ticket' || r.kind === 'support');
    const dns = authenticates ? ctx.pipeline.authDns(envelopeOf(session)) : null;
    const release = () => claim.release();
    const drop = () => {
      received.drop(); // nothing more is kept, and what was kept is let go
      release();
    };

    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (tooBig || busy) return;
      if (bytes > cap) {
        tooBig = true;
        return drop();
      }
      busy = claim.take(chunk.length);
      if (busy) {
        drop();
        hungUp = true;
        const r = busyReply(busy);
        logDecision(ctx, session, r, { bytes, ...busyFacts(busy) });
        return hangUp(session, r);
      }
      lineEndings.feed(chunk);
      received.append(chunk);
    });
    stream.once('error', (err) => {
      drop();
      // the session was closed by us: not an abort, and its reply is said and logged (given again
      // here, so that smtp-server's own reply to the error, which nobody reads, is ours and not a 450)
      if (hungUp) return callback(busyReply(busy!).toError());
      ctx.metrics.replies.inc({ code: 'DATA_ABORTED', reply: '0' });
      ctx.log.info(
        {
          code: 'DATA_ABORTED',
          cid: session.id,
          ip: session.remoteAddress,
          bytes,
          err: err.message,
        },
        'DATA_ABORTED',
      );
      callback(err);
    });
    stream.once('end', () => {
      // the final dot came in the chunk that passed the share: the 421 is said, nothing more to say
      if (hungUp) return callback(busyReply(busy!).toError());
      const started = performance.now();
      const answer = (r: SmtpReply, facts: Facts & Record<string, unknown>) => {
        const ms = performance.now() - started;
        ctx.metrics.dataSeconds.observe({ outcome: r.logCode }, ms / 1000);
        logDecision(ctx, session, r, { bytes, ms: Math.round(ms * 10) / 10, ...facts });
        if (facts.dkimUnverified)
          ctx.log.info(
            {
              code: 'AUTH_DKIM_SIGNATURES_CAPPED',
              cid: session.id,
              tnx: tnxOf(session),
              messageId: facts.messageId,
              unverified: facts.dkimUnverified,
              limit: DKIM_MAX_SIGNATURES,
            },
            'AUTH_DKIM_SIGNATURES_CAPPED',
          );
        // a permanent refusal of mail to a ticket is recorded for `ticket show` (after the reply's
        // log line, never before the reply: nothing waits for it)
        const tickets = [
          ...routes.flatMap((t) => (t.kind === 'ticket' ? [t.ticket.id] : [])),
          ...(facts.tickets ?? []),
        ];
        if (r.code >= 500 && tickets.length)
          recordRefusals(
            ctx.pool,
            tickets,
            {
              code: r.logCode,
              reply: r.toString(),
              reason: facts.reason ?? null,
              fromAddress: facts.from ?? null,
              messageId: facts.messageId ?? null,
              clientIp: session.remoteAddress,
            },
            (err) =>
              ctx.log.warn(
                { code: 'DATA_REFUSAL_NOT_RECORDED', cid: session.id, tickets, err: err.message },
                'DATA_REFUSAL_NOT_RECORDED',
              ),
          );
        if (r.ok) callback(null, r.message);
        else callback(r.toError());
      };
      const network = networkKey(session.remoteAddress);
      if (tooBig)
        return cap < config.maxMessageBytes
          ? answer(reply.unroutedTooBig(cap), { limit: cap, network })
          : answer(reply.tooBig(cap), { limit: cap });

      // The first refusals cost nothing: bytes the parsers would disagree about, a header block
      // that would cost mailauth's header parser more than the budget.
      const bare = lineEndings.end();
      if (bare) {
        drop();
        return answer(replyTo({ kind: 'bare-newline', which: bare, facts: {} }), {});
      }
      // its own ArrayBuffer, so that it can be moved to a worker without copying
      const raw = received.take();
      const header = emptyHeaderShape();
      const problem = inspectHeader(raw, { maxBytes: config.maxHeaderBytes, maxLines: config.maxHeaderLines }, header);
      if (problem) {
        release();
        return answer(replyTo({ ...problem, facts: {} }), {});
      }

      let settled = false;
      // The deadline answers 451 and cancels the statement (or keeps it from starting), so that
      // work does not pile up behind a client that was told to retry; work not yet committed
      // (waiting for its turn, in a worker) is given up. A commit already under way cannot be
      // cancelled: the reply says so, the late commit is logged, and the sender's retry is
      // recognised as a duplicate, so nothing is lost and nothing is stored twice.
      const deadline = new AbortController();
      const timer = setTimeout(() => {
        settled = true;
        const err = new DeadlineExceeded('DATA', config.hookTimeoutMs);
        deadline.abort(err);
        answer(reply.dataDeadline(), { err: err.message });
      }, config.hookTimeoutMs);
      const late = (code: 'DATA_LATE_COMMIT' | 'DATA_LATE_ABANDONED', fields: Record<string, unknown>) => {
        const ms = Math.round(performance.now() - started);
        ctx.metrics.lateOutcomes.inc({ code });
        ctx.log[code === 'DATA_LATE_COMMIT' ? 'warn' : 'info'](
          { code, cid: session.id, tnx: tnxOf(session), ip: session.remoteAddress, ms, ...fields },
          code,
        );
      };
      const failed = (err: unknown) => {
        clearTimeout(timer);
        const tag = failureTag(err);
        const message = (err as Error)?.message ?? String(err);
        if (tag === 'DISK_FULL')
          ctx.log.error(
            { code: 'DB_DISK_FULL', cid: session.id, tnx: tnxOf(session), err: message },
            'PostgreSQL cannot write: its disk is full. Mail gets 451 until space is freed',
          );
        if (settled) return late('DATA_LATE_ABANDONED', { err: message });
        if (err instanceof Overloaded) return answer(reply.overloaded(), { network, err: message });
        answer(reply.dataTempfail(tag), { err: message });
      };
      // a report about a notification we sent (bounces+<id>.<mac>@): its own module, never a ticket message
      if (routes.some((r) => r.kind === 'bounce')) {
        report(ctx, session, raw, lineEndings.controls, routes, network, deadline.signal, release)
          .then(({ answer: r, fields }) => {
            clearTimeout(timer);
            if (!settled) answer(r, fields);
            else late(r.ok ? 'DATA_LATE_COMMIT' : 'DATA_LATE_ABANDONED', { outcome: r.logCode, ...fields });
          }, failed)
          .finally(release);
        return;
      }
      const shape: MessageShape = {
        bytes,
        lines: lineEndings.lines,
        boundaries: lineEndings.dashLines,
        signatures: header.signatures,
        tags: lineEndings.tags,
        addressBytes: header.addressBytes,
        // a pass over the bytes, only where they are few enough for the main thread to process
        colonLines: bytes <= config.pipelineInlineMaxBytes ? colonEndedLines(raw, INLINE_SHAPE.colonLines + 1) : 0,
      };
      process(
        ctx,
        session,
        { raw, controls: lineEndings.controls, routes, network, shape, dns },
        deadline.signal,
        release,
      )
        .then((outcome) => {
          clearTimeout(timer);
          const r = replyTo(outcome);
          const facts = { ...outcome.facts, ...('limit' in outcome ? { limit: outcome.limit } : {}) };
          if (!settled) answer(r, facts);
          else
            late(r.ok ? 'DATA_LATE_COMMIT' : 'DATA_LATE_ABANDONED', {
              outcome: r.logCode,
              reply: r.toString(),
              ...facts,
            });
        }, failed)
        .finally(release);
    });
  };
}

/**
 * The budget: the message waits for its turn (charged what processing it costs, in place of its
 * buffered bytes), then the pipeline has it.
 */
async function process(
  ctx: SmtpContext,
  session: SMTPServerSession,
  message: {
    raw: Buffer;
    /** Its control characters, estimated (src/mail/bytes.ts LineEndings.controls): they cost more to process. */
    controls: number;
    routes: Route[];
    network: string;
    shape: MessageShape;
    dns: AuthDnsFetch | null;
  },
  signal: AbortSignal,
  releaseBuffered: () => void,
): Promise<Outcome> {
  const { raw, controls, routes, network, shape } = message;
  // the DNS first, holding only the message's bytes: no turn in the budget, no worker thread
  const dnsUntil = performance.now() + ctx.config.authDnsBudgetMs;
  const dns = message.dns ? await message.dns.record(raw, dnsUntil, signal) : undefined;
  signal.throwIfAborted();
  // answered well inside the deadline, so that the reply names our load rather than the deadline
  const wait = Math.min(ctx.config.pipelineQueueTimeoutMs, ctx.config.hookTimeoutMs / 2);
  const waitUntil = performance.now() + wait; // for the budget's turn and a worker thread together
  const done = await ctx.budget.acquire(costOf(raw.length, controls), network, wait, signal);
  try {
    releaseBuffered();
    const spf = message.dns?.spfResult;
    const input = {
      raw,
      envelope: envelopeOf(session),
      routes,
      network,
      ...(dns ? { dns } : {}),
      ...(spf ? { spf } : {}),
    };
    return await ctx.pipeline.process(input, signal, shape, waitUntil);
  } finally {
    done();
  }
}

/**
 * A delivery report waits for its turn in the same budget as any message (its parse runs here, on
 * the main thread, which its small size cap bounds), then bounce.ts stores it.
 */
async function report(
  ctx: SmtpContext,
  session: SMTPServerSession,
  raw: Buffer,
  controls: number,
  routes: Route[],
  network: string,
  signal: AbortSignal,
  releaseBuffered: () => void,
): Promise<{ answer: SmtpReply; fields: Record<string, unknown> }> {
  const wait = Math.min(ctx.config.pipelineQueueTimeoutMs, ctx.config.hookTimeoutMs / 2);
  const done = await ctx.budget.acquire(costOf(raw.length, controls), network, wait, signal);
  try {
    releaseBuffered();
    return await storeDeliveryReport(ctx, raw, routes, envelopeOf(session), network);
  } finally {
    done();
  }
}

/** The buffer took no more of the message: all of it is held, or the client's or network's share, or what is kept. */
function busyReply(busy: BufferVerdict): SmtpReply {
  switch (busy.refused) {
    case 'full':
      return reply.busy();
    case 'client':
      return reply.busyClient(busy.limit);
    case 'network':
      return reply.busyNetwork(busy.limit);
    case 'reserved':
      return reply.busyReserved();
  }
}

function busyFacts(busy: BufferVerdict): Record<string, unknown> {
  if (busy.refused === 'client') return { client: busy.key, clientBytes: busy.held, limit: busy.limit };
  if (busy.refused === 'network') return { network: busy.key, networkBytes: busy.held, limit: busy.limit };
  return { buffered: busy.held, limit: busy.limit };
}

/** The reply to each way a message can end. */
function replyTo(outcome: Outcome): SmtpReply {
  switch (outcome.kind) {
    case 'committed':
      return reply.committed(outcome.rawMessageId);
    case 'duplicate':
      return reply.duplicate(outcome.rawMessageId);
    case 'not-a-reply':
      return reply.notAReply(outcome.rawMessageId, outcome.notReply.kind);
    case 'ticket-rate-limited':
      return reply.ticketRateLimited(outcome.ticket, outcome.limit);
    case 'header-limit':
      return reply.headerLimit(outcome.what, outcome.limit);
    case 'duplicate-header':
      return reply.duplicateHeader(outcome.field, outcome.count);
    case 'bare-newline':
      return reply.bareNewline(outcome.which);
    case 'unparseable':
      return reply.unparseable(outcome.parser);
    case 'too-many-parts':
      return reply.tooManyParts(outcome.limit);
    case 'no-ticket':
      return reply.noTicket();
    case 'ticket-closed':
      return reply.supportTicketClosed(outcome.ticket);
    case 'auth': {
      const r = outcome.decision.reply!;
      return outcome.decision.verdict === 'reject' ? reply.authRejected(r) : reply.authTempfail(r);
    }
    case 'attachments-limit':
      return reply.attachmentsLimit(outcome.why);
    case 'unrouted-too-big':
      return reply.unroutedTooBig(outcome.limit);
    case 'unrouted-quota':
      return reply.unroutedQuota(outcome.limit);
    case 'unrouted-full':
      return reply.unroutedFull(outcome.limit);
    case 'too-complex':
      return reply.tooComplex();
  }
}

function envelopeOf(session: SMTPServerSession): Envelope {
  const mailFrom = session.envelope.mailFrom;
  return {
    clientIp: session.remoteAddress,
    clientHostname: session.clientHostname || null,
    helo: session.hostNameAppearsAs || null,
    mailFrom: mailFrom ? mailFrom.address : null,
    rcptTo: session.envelope.rcptTo.map((a) => a.address),
    tls: !!session.secure,
    tlsCipher: session.tlsOptions ? session.tlsOptions.name : null,
  };
}
