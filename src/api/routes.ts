// The HTTP API under /v1 (a fastify plugin): bearer auth, the routes with their zod schemas (the
// OpenAPI document at /v1/openapi.json is generated from them), and the one error handler that
// writes every refusal as an RFC 9457 problem document. SQL stays in src/db/queries.ts.
import crypto from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../config.js';
import { listTicketOutboxBounded } from '../db/outbox.js';
import { type Pool, withTransaction } from '../db/pool.js';
import {
  type ApiRequest,
  findApiAnswerBody,
  findApiRequest,
  findTicket,
  findTicketMessageBounded,
  insertApiAnswer,
  insertApiRequest,
  isReadOnlyView,
  listRefusalsBounded,
  listTicketMessagesBounded,
  readMessageText,
  TEXT_FIELDS,
} from '../db/queries.js';
import { failureTag } from '../deadline.js';
import type { Logger } from '../log.js';
import { EMAIL_ADDRESS_RE, replyAddress } from '../mail/address.js';
import { sanitizeHtml } from '../mail/sanitize.js';
import { NEW_TICKET_ID_RE, TICKET_ID_RE } from '../mail/ticket-id.js';
import { isClosed } from '../mail/ticket-status.js';
import type { NotifyRules } from '../outbox/notify.js';
import { createTicketWithMessage, NoSuchTicket, storeStaffAnswer } from '../outbox/tickets.js';
import { bearerChecker } from './auth.js';
import {
  API_HTML_MAX_CHARS,
  JSON_MAX_DEPTH,
  LIST_BYTES,
  PAGE_BYTES,
  PAGE_MESSAGES,
  PAGE_ROWS,
  TEXT_PIECE_CHARS,
  TEXT_PREVIEW_CHARS,
} from './limits.js';
import { ApiProblem, PROBLEMS, type ProblemCode, problem } from './problems.js';
import {
  MessageJson,
  messagesJson,
  OutboxRowJson,
  outboxRowJson,
  RefusalJson,
  refusalJson,
  TicketJson,
  TicketWithMessagesJson,
  ticketDocument,
  ticketJson,
} from './ticket-json.js';

export interface ApiOptions {
  config: Readonly<Config>;
  pool: Pool;
  log: Logger;
  rules: NotifyRules;
}

export const ProblemJson = z
  .object({
    type: z.string().describe('urn:ticket-mx:problem:<code>'),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string().describe('the request path'),
    code: z.enum(Object.keys(PROBLEMS) as [ProblemCode, ...ProblemCode[]]).describe('stable; see the README'),
    requestId: z.string().describe('as in the log lines of this request (rid)'),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: 'Problem', description: 'An RFC 9457 problem document (application/problem+json)' });

const problemResponse = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: ProblemJson } },
});

/** The refusals every authenticated route can give. */
const COMMON_PROBLEMS = {
  400: problemResponse(
    'a URL or a body that cannot be read (BAD_REQUEST, MALFORMED_JSON, JSON_TOO_DEEP, PROTOTYPE_POISONING)',
  ),
  401: problemResponse('no or a wrong bearer token (TOKEN_MISSING, TOKEN_INVALID)'),
  422: problemResponse('a parameter or the body breaks the schema (VALIDATION_FAILED)'),
  503: problemResponse('PostgreSQL did not answer (DATABASE_UNAVAILABLE)'),
};

const TicketId = z
  .string()
  .regex(TICKET_ID_RE, 'must be a ticket id such as TKT-12345')
  .transform((v) => v.toUpperCase());

/** A new ticket's id: one number is one ticket, so TKT-0042 is refused beside TKT-42 (src/mail/ticket-id.ts). */
const NewTicketId = z
  .string()
  .regex(TICKET_ID_RE, 'must be a ticket id such as TKT-12345')
  .regex(NEW_TICKET_ID_RE, 'must be written without leading zeros, such as TKT-42 (not TKT-0042)')
  .transform((v) => v.toUpperCase());

const TicketIdParams = z.object({ id: TicketId.describe('TKT-<number>; compared without case') });

const full = z
  .enum(['true', 'false'])
  .default('false')
  .transform((v) => v === 'true')
  .describe('true: each message with fullText, removedText and html too');

const MessagesPage = z
  .object({
    messages: z.array(MessageJson),
    next: z.string().describe('the `after` to poll with next: the last id returned, or the `after` given'),
    more: z
      .boolean()
      .describe(
        `true when \`limit\` or the size cap (${PAGE_BYTES} bytes) cut the page: ask again with \`after=next\` at once`,
      ),
  })
  .meta({ id: 'MessagesPage' });

const NotificationsPage = z
  .object({
    notifications: z.array(OutboxRowJson),
    next: z.string().describe('the `after` to ask with next: the last id returned, or the `after` given'),
    more: z
      .boolean()
      .describe(
        `true when \`limit\` or the size cap (${LIST_BYTES} bytes) cut the page: ask again with \`after=next\``,
      ),
  })
  .meta({ id: 'NotificationsPage' });

const RefusalsPage = z
  .object({
    refused: z.array(RefusalJson),
    next: z.string().describe('the `after` to ask with next: the last id returned, or the `after` given'),
    more: z
      .boolean()
      .describe(
        `true when \`limit\` or the size cap (${LIST_BYTES} bytes) cut the page: ask again with \`after=next\``,
      ),
  })
  .meta({ id: 'RefusalsPage' });

/** Ids are PostgreSQL bigints. */
const MAX_ID = 9223372036854775807n;

const MessageId = z
  .string()
  .regex(/^\d{1,19}$/, 'must be a message id (digits)')
  // zod runs this after a failed regex too, and BigInt('x') throws (a 500 where a 422 is due)
  .refine((v) => !/^\d+$/.test(v) || BigInt(v) <= MAX_ID, `must be at most ${MAX_ID}`);

const MessageIdParams = TicketIdParams.extend({ messageId: MessageId });

const TextPiece = z
  .object({
    messageId: z.string(),
    field: z.enum(TEXT_FIELDS),
    offset: z.number().int().describe('where this piece starts, in characters (Unicode code points)'),
    length: z.number().int().describe('the whole text, in characters; 0 when the message has none'),
    text: z.string().describe(`at most ${TEXT_PIECE_CHARS} characters from offset`),
    next: z.number().int().nullable().describe('the offset of the next piece; null when this one is the last'),
  })
  .meta({ id: 'TextPiece' });

const EMAIL = z
  .string()
  .trim()
  .max(320)
  .regex(EMAIL_ADDRESS_RE, 'must be an email address')
  .transform((v) => v.toLowerCase());

const MessageBody = z.object({
  text: z.string().trim().min(1, 'must not be empty').max(500_000).describe('the message as plain text'),
  html: z.string().max(2_000_000).optional().describe('the same message as HTML; stored sanitized'),
});

const CreateTicketBody = z
  .object({
    subject: z.string().trim().min(1, 'must not be empty').max(1000),
    requester: EMAIL.describe("the customer's address: may write to the ticket by mail, gets staff answers"),
    message: MessageBody.optional().describe('the first message, from the requester'),
    id: NewTicketId.optional().describe('this id instead of the next free number; its number without leading zeros'),
  })
  .strict()
  .meta({ id: 'NewTicket' });

const CreatedTicket = z
  .object({
    ticket: TicketJson,
    replyAddress: z.string().describe('where mail to the ticket goes: support+TKT-…@'),
    messageId: z.string().nullable().describe('the first message, if one was given'),
    outbox: z.array(z.string()).describe('the outbox rows queued: the staff notification, the webhook'),
  })
  .meta({ id: 'CreatedTicket' });

const AnswerBody = MessageBody.extend({
  author: z
    .object({ address: EMAIL, name: z.string().trim().max(200).optional() })
    .strict()
    .describe('the agent who typed it; the bearer token vouches for them'),
  // as the CLI's --subject: given, it says something; only spaces is a mistake, not a subject
  subject: z
    .string()
    .trim()
    .min(1, 'must not be empty (leave it out: the answer has none of its own)')
    .max(1000)
    .optional()
    .describe("the answer's own subject, stored with it; the mail's subject is the ticket's (Re: [TKT-…] subject)"),
})
  .strict()
  .meta({ id: 'NewAnswer' });

const StoredAnswer = z
  .object({
    message: MessageJson,
    outbox: z.array(z.string()).describe('the outbox rows queued: the mail to the requester, the webhook'),
  })
  .meta({ id: 'StoredAnswer' });

const IdempotencyHeaders = z.looseObject({
  'idempotency-key': z
    .string()
    .regex(/^[\x21-\x7e]{1,200}$/, 'must be 1 to 200 printable ASCII characters')
    .optional()
    .describe('the same key twice on one ticket stores (and mails) the answer once'),
});

const CreateIdempotencyHeaders = z.looseObject({
  'idempotency-key': z
    .string()
    .regex(/^[\x21-\x7e]{1,200}$/, 'must be 1 to 200 printable ASCII characters')
    .optional()
    .describe(
      'the same key twice creates the ticket (and its notification) once: a retry after a timeout or a 503 ' +
        'gets the ticket the first request made, with 200',
    ),
});

/** What a request with an Idempotency-Key is compared by: its validated body (key order and spacing aside). */
const bodySha256 = (body: unknown) => crypto.createHash('sha256').update(JSON.stringify(body)).digest();

/** A retry must carry the body the key was first used with (null: a key from before migration 0010). */
function checkSameBody(key: string, stored: Buffer | null | undefined, body: Buffer) {
  if (stored && !stored.equals(body)) throw problem.idempotencyKeyReused(key);
}

const KEY_PROBLEMS = {
  422: problemResponse(
    'a parameter or the body breaks the schema (VALIDATION_FAILED), the html is longer than the API takes ' +
      '(HTML_TOO_LARGE), or the Idempotency-Key was used with another body (IDEMPOTENCY_KEY_REUSED)',
  ),
};

/** A second request with an Idempotency-Key that another request took first. */
class KeyTaken extends Error {}

/** The refusals of a route that takes a body, besides the common ones. */
const BODY_PROBLEMS = {
  413: problemResponse('the body is larger than API_MAX_BODY_BYTES (BODY_TOO_LARGE)'),
  415: problemResponse('the body is not application/json in UTF-8 (UNSUPPORTED_MEDIA_TYPE)'),
};

/** A typed message's HTML is stored as received mail's is: sanitized, so that the CRM may show it. */
const storedHtml = (html: string | undefined, text: string) => (html === undefined ? null : sanitizeHtml(html, text));

/**
 * Before anything is looked up or stored: HTML the main thread would sanitize for too long
 * (src/api/limits.ts API_HTML_MAX_CHARS), 422 HTML_TOO_LARGE.
 */
function checkHtmlLength(path: string, html: string | undefined): void {
  if (html !== undefined && html.length > API_HTML_MAX_CHARS) throw problem.htmlTooLarge(path, html.length);
}

/** One message as the API answers it: the JSON of GET /v1/tickets/{id}?full=true, its long texts bounded. */
async function boundedMessage(pool: Pool, ticketId: string, by: { id: string } | { idempotencyKey: string }) {
  const m = await findTicketMessageBounded(pool, ticketId, by, TEXT_PREVIEW_CHARS);
  return m && (await messagesJson(pool, [m], true))[0]!;
}

const API_BOUNDS = { textChars: TEXT_PREVIEW_CHARS, pageBytes: PAGE_BYTES, limit: PAGE_MESSAGES };
const API_ROWS = { limit: PAGE_ROWS, pageBytes: LIST_BYTES };

/**
 * A JSON body, refused (an ApiProblem) when empty, nested deeper than JSON_MAX_DEPTH, not JSON, or
 * carrying a prototype-poisoning key.
 */
export function parseJsonBody(body: string): unknown {
  if (body.length === 0) throw problem.malformedJson('the body is empty');
  if (nestsDeeper(body, JSON_MAX_DEPTH)) throw problem.jsonTooDeep(JSON_MAX_DEPTH);
  // what secure-json-parse refuses: JSON.parse makes __proto__ an own key, which a later copy may
  // assign; the reviver (slower) only runs when the body holds such a key at all
  const reviver =
    body.includes('__proto__') || body.includes('constructor')
      ? (key: string, v: unknown) => {
          if (key === '__proto__' || (key === 'constructor' && v && typeof v === 'object' && 'prototype' in v))
            throw problem.prototypePoisoning();
          return v;
        }
      : undefined;
  try {
    return JSON.parse(body, reviver);
  } catch (err) {
    if (err instanceof ApiProblem) throw err;
    throw problem.malformedJson('it does not parse');
  }
}

/**
 * Whether the arrays and objects of a JSON text nest deeper than `max`, in one pass without
 * recursion; a bracket inside a string does not count. Malformed text is left to JSON.parse.
 */
export function nestsDeeper(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // to the closing quote, one after an even number of backslashes; a long string is one indexOf
      for (;;) {
        i = text.indexOf('"', i + 1);
        if (i < 0) return false;
        let backslashes = 0;
        while (text.charCodeAt(i - 1 - backslashes) === 0x5c) backslashes++;
        if (backslashes % 2 === 0) break;
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** The charsets a JSON body may name: UTF-8 (RFC 8259 8.1), and ASCII, which is UTF-8 too. */
const JSON_CHARSETS = new Set(['utf-8', 'utf8', 'us-ascii']);

/** The charset parameter of a Content-Type, lower-cased, or undefined when it has none. */
export function charsetOf(contentType: string | undefined): string | undefined {
  const m = /;\s*charset\s*=\s*(?:"([^"]*)"|([^;\s]*))/i.exec(contentType ?? '');
  return m ? (m[1] ?? m[2] ?? '').toLowerCase() : undefined;
}

/** The problem code each request ended with, for its log line. */
const problems = new WeakMap<FastifyRequest, ProblemCode>();

export function sendProblem(req: FastifyRequest, reply: FastifyReply, p: ApiProblem): FastifyReply {
  problems.set(req, p.code);
  return reply
    .code(p.status)
    .type('application/problem+json')
    .headers(p.extra.headers ?? {})
    .send(p.document(req.url, String(req.id)));
}

/** fastify's own errors, the schema's and ours, and anything unexpected, as one problem each. */
export function toProblem(err: unknown, req: FastifyRequest): ApiProblem {
  if (err instanceof ApiProblem) return err;
  if (hasZodFastifySchemaValidationErrors(err)) {
    const where = (err as { validationContext?: string }).validationContext ?? 'body';
    return problem.validationFailed(
      err.validation.map((v) => ({
        path: [where, ...v.instancePath.split('/').filter(Boolean)].join('.'),
        message: v.message ?? 'is not valid',
      })),
    );
  }
  const e = err as { code?: string; statusCode?: number; message?: string };
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problem.bodyTooLarge(req.server.initialConfig.bodyLimit ?? 0);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return problem.unsupportedMediaType(String(req.headers['content-type'] ?? '(none)'));
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return problem.malformedJson('its size does not match Content-Length');
  }
  if (e.statusCode && e.statusCode >= 400 && e.statusCode < 500) return problem.badRequest(e.message ?? 'bad request');
  const tag = failureTag(err);
  if (tag === 'DB_UNAVAILABLE' || tag === 'DEADLINE') return problem.databaseUnavailable();
  return problem.internal();
}

export async function api(app: FastifyInstance, opts: ApiOptions): Promise<void> {
  const { config, pool } = opts;
  const check = bearerChecker(config.apiToken!);
  const v1 = app.withTypeProvider<ZodTypeProvider>();
  // JSON only: fastify would also hand a text/plain body to the schema, which then calls it "not an object"
  v1.removeContentTypeParser('text/plain');
  // fastify's own JSON parser says "does not parse" of a body it refuses as prototype poisoning too
  v1.removeContentTypeParser('application/json');
  v1.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    try {
      // fastify decodes every body as UTF-8: one in another charset would be read as garbage
      const charset = charsetOf(req.headers['content-type']);
      if (charset && !JSON_CHARSETS.has(charset)) throw problem.unsupportedCharset(charset);
      done(null, parseJsonBody(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  v1.addHook('onRequest', async (req, reply) => {
    if (req.routeOptions.config?.public) return;
    const refused = check(req.headers.authorization);
    if (refused) return sendProblem(req, reply, refused);
  });

  v1.addHook('onResponse', async (req, reply) => {
    const status = reply.statusCode;
    const line = {
      code: 'API_REQUEST',
      method: req.method,
      route: req.routeOptions.url ?? null,
      url: req.url,
      status,
      problem: problems.get(req) ?? null,
      ms: Math.round(reply.elapsedTime),
    };
    if (status >= 500) req.log.error(line, 'API request failed');
    else req.log.info(line, 'API request');
  });

  v1.setErrorHandler((err, req, reply) => {
    const p = toProblem(err, req);
    if (p.status >= 500)
      req.log.error(
        { code: 'API_FAILED', problem: p.code, err: (err as Error).message, stack: (err as Error).stack },
        'API request failed',
      );
    return sendProblem(req, reply, p);
  });

  v1.setNotFoundHandler((req, reply) => {
    const refused = check(req.headers.authorization);
    return sendProblem(req, reply, refused ?? problem.notFound(req.method, req.url));
  });

  v1.get(
    '/openapi.json',
    {
      // OPENAPI_PUBLIC=false: behind the token like every other route
      config: { public: config.openapiPublic },
      schema: {
        summary: 'This document',
        description: 'The OpenAPI 3.1 description of the API, generated from the same zod schemas that validate it.',
        tags: ['meta'],
        ...(config.openapiPublic ? { security: [] } : {}),
        response: {
          200: z.record(z.string(), z.unknown()).describe('OpenAPI 3.1'),
          ...(config.openapiPublic ? {} : { 401: COMMON_PROBLEMS[401] }),
        },
      },
    },
    async () => app.swagger() as unknown as Record<string, unknown>,
  );

  v1.post(
    '/tickets',
    {
      schema: {
        summary: 'Create a ticket with its first message',
        description:
          'Creates the ticket (through the CRM view, if tickets is one) and its first message from the requester, ' +
          'and queues the staff notification (NOTIFY_STAFF_TO) and the webhook in the same transaction.',
        tags: ['tickets'],
        headers: CreateIdempotencyHeaders,
        body: CreateTicketBody,
        response: {
          200: CreatedTicket,
          201: CreatedTicket,
          ...COMMON_PROBLEMS,
          ...BODY_PROBLEMS,
          ...KEY_PROBLEMS,
          409: problemResponse(
            'the id exists (TICKET_EXISTS), or the tickets view takes no inserts (TICKETS_READ_ONLY)',
          ),
        },
      },
    },
    async (req, reply) => {
      const b = req.body;
      checkHtmlLength('body.message.html', b.message?.html);
      const key = req.headers['idempotency-key'];
      // a retry of a create that was made already is answered with what it made
      const sha = bodySha256(b);
      const answerEarlier = async (earlier: ApiRequest) => {
        checkSameBody(key!, earlier.bodySha256, sha);
        const ticket = await findTicket(pool, earlier.ticketId);
        if (!ticket) throw problem.ticketNotFound(earlier.ticketId);
        reply.code(200).header('location', `${app.prefix}/tickets/${ticket.id}`);
        const address = replyAddress(ticket.id, config);
        return { ticket: ticketJson(ticket), replyAddress: address, messageId: earlier.messageId, outbox: [] };
      };
      const earlier = key ? await findApiRequest(pool, key) : null;
      if (earlier) return answerEarlier(earlier);
      if (b.id && (await findTicket(pool, b.id))) throw problem.ticketExists(b.id);
      const created = await withTransaction(pool, async (tx) => {
        const c = await createTicketWithMessage(
          tx,
          {
            id: b.id,
            subject: b.subject,
            requester: b.requester,
            message: b.message && { text: b.message.text, html: storedHtml(b.message.html, b.message.text) },
            source: 'api',
          },
          opts.rules,
        );
        if (
          key &&
          !(await insertApiRequest(tx, key, { ticketId: c.ticket.id, messageId: c.messageId, bodySha256: sha }))
        )
          throw new KeyTaken();
        return c;
      }).catch(async (err: unknown) => {
        if (err instanceof KeyTaken) return (await findApiRequest(pool, key!))!;
        if (isReadOnlyView(err)) throw problem.ticketsReadOnly((err as Error).message);
        // two requests with the same id at once: the second loses at the primary key
        if ((err as { code?: string }).code === '23505' && b.id) throw problem.ticketExists(b.id);
        throw err;
      });
      // the same key won a race with us: its ticket, not a second one
      if (!('ticket' in created)) return answerEarlier(created);
      const { ticket } = created;
      reply.code(201).header('location', `${app.prefix}/tickets/${ticket.id}`);
      return {
        ticket: ticketJson(ticket),
        replyAddress: replyAddress(ticket.id, config),
        messageId: created.messageId,
        outbox: created.outboxIds,
      };
    },
  );

  v1.post(
    '/tickets/:id/messages',
    {
      schema: {
        summary: 'Answer a ticket from the CRM',
        description:
          'Stores the answer as a ticket message (role staff, source api) and, in the same transaction, queues its ' +
          "mail to the requester (threaded into the requester's mail, Reply-To the ticket address; unless " +
          'NOTIFY_REQUESTER=false) and the webhook. 201 with the message; 200 with the message stored before when ' +
          'the Idempotency-Key was used on this ticket already.',
        tags: ['tickets'],
        params: TicketIdParams,
        headers: IdempotencyHeaders,
        body: AnswerBody,
        response: {
          200: StoredAnswer,
          201: StoredAnswer,
          ...COMMON_PROBLEMS,
          ...BODY_PROBLEMS,
          ...KEY_PROBLEMS,
          404: problemResponse('no such ticket (TICKET_NOT_FOUND)'),
          409: problemResponse('the ticket is closed (TICKET_CLOSED)'),
        },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      const b = req.body;
      checkHtmlLength('body.html', b.html);
      const key = req.headers['idempotency-key'];
      const ticket = await findTicket(pool, id);
      if (!ticket) throw problem.ticketNotFound(id);
      // a retry of an answer already stored is answered as it was, even if the ticket closed since
      const sha = bodySha256(b);
      // what this key stored before, if it was this body (IDEMPOTENCY_KEY_REUSED if not)
      const answerEarlier = async () => {
        const m = await boundedMessage(pool, id, { idempotencyKey: `api:${key}` });
        if (m) checkSameBody(key!, await findApiAnswerBody(pool, id, key!), sha);
        return m;
      };
      const earlier = key ? await answerEarlier() : null;
      if (earlier) return reply.code(200).send({ message: earlier, outbox: [] });
      if (isClosed(ticket.status, config)) throw problem.ticketClosed(id, ticket.status);
      const stored = await withTransaction(pool, async (tx) => {
        const answer = await storeStaffAnswer(
          tx,
          {
            ticketId: id,
            author: { address: b.author.address, name: b.author.name ?? null },
            text: b.text,
            html: storedHtml(b.html, b.text),
            subject: b.subject ?? null,
            idempotencyKey: key,
            source: 'api',
          },
          opts.rules,
        );
        if (key && answer.messageId)
          await insertApiAnswer(tx, { ticketId: id, key, bodySha256: sha, messageId: answer.messageId });
        return answer;
      }).catch((err: unknown) => {
        if (err instanceof NoSuchTicket) throw problem.ticketNotFound(id);
        throw err;
      });
      // null: the same key won a race with us; answer with what it stored, if it was this body
      const message = stored.messageId
        ? await boundedMessage(pool, id, { id: stored.messageId })
        : await answerEarlier();
      if (!message) throw new Error(`the answer to ${id} was stored but cannot be read back`);
      reply.code(stored.messageId ? 201 : 200);
      return { message, outbox: stored.outboxIds };
    },
  );

  v1.get(
    '/tickets/:id',
    {
      schema: {
        summary: 'A ticket with its messages',
        description:
          'The same JSON as `ticket-mx ticket show --json` (`--full`: `full=true`; the messages by id here, by ' +
          'received time there), bounded: each long text and ' +
          `header field cut at ${TEXT_PREVIEW_CHARS} characters (listed in the message's \`truncated\`), the ` +
          `messages (by id) stopped before ${PAGE_BYTES} bytes or ${PAGE_MESSAGES} messages (\`messagesMore\`; the ` +
          `rest from the messages route), the notifications and the refusals each before ${LIST_BYTES} bytes or ` +
          `${PAGE_ROWS} rows (\`notificationsMore\`, \`refusedMore\`; the rest from their routes).`,
        tags: ['tickets'],
        params: TicketIdParams,
        querystring: z.object({ full }),
        response: {
          200: TicketWithMessagesJson,
          ...COMMON_PROBLEMS,
          404: problemResponse('no such ticket (TICKET_NOT_FOUND)'),
        },
      },
    },
    async (req) => {
      const { id } = req.params;
      const ticket = await findTicket(pool, id);
      if (!ticket) throw problem.ticketNotFound(id);
      return ticketDocument(pool, ticket, req.query.full, API_BOUNDS, API_ROWS);
    },
  );

  const AfterQuery = z.object({
    after: MessageId.default('0').describe('the id of the last row you have; 0 for the first page'),
    limit: z.coerce.number().int().min(1).max(PAGE_ROWS).default(PAGE_ROWS),
  });

  v1.get(
    '/tickets/:id/notifications',
    {
      schema: {
        summary: "A ticket's notifications (outbox rows) after an id",
        description:
          `The outbox rows of the ticket with an id above \`after\`, by id, at most \`limit\` and about ` +
          `${LIST_BYTES} bytes (one row at least): the rest of the ticket document's \`notifications\`.`,
        tags: ['tickets'],
        params: TicketIdParams,
        querystring: AfterQuery,
        response: {
          200: NotificationsPage,
          ...COMMON_PROBLEMS,
          404: problemResponse('no such ticket (TICKET_NOT_FOUND)'),
        },
      },
    },
    async (req) => {
      const { id } = req.params;
      const { after, limit } = req.query;
      if (!(await findTicket(pool, id))) throw problem.ticketNotFound(id);
      const page = await listTicketOutboxBounded(pool, id, after, { limit, pageBytes: LIST_BYTES });
      return { notifications: page.rows.map(outboxRowJson), next: page.rows.at(-1)?.id ?? after, more: page.more };
    },
  );

  v1.get(
    '/tickets/:id/refused',
    {
      schema: {
        summary: 'The mail refused for a ticket, after an id',
        description:
          `The refusals recorded for the ticket after the one with id \`after\`, oldest first, at most \`limit\` ` +
          `and about ${LIST_BYTES} bytes (one at least): the rest of the ticket document's \`refused\`.`,
        tags: ['tickets'],
        params: TicketIdParams,
        querystring: AfterQuery,
        response: {
          200: RefusalsPage,
          ...COMMON_PROBLEMS,
          404: problemResponse('no such ticket (TICKET_NOT_FOUND)'),
        },
      },
    },
    async (req) => {
      const { id } = req.params;
      const { after, limit } = req.query;
      if (!(await findTicket(pool, id))) throw problem.ticketNotFound(id);
      const page = await listRefusalsBounded(pool, id, after, { limit, pageBytes: LIST_BYTES });
      return { refused: page.refusals.map(refusalJson), next: page.refusals.at(-1)?.id ?? after, more: page.more };
    },
  );

  v1.get(
    '/tickets/:id/messages',
    {
      schema: {
        summary: "A ticket's messages after an id (for a CRM that polls)",
        description:
          `Messages with an id above \`after\`, in id order, at most \`limit\` and about ${PAGE_BYTES} bytes ` +
          `(one message at least), each long text cut at ${TEXT_PREVIEW_CHARS} characters (its \`truncated\` ` +
          'lists which; GET …/messages/{messageId}/{field} gives them whole). Ids are taken before commit, so a ' +
          'message that committed late can carry a lower id than one already returned: poll with `after` a little ' +
          'below the last id you handled and de-duplicate by id (or take the webhook, which misses nothing).',
        tags: ['tickets'],
        params: TicketIdParams,
        querystring: z.object({
          after: MessageId.default('0'),
          limit: z.coerce.number().int().min(1).max(PAGE_MESSAGES).default(100),
          full,
        }),
        response: {
          200: MessagesPage,
          ...COMMON_PROBLEMS,
          404: problemResponse('no such ticket (TICKET_NOT_FOUND)'),
        },
      },
    },
    async (req) => {
      const { id } = req.params;
      const { after, limit } = req.query;
      if (!(await findTicket(pool, id))) throw problem.ticketNotFound(id);
      const page = await listTicketMessagesBounded(pool, id, after, { ...API_BOUNDS, limit, full: req.query.full });
      return {
        messages: await messagesJson(pool, page.messages, req.query.full),
        next: page.messages.at(-1)?.id ?? after,
        more: page.more,
      };
    },
  );

  v1.get(
    '/tickets/:id/messages/:messageId',
    {
      schema: {
        summary: 'One message, with fullText, removedText and html',
        description:
          `As in GET /v1/tickets/{id}?full=true: each long text cut at ${TEXT_PREVIEW_CHARS} characters and ` +
          'listed in `truncated`; GET …/{messageId}/{field} gives each whole, piece by piece.',
        tags: ['tickets'],
        params: MessageIdParams,
        response: {
          200: MessageJson,
          ...COMMON_PROBLEMS,
          404: problemResponse('no such ticket, or no such message in it (TICKET_NOT_FOUND, MESSAGE_NOT_FOUND)'),
        },
      },
    },
    async (req) => {
      const { id, messageId } = req.params;
      const message = await boundedMessage(pool, id, { id: messageId });
      if (message) return message;
      throw (await findTicket(pool, id)) ? problem.messageNotFound(id, messageId) : problem.ticketNotFound(id);
    },
  );

  v1.get(
    '/tickets/:id/messages/:messageId/:field',
    {
      schema: {
        summary: 'One long text or header field of a message, whole, piece by piece',
        description:
          `Up to ${TEXT_PIECE_CHARS} characters of the field from \`offset\` (in characters), with the text's ` +
          'whole `length`; ask again with `offset=next` until `next` is null. forwardedText is forwarded.text ' +
          '(forwardedFrom, forwardedDate, forwardedSubject and forwardedTo its other fields); ' +
          'from and fromName are the author; references is the References field, its ids joined by spaces.',
        tags: ['tickets'],
        params: MessageIdParams.extend({ field: z.enum(TEXT_FIELDS) }),
        querystring: z.object({
          offset: z.coerce
            .number()
            .int()
            .min(0)
            .max(2 ** 31 - 1)
            .default(0),
        }),
        response: {
          200: TextPiece,
          ...COMMON_PROBLEMS,
          404: problemResponse('no such ticket, or no such message in it (TICKET_NOT_FOUND, MESSAGE_NOT_FOUND)'),
        },
      },
    },
    async (req) => {
      const { id, messageId, field } = req.params;
      const { offset } = req.query;
      const piece = await readMessageText(pool, id, messageId, field, offset, TEXT_PIECE_CHARS);
      if (!piece)
        throw (await findTicket(pool, id)) ? problem.messageNotFound(id, messageId) : problem.ticketNotFound(id);
      const end = offset + TEXT_PIECE_CHARS;
      return {
        messageId,
        field,
        offset,
        length: piece.length,
        text: piece.text,
        next: end < piece.length ? end : null,
      };
    },
  );
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without the bearer token (the OpenAPI document, unless OPENAPI_PUBLIC=false). */
    public?: boolean;
  }
}
