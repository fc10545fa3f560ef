// DKIM and ARC public keys kept across messages, by the bytes of their key record. mailauth (pinned
// exactly in package.json: this patches its internals) looks each key up once per message and then
// parses it twice — crypto.createPublicKey from the record's DER, and again from the PEM it exports,
// inside every crypto.verify — about 15% of a DKIM-signed message's CPU (npm run bench:steps). Here
// the key cache mailauth makes for each message is wrapped: the record is still looked up for every
// message (through the same resolver, so DNS_CACHE_SECONDS, temporary errors and the ARC temperror
// tracking of authenticate.ts are unchanged), and when its bytes are the same as a record seen
// before, mailauth's validation of it (a pure function of those bytes and the question's options)
// is not run again: the result and its KeyObject are reused. A record that changes is new bytes,
// so a rotated key is never verified against the old one.
//
// The upstreamable change this stands for: getPublicKey() in mailauth/lib/tools.js keeps the
// KeyObject it creates (publicKeyObject beside the PEM) for crypto.verify, and createKeyCache()
// takes an optional cross-message store keyed by the record. Until then, what this relies on is
// checked at load (assertPatchable) and by test/unit/dkim-keys.test.ts.
import crypto from 'node:crypto';
import { promises as dns } from 'node:dns';
import { createRequire } from 'node:module';
import { setNewest } from '../newest.js';

type Resolver = (name: string, rrtype: string) => Promise<unknown>;

interface KeyOptions {
  strict?: boolean;
  hashAlgo?: string;
}

/** What mailauth's getPublicKey() resolves with. */
interface PublicKeyResult {
  publicKey: string | crypto.KeyObject;
  rr: string;
  modulusLength: number;
  keyType: string;
  flags: string[];
  testing: boolean;
  warnings: string[];
}

/** mailauth's per-message key cache (createKeyCache in mailauth/lib/tools.js). */
interface KeyCache {
  resolver?: Resolver;
  get(type: string, name: string, minBitLength?: number, options?: KeyOptions): Promise<PublicKeyResult>;
}

interface MailauthTools {
  getPublicKey(
    type: string,
    name: string,
    minBitLength: number | undefined,
    resolver: Resolver,
    options?: KeyOptions,
  ): Promise<PublicKeyResult>;
  toALabel(name: string): string;
}

const require = createRequire(import.meta.url);
const tools = require('mailauth/lib/tools.js') as MailauthTools;
const { DkimVerifier } = require('mailauth/lib/dkim/dkim-verifier.js') as {
  DkimVerifier: new (options: { resolver?: Resolver }) => { keyCache: KeyCache };
};

/** Records kept at most (the least recently used goes first): a few KB each. */
export const MAX_KEYS = 1000;

const keys = new Map<string, PublicKeyResult>();
export const keyCacheStats = { hits: 0, misses: 0 };
/** Off: mailauth's own per-message cache alone, as unpatched (for tests and the bench's A/B runs). */
export const keyCacheSwitch = { enabled: true };

/** The record as getPublicKey() reads it: the first TXT record's strings joined, without whitespace. */
export const recordOf = (list: unknown): string =>
  list
    ? ([] as unknown[])
        .concat((list as unknown[])[0] || [])
        .join('')
        .replace(/\s+/g, '')
    : '';

/** Forgets every key (tests). */
export function clearKeyCache(): void {
  keys.clear();
  keyCacheStats.hits = 0;
  keyCacheStats.misses = 0;
}

const WRAPPED = Symbol('ticketmx.keyCache');

/** mailauth's cache of one message, with the keys of earlier messages behind it. */
function acrossMessages(inner: KeyCache): KeyCache {
  const resolver: Resolver = inner.resolver ?? ((name, rrtype) => dns.resolve(name, rrtype));
  const asked = new Map<string, Promise<PublicKeyResult>>();
  const lookup = async (type: string, name: string, minBitLength?: number, options: KeyOptions = {}) => {
    // the same question of the resolver as getPublicKey() asks: its errors are its errors
    const list = await resolver(tools.toALabel(name), 'TXT');
    const rr = recordOf(list);
    const key = [type, !!options.strict, minBitLength || '', options.hashAlgo || '', rr].join(':');
    const known = rr ? keys.get(key) : undefined;
    if (known) {
      keyCacheStats.hits++;
      setNewest(keys, key, known, MAX_KEYS);
      return known;
    }
    keyCacheStats.misses++;
    // validated by mailauth itself, on the answer just received (not looked up again)
    const result = await tools.getPublicKey(type, name, minBitLength, async () => list, options);
    if (!rr || result.rr !== rr) return result;
    const kept = Object.freeze({ ...result, publicKey: keyObjectOf(result.publicKey) });
    setNewest(keys, key, kept, MAX_KEYS);
    return kept;
  };
  return {
    resolver: inner.resolver,
    [WRAPPED]: true,
    get(type, name, minBitLength, options = {}) {
      // one lookup per key record for the message, as mailauth's own cache does
      const question = [type, !!options.strict, minBitLength || '', options.hashAlgo || '', name].join(':');
      let pending = asked.get(question);
      if (!pending) {
        pending = lookup(type, name, minBitLength, options);
        pending.catch(() => false);
        asked.set(question, pending);
      }
      return pending;
    },
  } as KeyCache;
}

/**
 * The key as crypto.verify takes it without parsing it again. mailauth also reports the key in its
 * results (`publicKey.toString()`): that still gives the PEM.
 */
function keyObjectOf(pem: string | crypto.KeyObject): crypto.KeyObject {
  if (typeof pem !== 'string') return pem;
  const key = crypto.createPublicKey(pem);
  Object.defineProperty(key, 'toString', { value: () => pem });
  return key;
}

/** Throws, naming what moved, unless mailauth still has what the patch relies on. */
export function assertPatchable(t: Partial<MailauthTools>, verifier: { prototype: object } | undefined): void {
  const missing = [
    typeof t.getPublicKey === 'function' ? null : 'tools.getPublicKey',
    typeof t.toALabel === 'function' ? null : 'tools.toALabel',
    typeof verifier?.prototype === 'object' ? null : 'DkimVerifier',
  ].filter(Boolean);
  if (missing.length)
    throw new Error(
      `mailauth has no ${missing.join(', ')}: src/mail/dkim-keys.ts patches the internals of the exact version ` +
        'pinned in package.json; check them against the installed one',
    );
}

assertPatchable(tools, DkimVerifier);

// DkimVerifier's constructor assigns `this.keyCache = createKeyCache(resolver)` and hands the same
// cache to the ARC checks of the message: a setter on the prototype wraps it there.
const proto = DkimVerifier.prototype as { [WRAPPED]?: boolean };
if (!proto[WRAPPED]) {
  proto[WRAPPED] = true;
  const own = Symbol('keyCache');
  Object.defineProperty(proto, 'keyCache', {
    configurable: true,
    get(this: { [own]?: KeyCache }) {
      return this[own];
    },
    set(this: { [own]?: KeyCache }, cache: KeyCache & { [WRAPPED]?: boolean }) {
      this[own] = cache && !cache[WRAPPED] && keyCacheSwitch.enabled ? acrossMessages(cache) : cache;
    },
  });
  // the constructor must still make its cache that way, or nothing above is used
  if (keyCacheSwitch.enabled && !(new DkimVerifier({}).keyCache as { [WRAPPED]?: boolean } | undefined)?.[WRAPPED])
    throw new Error(
      "mailauth's DkimVerifier no longer assigns this.keyCache: src/mail/dkim-keys.ts patches the internals of " +
        'the exact version pinned in package.json; check them against the installed one',
    );
}
