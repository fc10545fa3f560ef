// The HTTP server's credentials: `Authorization: Bearer <API_TOKEN>` for the API (and
// METRICS_TOKEN for /metrics, src/http.ts), compared in constant time (both sides hashed first, so
// neither the length nor a common prefix shows in the timing).
import crypto from 'node:crypto';
import { type ApiProblem, problem } from './problems.js';

const digest = (value: string) => crypto.createHash('sha256').update(value, 'utf8').digest();

/** A matcher for one token: null when the header carries it, else whether it was missing or wrong. */
export function bearerMatcher(token: string): (authorization: string | undefined) => 'missing' | 'invalid' | null {
  const expected = digest(token);
  return (authorization) => {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '');
    if (!m) return 'missing';
    return crypto.timingSafeEqual(digest(m[1]!), expected) ? null : 'invalid';
  };
}

/** A checker for the API's token: null when the header carries it, else the refusal. */
export function bearerChecker(token: string): (authorization: string | undefined) => ApiProblem | null {
  const match = bearerMatcher(token);
  return (authorization) => {
    const refused = match(authorization);
    return refused === null ? null : refused === 'missing' ? problem.tokenMissing() : problem.tokenInvalid();
  };
}
