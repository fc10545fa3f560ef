// The day's byte budgets of unrouted mail (postmaster@/abuse@, auto-replies, bounces: what strangers
// can make us store): one per client network (IPv4 /24, IPv6 /48) and one over all networks, since
// a thousand networks at the per-network budget are 50 GB a day. Both are counted in
// unrouted_budget (src/db/queries.ts chargeUnroutedBytes), all networks' in the row ALL_NETWORKS.
// Pure: the pipeline's worker threads decide with it too.
import type { Config } from '../config.js';

/** The unrouted_budget row of all networks together (network is text: no network is spelled so). */
export const ALL_NETWORKS = '*';

/** Bytes of unrouted mail stored today: the client network's, and every network's together. */
export interface UnroutedSpent {
  network: number;
  all: number;
}

/** UNROUTED_MAX_BYTES_PER_NETWORK_PER_DAY and UNROUTED_MAX_BYTES_PER_DAY (0: off). */
export interface UnroutedLimits {
  perNetwork: number;
  all: number;
}

export const unroutedLimits = (
  config: Pick<Config, 'unroutedMaxBytesPerNetworkPerDay' | 'unroutedMaxBytesPerDay'>,
): UnroutedLimits => ({ perNetwork: config.unroutedMaxBytesPerNetworkPerDay, all: config.unroutedMaxBytesPerDay });

/** The first of the day's budgets that `spent` (and `adding` more bytes) is past: the network's, then all's; null: neither. */
export function unroutedOver(spent: UnroutedSpent, limits: UnroutedLimits, adding = 0): 'network' | 'all' | null {
  if (limits.perNetwork && spent.network + adding > limits.perNetwork) return 'network';
  if (limits.all && spent.all + adding > limits.all) return 'all';
  return null;
}
