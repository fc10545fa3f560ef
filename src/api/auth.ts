// The API's one credential: `Authorization: Bearer <API_TOKEN>`, compared in constant time (both
// sides hashed first, so neither the length nor a common prefix shows in the timing).
import crypto from 'node:crypto';
import { type ApiProblem, problem } from './problems.js';

const digest = (value: string) => crypto.createHash('sha256').update(value, 'utf8').digest();

/** A checker for one token: null when the header carries it, else the refusal. */
export function bearerChecker(token: string): (authorization: string | undefined) => ApiProblem | null {
  const expected = digest(token);
  return (authorization) => {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '');
    if (!m) return problem.tokenMissing();
    return crypto.timingSafeEqual(digest(m[1]!), expected) ? null : problem.tokenInvalid();
  };
}
