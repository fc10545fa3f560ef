// The HTTP API's errors as RFC 9457 problem documents: one catalogue of stable codes (a test keeps
// the README's table equal to it) and a named factory per refusal. Routes throw an ApiProblem;
// the error handler in src/api/routes.ts turns it, and fastify's own errors, into the document.
import http from 'node:http';
import { API_HTML_MAX_CHARS, HTTP_LIMITS, JSON_MAX_DEPTH } from './limits.js';

export interface ProblemEntry {
  status: number;
  title: string;
  /** When the API answers this, for the README. */
  when: string;
}

export const PROBLEMS = {
  TOKEN_MISSING: {
    status: 401,
    title: 'Bearer token required',
    when: 'no `Authorization: Bearer …` header',
  },
  TOKEN_INVALID: {
    status: 401,
    title: 'Bearer token not valid',
    when: 'the token is not API_TOKEN',
  },
  API_DISABLED: {
    status: 404,
    title: 'The HTTP API is off',
    when: 'any `/v1/…` path while API_TOKEN is unset',
  },
  NOT_FOUND: {
    status: 404,
    title: 'No such route',
    when: 'a path or method the API does not have (GET /v1/openapi.json lists them)',
  },
  TICKET_NOT_FOUND: {
    status: 404,
    title: 'No such ticket',
    when: 'the ticket id is well-formed but no ticket has it (or the CRM deleted it)',
  },
  MESSAGE_NOT_FOUND: {
    status: 404,
    title: 'No such message',
    when: 'the ticket has no message with this id',
  },
  TICKET_EXISTS: {
    status: 409,
    title: 'Ticket already exists',
    when: 'POST /v1/tickets with an `id` that a ticket has already',
  },
  TICKET_CLOSED: {
    status: 409,
    title: 'Ticket is closed',
    when: 'POST /v1/tickets/{id}/messages to a ticket whose status is one of TICKET_CLOSED_STATUSES',
  },
  TICKETS_READ_ONLY: {
    status: 409,
    title: 'Tickets are read-only here',
    when: "POST /v1/tickets while tickets is a view over the CRM's table without an INSTEAD OF trigger",
  },
  MALFORMED_JSON: {
    status: 400,
    title: 'Body is not JSON',
    when: 'the body does not parse as JSON, or is empty where JSON is expected',
  },
  JSON_TOO_DEEP: {
    status: 400,
    title: 'Body nested too deep',
    when: `the JSON nests arrays and objects more than ${JSON_MAX_DEPTH} levels deep; refused before it is parsed`,
  },
  PROTOTYPE_POISONING: {
    status: 400,
    title: 'Body has a forbidden key',
    when: 'the JSON has a `__proto__` key, or a `constructor` with a `prototype`: refused as prototype poisoning',
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    title: 'Body must be application/json',
    when:
      'a body with another Content-Type, or application/json with a charset other than utf-8 or us-ascii ' +
      '(the body is not decoded)',
  },
  BODY_TOO_LARGE: {
    status: 413,
    title: 'Body too large',
    when: 'the body is larger than API_MAX_BODY_BYTES',
  },
  VALIDATION_FAILED: {
    status: 422,
    title: 'Request does not match the schema',
    when: 'a body, path or query parameter breaks the OpenAPI schema; `errors` lists each `{ path, message }`',
  },
  HTML_TOO_LARGE: {
    status: 422,
    title: 'HTML too large',
    when:
      `a message's \`html\` is longer than ${API_HTML_MAX_CHARS} characters (it is sanitized while the request ` +
      'waits): nothing is done; send it shorter, or the message as `text` alone',
  },
  IDEMPOTENCY_KEY_REUSED: {
    status: 422,
    title: 'Idempotency-Key used with another body',
    when: 'an `Idempotency-Key` that an earlier request with a different body took: nothing is done',
  },
  BAD_REQUEST: {
    status: 400,
    title: 'Request not understood',
    when:
      'another request that cannot be read, such as a malformed URL, request line or header, or Content-Length ' +
      'with Transfer-Encoding (these close the connection, their `instance` is `urn:ticket-mx:request:<id>`)',
  },
  REQUEST_TIMEOUT: {
    status: 408,
    title: 'Request too slow',
    when: `the request, body included, was not complete within ${HTTP_LIMITS.requestMs / 1000} s; the connection is closed`,
  },
  HEADERS_TOO_LARGE: {
    status: 431,
    title: 'Request head too large',
    when: `the request line and headers are larger than Node's limit (${http.maxHeaderSize / 1024} KiB); the connection is closed`,
  },
  DATABASE_UNAVAILABLE: {
    status: 503,
    title: 'Database unavailable',
    when:
      'PostgreSQL did not answer in time; a write may have been stored: retry after `Retry-After` seconds with ' +
      'the same `Idempotency-Key`, which is recognised',
  },
  INTERNAL_ERROR: {
    status: 500,
    title: 'Internal error',
    when: 'anything unexpected; logged as `API_FAILED` with the same `requestId`',
  },
} as const satisfies Record<string, ProblemEntry>;

export type ProblemCode = keyof typeof PROBLEMS;

/** The `type` of a problem: a URN naming its code (the README's table says what each means). */
export const problemType = (code: ProblemCode) => `urn:ticket-mx:problem:${code.toLowerCase().replace(/_/g, '-')}`;

export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  /** The stable code of the catalogue. */
  code: ProblemCode;
  /** As in the log lines of this request (`rid`). */
  requestId: string;
  errors?: { path: string; message: string }[];
}

/** A refusal a route decides; the error handler writes it as a problem document. */
export class ApiProblem extends Error {
  readonly status: number;
  constructor(
    readonly code: ProblemCode,
    readonly detail: string,
    readonly extra: { errors?: { path: string; message: string }[]; headers?: Record<string, string> } = {},
  ) {
    super(detail);
    this.name = 'ApiProblem';
    this.status = PROBLEMS[code].status;
  }

  document(instance: string, requestId: string): ProblemDocument {
    return {
      type: problemType(this.code),
      title: PROBLEMS[this.code].title,
      status: this.status,
      detail: this.detail,
      instance,
      code: this.code,
      requestId,
      ...(this.extra.errors ? { errors: this.extra.errors } : {}),
    };
  }
}

const BEARER_REALM = 'Bearer realm="ticket-mx"';

export const problem = {
  tokenMissing: () =>
    new ApiProblem('TOKEN_MISSING', 'Send the API token as "Authorization: Bearer <token>".', {
      headers: { 'www-authenticate': BEARER_REALM },
    }),
  tokenInvalid: () =>
    new ApiProblem('TOKEN_INVALID', 'The bearer token is not the API_TOKEN this server was started with.', {
      headers: { 'www-authenticate': `${BEARER_REALM}, error="invalid_token"` },
    }),
  apiDisabled: () =>
    new ApiProblem('API_DISABLED', 'The HTTP API is off on this server: set API_TOKEN (ticket-mx api-token create).'),
  notFound: (method: string, url: string) =>
    new ApiProblem('NOT_FOUND', `No route ${method} ${url}; GET /v1/openapi.json lists the routes.`),
  ticketNotFound: (id: string) => new ApiProblem('TICKET_NOT_FOUND', `No such ticket ${id}.`),
  messageNotFound: (id: string, messageId: string) =>
    new ApiProblem('MESSAGE_NOT_FOUND', `Ticket ${id} has no message ${messageId}.`),
  ticketExists: (id: string) => new ApiProblem('TICKET_EXISTS', `Ticket ${id} already exists.`),
  ticketClosed: (id: string, status: string) =>
    new ApiProblem('TICKET_CLOSED', `Ticket ${id} is closed (status ${status}) and takes no more messages.`),
  ticketsReadOnly: (why: string) =>
    new ApiProblem(
      'TICKETS_READ_ONLY',
      `tickets is a view over the CRM's tickets and does not take inserts (${why}); create the ticket in the CRM, ` +
        'or give the view an INSTEAD OF trigger (deploy/crm-view.sql).',
    ),
  malformedJson: (why: string) => new ApiProblem('MALFORMED_JSON', `The body is not valid JSON: ${why}.`),
  jsonTooDeep: (limit: number) =>
    new ApiProblem('JSON_TOO_DEEP', `The body nests arrays and objects more than ${limit} levels deep.`),
  prototypePoisoning: () =>
    new ApiProblem(
      'PROTOTYPE_POISONING',
      'The body has a "__proto__" key (or a "constructor" with a "prototype"): refused as prototype poisoning.',
    ),
  requestTimeout: (ms: number) =>
    new ApiProblem('REQUEST_TIMEOUT', `The request was not complete within ${ms / 1000} s.`),
  headersTooLarge: () => new ApiProblem('HEADERS_TOO_LARGE', 'The request line and headers are too large.'),
  unsupportedMediaType: (type: string) =>
    new ApiProblem('UNSUPPORTED_MEDIA_TYPE', `Content-Type ${type} is not accepted; send application/json.`),
  unsupportedCharset: (charset: string) =>
    new ApiProblem(
      'UNSUPPORTED_MEDIA_TYPE',
      `A JSON body in charset ${charset} is not accepted; send it as UTF-8 (RFC 8259 8.1), charset=utf-8 or none.`,
    ),
  bodyTooLarge: (limit: number) =>
    new ApiProblem('BODY_TOO_LARGE', `The body is larger than ${limit} bytes (API_MAX_BODY_BYTES).`),
  htmlTooLarge: (path: string, length: number) =>
    new ApiProblem(
      'HTML_TOO_LARGE',
      `${path} is ${length} characters, more than the ${API_HTML_MAX_CHARS} the API sanitizes; nothing was stored. ` +
        'Send shorter HTML, or the message as text alone.',
      { errors: [{ path, message: `at most ${API_HTML_MAX_CHARS} characters` }] },
    ),
  validationFailed: (errors: { path: string; message: string }[]) =>
    new ApiProblem(
      'VALIDATION_FAILED',
      errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join('; '),
      { errors },
    ),
  idempotencyKeyReused: (key: string) =>
    new ApiProblem(
      'IDEMPOTENCY_KEY_REUSED',
      `Idempotency-Key ${key} was used before with another body; use a new key for a new request.`,
    ),
  badRequest: (why: string) => new ApiProblem('BAD_REQUEST', `${why}.`),
  databaseUnavailable: () =>
    new ApiProblem(
      'DATABASE_UNAVAILABLE',
      'PostgreSQL did not answer. A write may have been stored: retry with the same Idempotency-Key, ' +
        'which is recognised.',
      { headers: { 'retry-after': '5' } },
    ),
  internal: () =>
    new ApiProblem('INTERNAL_ERROR', 'Something unexpected went wrong; the log line API_FAILED has the details.'),
};
