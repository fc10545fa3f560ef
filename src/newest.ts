// Maps held to a bound by how recently each key was set: the DNS answers (src/mail/dns.ts), the
// DKIM keys (src/mail/dkim-keys.ts), the late DNS answers and the kept DMARC questions
// (src/mail/auth-dns.ts), the repeated reply texts (src/pipeline/repeats.ts). A Map iterates in
// insertion order, so its first key is the one set longest ago.

/** `key` set to `value` as the newest entry of `map`, the oldest going first past `max` entries. */
export function setNewest<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  while (map.size && map.size >= max) map.delete(map.keys().next().value as K);
  map.set(key, value);
}
