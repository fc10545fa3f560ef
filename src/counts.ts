// Counts kept per key (a client, a network) in a Map that holds only the keys counted now, so that
// it cannot grow with every address ever seen: the per-IP limits, the buffer shares, the budget's
// and the worker pool's turns between networks.

/** Adds `by` to `key`'s count; a count that falls to zero or below is removed. */
export function addCount(counts: Map<string, number>, key: string, by: number): void {
  const n = (counts.get(key) ?? 0) + by;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
