// The DNS resolver that authentication uses: Node's c-ares resolver with per-lookup timeouts,
// pointed at DNS_SERVERS when given. It answers like `dns.promises.resolve` (the shape
// mailauth's `resolver` option expects) and leaves error codes untouched; deciding what a
// failure means is left to mailauth and to `authorize()`.
import { promises as dnsPromises } from 'node:dns';

/** `(name, rrtype) => answer`, like `dns.promises.resolve`. Rejects with the DNS error code. */
export type Resolver = (name: string, rrtype: string) => Promise<any>;

export interface ResolverOptions {
  /** `ip` or `ip:port`; IPv6 as `::1` or `[::1]:53`. Unset: the system's resolv.conf servers. */
  servers?: string[];
  /** Time for one try against one server, in milliseconds (c-ares backs off on later tries). */
  timeoutMs: number;
  /** Tries per server before giving up with ETIMEOUT. Default 2. */
  tries?: number;
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

export const createResolver = ({ servers, timeoutMs, tries = 2 }: ResolverOptions): Resolver => {
  const resolver = new dnsPromises.Resolver({ timeout: timeoutMs, tries });
  if (servers?.length) {
    resolver.setServers(servers); // throws ERR_INVALID_IP_ADDRESS at start-up for a bad entry
  }

  // Concurrent messages from one domain ask the same questions (SPF, DMARC, DKIM key); they
  // share one lookup in flight instead of sending N identical queries. Nothing is kept once
  // the answer is in: caching with real TTLs is the job of a local caching resolver.
  const inFlight = new Map<string, Promise<any>>();

  return (name, rrtype) => {
    const key = `${rrtype} ${name.toLowerCase()}`;
    let pending = inFlight.get(key);
    if (!pending) {
      pending = resolver.resolve(name, rrtype).finally(() => inFlight.delete(key));
      inFlight.set(key, pending);
    }
    return pending;
  };
};
