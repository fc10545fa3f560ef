// The HTTP server on HTTP_HOST:HTTP_PORT (fastify): GET /healthz (PostgreSQL reachable?), GET /metrics
// (Prometheus; behind METRICS_TOKEN when it is set) and, when API_TOKEN is set, the HTTP API under /v1
// (src/api/routes.ts) with its OpenAPI document. Without API_TOKEN every /v1 path answers the problem
// API_DISABLED.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, LogController } from 'fastify';
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod';
import { bearerMatcher } from './api/auth.js';
import { HTTP_LIMITS } from './api/limits.js';
import { type ApiProblem, problem } from './api/problems.js';
import { api, sendProblem } from './api/routes.js';
import type { Config } from './config.js';
import type { Pool } from './db/pool.js';
import { ping } from './db/queries.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { WEBHOOK_EVENT } from './outbox/notify.js';
import type { Outbox } from './outbox/open.js';
// registers the WebhookEvent schema: the document's webhooks refer to it as a component
import './outbox/webhook.js';
import { failureTag, withDeadline } from './deadline.js';

/** The id of one request in its log lines and its problem document. */
const newRequestId = () => crypto.randomBytes(6).toString('hex');

import { EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER } from './outbox/webhook-signature.js';

const signatureHeader = (name: string, description: string, example: string) => ({
  name,
  in: 'header' as const,
  required: true,
  description,
  schema: { type: 'string' as const, example },
});

/** What ticket-mx sends to CRM_WEBHOOK_URL (README "Webhook to the CRM"); the body is the WebhookEvent schema. */
const WEBHOOKS = {
  [WEBHOOK_EVENT]: {
    post: {
      summary: 'A ticket message was committed',
      description:
        'POSTed to CRM_WEBHOOK_URL for every committed ticket message, through the outbox: retried with backoff ' +
        'until a 2xx, the same body (and event id) on every attempt. Verify the signature over the raw body first.',
      security: [],
      parameters: [
        signatureHeader(EVENT_ID_HEADER, 'the event id, as in the body: de-duplicate by it', '6f1c2d3e-…'),
        signatureHeader(TIMESTAMP_HEADER, 'Unix seconds of this attempt; refuse one more than 5 min off', '1769515200'),
        signatureHeader(
          SIGNATURE_HEADER,
          'v1= and the hex HMAC-SHA256, keyed with CRM_WEBHOOK_SECRET, of "<timestamp>.<raw body>"',
          'v1=5b0e…',
        ),
      ],
      requestBody: {
        required: true,
        content: { 'application/json': { schema: { $ref: '#/components/schemas/WebhookEvent' } } },
      },
      responses: {
        '2XX': { description: 'handled: not sent again' },
        default: { description: 'not handled (or no answer within CRM_WEBHOOK_TIMEOUT): sent again later' },
      },
    },
  },
};

/** Why Node's HTTP parser gave up on a request, for the problem's detail (the codes are llhttp's). */
function clientErrorProblem(err: NodeJS.ErrnoException): ApiProblem {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return problem.requestTimeout(HTTP_LIMITS.requestMs);
    case 'HPE_HEADER_OVERFLOW':
      return problem.headersTooLarge();
    case 'HPE_INVALID_METHOD':
    case 'HPE_INVALID_URL':
    case 'HPE_INVALID_CONSTANT':
    case 'HPE_INVALID_VERSION':
      return problem.badRequest('The request line is malformed');
    case 'HPE_INVALID_HEADER_TOKEN':
      return problem.badRequest('A header name or value has a character HTTP does not allow');
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_TRANSFER_ENCODING':
      return problem.badRequest('Content-Length and Transfer-Encoding together are refused (request smuggling)');
    default:
      return problem.badRequest(`The request cannot be read (${err.code ?? 'malformed'})`);
  }
}

/**
 * A request Node's parser refused before fastify saw it: the API's problem document (there is no URL
 * to name, so `instance` names the occurrence), one HTTP_CLIENT_ERROR line, and the connection closed.
 */
function answerClientError(log: Logger, err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const p = clientErrorProblem(err);
  const requestId = newRequestId();
  log.info(
    {
      code: 'HTTP_CLIENT_ERROR',
      rid: requestId,
      problem: p.code,
      err: err.code ?? err.message,
      ip: socket.remoteAddress,
    },
    'HTTP request refused by the parser',
  );
  // as Node's own handler: only when no response to an earlier request on the socket is half-written
  const pending = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !pending?.headersSent) {
    const body = JSON.stringify(p.document(`urn:ticket-mx:request:${requestId}`, requestId));
    socket.write(
      `HTTP/1.1 ${p.status} ${http.STATUS_CODES[p.status]}\r\nContent-Type: application/problem+json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

export interface RunningHttp {
  port: number;
  /** What the server answers, as `GET /v1/tickets/{id}` (what the OpenAPI document lists). */
  routes: string[];
  close(): Promise<void>;
}

export interface HttpOptions {
  config: Readonly<Config>;
  pool: Pool;
  metrics: Metrics;
  log: Logger;
  /** Who is notified of what the API writes (the rules DATA uses too). */
  outbox: Pick<Outbox, 'rules'>;
}

/** The fastify app with every route; not listening yet. */
export async function buildHttpApp(opts: HttpOptions): Promise<{ app: FastifyInstance; routes: string[] }> {
  const { config } = opts;
  const text = (reply: FastifyReply, status: number, body: string) =>
    reply.code(status).type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(body);
  const app = Fastify({
    loggerInstance: opts.log as FastifyBaseLogger,
    // one line per API request with a code (API_REQUEST) instead of fastify's two without
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'rid' }),
    genReqId: newRequestId,
    bodyLimit: config.apiMaxBodyBytes,
    forceCloseConnections: true,
    connectionTimeout: HTTP_LIMITS.idleMs,
    requestTimeout: HTTP_LIMITS.requestMs,
    keepAliveTimeout: HTTP_LIMITS.keepAliveMs,
    http: { headersTimeout: HTTP_LIMITS.headersMs, connectionsCheckingInterval: 1_000 },
    clientErrorHandler: (err, socket) => answerClientError(opts.log, err as NodeJS.ErrnoException, socket as Socket),
    return503OnClosing: true,
    // an API is not a file server: /v1/tickets/ is not /v1/tickets
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 200 },
    // what the router refuses before any route runs (a malformed URL, a parameter past maxParamLength)
    frameworkErrors: (err, req, reply) =>
      req.url.startsWith('/v1')
        ? sendProblem(req, reply, problem.badRequest(err.message))
        : text(reply, 400, `${err.message}\n`),
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  const routes: string[] = [];
  app.addHook('onRoute', (route) => {
    if ((route.schema as { hide?: boolean } | undefined)?.hide) return;
    for (const method of [route.method].flat())
      if (method !== 'HEAD') routes.push(`${method} ${route.url.replace(/:(\w+)/g, '{$1}')}`);
  });

  if (config.apiToken)
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'ticket-mx',
          version: 'v1',
          description:
            'Tickets and their messages over HTTP: create a ticket, read it, answer it (mailed to the requester ' +
            'through the outbox), poll for new messages. Errors are RFC 9457 problem documents.',
        },
        components: {
          securitySchemes: {
            bearer: { type: 'http', scheme: 'bearer', description: 'API_TOKEN' },
            ...(config.metricsToken
              ? { metrics: { type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN' } as const }
              : {}),
          },
        },
        security: [{ bearer: [] }],
        webhooks: WEBHOOKS,
      },
      transform: jsonSchemaTransform,
      transformObject: jsonSchemaTransformObject,
    });

  const operator = { tags: ['operations'], security: [] };

  app.get('/healthz', { schema: { summary: 'PostgreSQL reachable? 200 or 503', ...operator } }, async (_req, reply) => {
    reply.header('cache-control', 'no-store').type('application/json');
    try {
      await withDeadline(ping(opts.pool), 2_000, 'health check');
      return `${JSON.stringify({ status: 'ok', database: 'ok' })}\n`;
    } catch (err) {
      // the details stay in the log: the answer is for anyone who can reach the port
      const tag = failureTag(err);
      opts.log.warn({ code: 'HEALTH_FAILED', tag, err: (err as Error).message }, 'health check failed');
      reply.code(503);
      return `${JSON.stringify({ status: 'unavailable', database: tag })}\n`;
    }
  });
  const metricsToken = config.metricsToken ? bearerMatcher(config.metricsToken) : null;
  const metricsSchema = {
    summary: 'Prometheus metrics',
    ...operator,
    ...(metricsToken && { security: [{ metrics: [] }] }),
  };
  app.get('/metrics', { schema: metricsSchema }, async (req, reply) => {
    const refused = metricsToken?.(req.headers.authorization);
    if (refused) {
      opts.log.info(
        { code: 'METRICS_UNAUTHORIZED', rid: req.id, why: refused, ip: req.ip },
        '/metrics refused: no or a wrong METRICS_TOKEN',
      );
      reply.header(
        'www-authenticate',
        `Bearer realm="ticket-mx metrics"${refused === 'invalid' ? ', error="invalid_token"' : ''}`,
      );
      return text(
        reply,
        401,
        refused === 'missing'
          ? 'unauthorized: send Authorization: Bearer <METRICS_TOKEN>\n'
          : 'unauthorized: the bearer token is not METRICS_TOKEN\n',
      );
    }
    try {
      const body = await opts.metrics.registry.metrics();
      return reply.header('cache-control', 'no-store').type(opts.metrics.registry.contentType).send(body);
    } catch (err) {
      return text(reply, 500, (err as Error).message);
    }
  });
  for (const url of ['/healthz', '/metrics'])
    app.route({
      method: ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'],
      url,
      schema: { hide: true },
      handler: (_req, reply) => text(reply, 405, 'method not allowed\n'),
    });
  app.setNotFoundHandler((_req, reply) => text(reply, 404, 'not found: try /healthz or /metrics\n'));

  if (config.apiToken)
    await app.register(api, { prefix: '/v1', config, pool: opts.pool, log: opts.log, rules: opts.outbox.rules });
  else
    await app.register(
      async (off) => {
        off.setNotFoundHandler((req, reply) => sendProblem(req, reply, problem.apiDisabled()));
      },
      { prefix: '/v1' },
    );
  await app.ready();
  return { app, routes };
}

export async function startHttpServer(opts: HttpOptions): Promise<RunningHttp> {
  const { app, routes } = await buildHttpApp(opts);
  app.server.maxConnections = HTTP_LIMITS.maxConnections;
  // listening on fastify's server ourselves: fastify.listen would log a line of its own without a code
  await new Promise<void>((resolve, reject) => {
    app.server.once('error', reject);
    app.server.listen(opts.config.httpPort, opts.config.httpHost, () => {
      app.server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (app.server.address() as AddressInfo).port,
    routes,
    close: () => app.close(),
  };
}
