// Per-client limits on the SMTP surface: concurrent connections, and transactions started per
// minute, per IPv4 address or IPv6 /64 (one host usually holds a whole /64). In memory, per
// process: they protect this instance, they are not a shared quota.
import { isIPv6 } from 'node:net';

/** The key a client is counted under: its IPv4 address, or its IPv6 /64. */
export function clientKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!isIPv6(ip)) return ip;
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = ip.includes('::')
    ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

export class PerIpLimits {
  private connections = new Map<string, number>();
  private window = { minute: -1, counts: new Map<string, number>() };

  constructor(
    private readonly maxConnections: number,
    private readonly maxPerMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** False when the IP already has its share of connections; then nothing is counted. */
  openConnection(ip: string): boolean {
    ip = clientKey(ip);
    const open = this.connections.get(ip) ?? 0;
    if (this.maxConnections && open >= this.maxConnections) return false;
    this.connections.set(ip, open + 1);
    return true;
  }

  closeConnection(ip: string): void {
    ip = clientKey(ip);
    const open = (this.connections.get(ip) ?? 1) - 1;
    if (open > 0) this.connections.set(ip, open);
    else this.connections.delete(ip);
  }

  /** Counts a new transaction (MAIL FROM); false when the IP is over its rate this minute. */
  startTransaction(ip: string): boolean {
    if (!this.maxPerMinute) return true;
    ip = clientKey(ip);
    const minute = Math.floor(this.now() / 60_000);
    // A fixed window: the map is dropped whole each minute, so it cannot grow without bound.
    if (minute !== this.window.minute) this.window = { minute, counts: new Map() };
    const count = (this.window.counts.get(ip) ?? 0) + 1;
    this.window.counts.set(ip, count);
    return count <= this.maxPerMinute;
  }
}
