// The HTTP API under /v1 (a fastify plugin): bearer auth, the routes with their zod schemas (the
// OpenAPI document at /v1/openapi.json is generated from them), and the one error handler that
// writes every refusal as an RFC 9457 problem document. SQL stays in src/db/queries.ts.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../config.js';
import type { Pool } from '../db/pool.js';
import { findTicket, listTicketMessagesAfter } from '../db/queries.js';
import type { Logger } from '../log.js';
import { failureTag } from '../smtp/deadline.js';
import { bearerChecker } from './auth.js';
import { ApiProblem, PROBLEMS, type ProblemCode, problem } from './problems.js';
import { MessageJson, messagesJson, TicketWithMessagesJson, ticketJson, ticketMessagesJson } from './ticket-json.js';

export interface ApiOptions {
  config: Readonly<Config>;
  pool: Pool;
  log: Logger;
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
  401: problemResponse('no or a wrong bearer token (TOKEN_MISSING, TOKEN_INVALID)'),
  422: problemResponse('a parameter or the body breaks the schema (VALIDATION_FAILED)'),
  503: problemResponse('PostgreSQL did not answer (DATABASE_UNAVAILABLE)'),
};

const TicketIdParams = z.object({
  id: z
    .string()
    .regex(/^[Tt][Kk][Tt]-\d{1,18}$/, 'must be a ticket id such as TKT-12345')
    .transform((v) => v.toUpperCase())
    .describe('TKT-<number>; compared without case'),
});

const full = z
  .enum(['true', 'false'])
  .default('false')
  .transform((v) => v === 'true')
  .describe('true: each message with fullText, removedText and html too');

const MessagesPage = z
  .object({
    messages: z.array(MessageJson),
    next: z.string().describe('the `after` to poll with next: the last id returned, or the `after` given'),
    more: z.boolean().describe('true when `limit` cut the page: ask again with `after=next` at once'),
  })
  .meta({ id: 'MessagesPage' });

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
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return problem.malformedJson('the body is empty');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return problem.malformedJson('it does not parse');
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
      config: { public: true },
      schema: {
        summary: 'This document',
        description: 'The OpenAPI 3.1 description of the API, generated from the same zod schemas that validate it.',
        tags: ['meta'],
        security: [],
        response: { 200: z.record(z.string(), z.unknown()).describe('OpenAPI 3.1') },
      },
    },
    async () => app.swagger() as unknown as Record<string, unknown>,
  );

  v1.get(
    '/tickets/:id',
    {
      schema: {
        summary: 'A ticket with its messages',
        description: 'The same JSON as `ticket-mx ticket show --json` (`--full`: `full=true`).',
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
      return { ticket: ticketJson(ticket), messages: await ticketMessagesJson(pool, id, req.query.full) };
    },
  );

  v1.get(
    '/tickets/:id/messages',
    {
      schema: {
        summary: "A ticket's messages after an id (for a CRM that polls)",
        description:
          'Messages with an id above `after`, in id order, at most `limit`. Ids are taken before commit, so a ' +
          'message that committed late can carry a lower id than one already returned: poll with `after` a little ' +
          'below the last id you handled and de-duplicate by id (or take the webhook, which misses nothing).',
        tags: ['tickets'],
        params: TicketIdParams,
        querystring: z.object({
          after: z
            .string()
            .regex(/^\d{1,19}$/, 'must be a message id (digits)')
            .default('0'),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
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
      const rows = await listTicketMessagesAfter(pool, id, after, limit);
      return {
        messages: await messagesJson(pool, rows, req.query.full),
        next: rows.at(-1)?.id ?? after,
        more: rows.length === limit,
      };
    },
  );
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Served without the bearer token (the OpenAPI document). */
    public?: boolean;
  }
}
