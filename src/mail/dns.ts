// The DNS resolver that authentication uses: Node's c-ares resolver with per-lookup timeouts,
// pointed at DNS_SERVERS when given. A lookup's time is kept here: c-ares (1.32 on) times a try by
// the server's recent answers once it has three (five times their average, 250 ms at least), so
// after fast answers from a local resolver a lookup had 250 + 500 ms where DNS_TIMEOUT_MS=2000
// promised 2 + 4 s, and a domain whose servers answer in a second was a temperror (451 4.7.x) on
// every retry. c-ares is given tries enough to fill the time at its shortest, and the lookup ends
// here when the time is up. It answers like `dns.promises.resolve` (the shape
// mailauth's `resolver` option expects) and leaves error codes untouched; deciding what a
// failure means is left to mailauth and to `authorize()`.
import { promises as dnsPromises } from 'node:dns';
import { setNewest } from '../newest.js';

/** `(name, rrtype) => answer`, like `dns.promises.resolve`. Rejects with the DNS error code. */
// biome-ignore lint/suspicious/noExplicitAny: answers differ by record type, as for dns.promises.resolve
export type Resolver = (name: string, rrtype: string) => Promise<any>;

export interface ResolverOptions {
  /** `ip` or `ip:port`; IPv6 as `::1` or `[::1]:53`. Unset: the system's resolv.conf servers. */
  servers?: string[];
  /** Time for the first try against one server, in milliseconds; each later try gets twice as long. */
  timeoutMs: number;
  /** Tries per server, so a lookup's time: lookupTimeMs(timeoutMs, tries) a server. Default 2. */
  tries?: number;
  /** Keep answers (and NXDOMAIN/NODATA) this long; 0 keeps nothing. Temporary errors are never kept. */
  cacheSeconds?: number;
  /** Most answers kept; the oldest goes first. */
  cacheEntries?: number;
  now?: () => number;
}

/** The answer is final: the name or the record does not exist. */
const DEFINITE_CODES = new Set(['ENOTFOUND', 'ENODATA']);

/**
 * True when a lookup failed for a reason that may go away on a retry (ETIMEOUT, ESERVFAIL,
 * ECONNREFUSED, EREFUSED, …). ENOTFOUND and ENODATA are answers, not trouble.
 */
export const isTemporaryDnsError = (err: unknown): boolean => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && !DEFINITE_CODES.has(code) && code !== 'EBADNAME';
};

/** The least c-ares times a try, whatever its timeout option says (MIN_TIMEOUT_MS in ares_metrics.c). */
const CARES_LEAST_TRY_MS = 250;

/** A lookup's time against one server: its first try, then `tries - 1` more, each twice the last. */
export const lookupTimeMs = (timeoutMs: number, tries = 2): number => timeoutMs * (2 ** tries - 1);

/** c-ares tries per server that fill `ms` when each lasts as little as c-ares may make it. */
const caresTries = (ms: number, tries: number): number =>
  Math.max(tries, Math.ceil(Math.log2(ms / CARES_LEAST_TRY_MS + 1)));

/** c-ares's code for a lookup without an answer in time: a temporary error. */
export const TIMED_OUT = 'ETIMEOUT';

const timedOut = (name: string, rrtype: string, ms: number): Error =>
  Object.assign(new Error(`query${rrtype} ${TIMED_OUT} ${name}: no answer within ${ms} ms`), {
    code: TIMED_OUT,
    hostname: name,
  });

export const createResolver = ({
  servers,
  timeoutMs,
  tries = 2,
  cacheSeconds = 0,
  cacheEntries = 10_000,
  now = Date.now,
}: ResolverOptions): Resolver => {
  const perServerMs = lookupTimeMs(timeoutMs, tries);
  const resolver = new dnsPromises.Resolver({ timeout: timeoutMs, tries: caresTries(perServerMs, tries) });
  if (servers?.length) {
    resolver.setServers(servers); // throws ERR_INVALID_IP_ADDRESS at start-up for a bad entry
  }
  const lookupMs = perServerMs * Math.max(1, resolver.getServers().length);
  /** c-ares's answer, or ETIMEOUT when the lookup's time is up first (c-ares's own tries go on). */
  const resolve = (name: string, rrtype: string): Promise<unknown> => {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      resolver.resolve(name, rrtype),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(timedOut(name, rrtype, lookupMs)), lookupMs);
      }),
    ]).finally(() => clearTimeout(timer));
  };

  // Concurrent messages from one domain ask the same questions (SPF, DMARC, DKIM key); they
  // share one lookup in flight instead of sending N identical queries.
  const inFlight = new Map<string, ReturnType<Resolver>>();
  // Answers are then kept for a short, fixed time: Node's resolver does not report TTLs for TXT,
  // and SPF, DKIM and DMARC records rarely live less than minutes. Definite failures (the name
  // or record does not exist) are kept too; temporary ones never, so a retry asks again.
  const cache = new Map<string, { expires: number; answer?: unknown; error?: unknown }>();
  const keep = (key: string, entry: { answer?: unknown; error?: unknown }) => {
    if (!cacheSeconds) return;
    setNewest(cache, key, { expires: now() + cacheSeconds * 1000, ...entry }, cacheEntries);
  };

  return (name, rrtype) => {
    const key = `${rrtype} ${name.toLowerCase()}`;
    const cached = cache.get(key);
    if (cached) {
      if (cached.expires > now())
        return 'error' in cached ? Promise.reject(cached.error) : Promise.resolve(cached.answer);
      cache.delete(key);
    }
    let pending = inFlight.get(key);
    if (!pending) {
      pending = resolve(name, rrtype).then(
        (answer) => {
          keep(key, { answer });
          return answer;
        },
        (error: unknown) => {
          if (!isTemporaryDnsError(error)) keep(key, { error });
          throw error;
        },
      );
      pending.finally(() => inFlight.delete(key)).catch(() => {});
      inFlight.set(key, pending);
    }
    return pending;
  };
};
