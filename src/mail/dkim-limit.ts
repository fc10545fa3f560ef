// How many DKIM signatures of one message are verified. mailauth (pinned exactly in package.json:
// this patches its internals) verifies every DKIM-Signature field it can read: a message with 350
// of them, each with its own l= and selector, cost 350 body hashes and 350 key lookups. Here the
// verifier's prepareSignature() marks every valid DKIM signature past the first
// DKIM_MAX_SIGNATURES as skipped, which mailauth's lenient mode leaves out of the results as it
// does a signature of an unknown algorithm: no body hash, no key lookup, never a pass. Signatures
// it finds invalid (reported neutral, no key lookup) do not count; the ARC-Message-Signature it
// verifies beside them is not a DKIM signature and is not capped (ARC sets are mailauth's: at most
// 50, RFC 8617). authenticate.ts reports how many were left unverified.
//
// The upstreamable change this stands for: a `maxSignatures` option of mailauth's DkimVerifier.
// What this relies on is checked at load (below) and by test/unit/dkim-limit.test.ts.
import { createRequire } from 'node:module';

/** DKIM signatures verified per message at most; real mail has one to three (a list adds one). */
export const DKIM_MAX_SIGNATURES = 8;

/** The `skip` reason of a signature past the limit. */
export const OVER_LIMIT = `over the limit of ${DKIM_MAX_SIGNATURES} DKIM signatures a message`;

interface SignatureHeader {
  type?: string;
  skip?: string | boolean;
  invalid?: string | boolean;
}

interface VerifierPrototype {
  prepareSignature(this: object, signatureHeader: SignatureHeader): unknown;
}

const require = createRequire(import.meta.url);
const { DkimVerifier } = require('mailauth/lib/dkim/dkim-verifier.js') as {
  DkimVerifier: { prototype: VerifierPrototype };
};

const PATCHED = Symbol.for('ticketmx.dkimLimit');
const proto = DkimVerifier.prototype as VerifierPrototype & { [PATCHED]?: true };
const counted = Symbol('ticketmx.dkimVerified');
const unverified = Symbol('ticketmx.dkimUnverified');
type Counted = { [unverified]?: number };

if (typeof proto.prepareSignature !== 'function')
  throw new Error(
    "mailauth's DkimVerifier has no prepareSignature(): src/mail/dkim-limit.ts patches the internals of the exact " +
      'version pinned in package.json; check them against the installed one',
  );

if (!proto[PATCHED]) {
  proto[PATCHED] = true;
  const prepareSignature = proto.prepareSignature;
  proto.prepareSignature = function (this: { [counted]?: number; headers?: Counted }, signatureHeader) {
    const result = prepareSignature.call(this, signatureHeader);
    if (signatureHeader?.type === 'DKIM' && !signatureHeader.skip && !signatureHeader.invalid) {
      this[counted] = (this[counted] ?? 0) + 1;
      if (this[counted] > DKIM_MAX_SIGNATURES) {
        signatureHeader.skip = OVER_LIMIT;
        // on the parsed header, which mailauth hands back with its results (dkimResult.headers)
        if (this.headers) this.headers[unverified] = (this.headers[unverified] ?? 0) + 1;
      }
    }
    return result;
  };
}

/** DKIM signatures of the message that were not verified for the limit, from mailauth's parsed header. */
export const unverifiedSignatures = (headers: unknown): number =>
  (headers && typeof headers === 'object' ? (headers as Counted)[unverified] : 0) ?? 0;
