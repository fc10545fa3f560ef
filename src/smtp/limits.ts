// Per-client limits on the SMTP surface: concurrent connections per IPv4 address or IPv6 /64 (one
// host usually holds a whole /64) and per network (IPv4 /24, IPv6 /48: one operator's machines),
// room kept for networks not yet connected, and transactions started per minute. In memory, per
// process: they protect this instance, they are not a shared quota.
import { isIPv6 } from 'node:net';

/** The eight groups of an IPv6 address, expanded; the address itself for anything else. */
function ipv6Groups(ip: string): string[] {
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = ip.includes('::')
    ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right]
    : left;
  return groups.map((g) => g.replace(/^0+(?=.)/, ''));
}

const mappedV4 = (ip: string) => /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1];

/** The network a client is counted under: its IPv4 /24, or its IPv6 /48. */
export function networkKey(ip: string): string {
  const v4 = mappedV4(ip) ?? (isIPv6(ip) ? null : ip);
  if (v4 !== null) return `${v4.split('.').slice(0, 3).join('.')}.0/24`;
  return `${ipv6Groups(ip).slice(0, 3).join(':')}::/48`;
}

/** The key a client is counted under: its IPv4 address, or its IPv6 /64. */
export function clientKey(ip: string): string {
  const v4 = mappedV4(ip);
  if (v4) return v4;
  if (!isIPv6(ip)) return ip;
  return `${ipv6Groups(ip).slice(0, 4).join(':')}::/64`;
}

/** Why a connection is refused: its address or its network has its share, or only room kept for others is left. */
export type ConnectionRefusal = 'ip' | 'network' | 'reserved';

export interface NetworkLimits {
  /** Concurrent connections per network; 0 is no limit. */
  maxPerNetwork: number;
  /** Connections this instance takes in all (SMTP_MAX_CLIENTS). */
  maxClients: number;
  /** The last this many of maxClients only go to networks with no connection open. */
  reserved: number;
}

export class PerIpLimits {
  private connections = new Map<string, number>();
  private networks = new Map<string, number>();
  private open = 0;
  private window = { minute: -1, counts: new Map<string, number>() };

  constructor(
    private readonly maxConnections: number,
    private readonly maxPerMinute: number,
    private readonly now: () => number = Date.now,
    private readonly net: NetworkLimits = { maxPerNetwork: 0, maxClients: 0, reserved: 0 },
  ) {}

  /** Connections counted open now. */
  get total(): number {
    return this.open;
  }

  /** Past maxClients − reserved: only networks not yet connected get in, and idle clients get less time. */
  get nearlyFull(): boolean {
    return this.net.maxClients > 0 && this.open >= this.net.maxClients - this.net.reserved;
  }

  /** Well below nearly full again (nine tenths of the mark): stress mode ends, no sooner, so it does not flap. */
  get relieved(): boolean {
    return this.open < Math.floor(0.9 * (this.net.maxClients - this.net.reserved));
  }

  /** null when the connection may open (it is counted then); otherwise why not (nothing is counted). */
  openConnection(ip: string): ConnectionRefusal | null {
    const key = clientKey(ip);
    const network = networkKey(ip);
    const fromIp = this.connections.get(key) ?? 0;
    const fromNetwork = this.networks.get(network) ?? 0;
    if (this.maxConnections && fromIp >= this.maxConnections) return 'ip';
    if (this.net.maxPerNetwork && fromNetwork >= this.net.maxPerNetwork) return 'network';
    if (fromNetwork > 0 && this.nearlyFull) return 'reserved';
    this.connections.set(key, fromIp + 1);
    this.networks.set(network, fromNetwork + 1);
    this.open++;
    return null;
  }

  closeConnection(ip: string): void {
    const drop = (map: Map<string, number>, key: string) => {
      const left = (map.get(key) ?? 1) - 1;
      if (left > 0) map.set(key, left);
      else map.delete(key);
    };
    drop(this.connections, clientKey(ip));
    drop(this.networks, networkKey(ip));
    this.open = Math.max(0, this.open - 1);
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
