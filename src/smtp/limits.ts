// Per-client limits on the SMTP surface: concurrent connections per IPv4 address or IPv6 /64 (one
// host usually holds a whole /64) and per network (IPv4 /24, IPv6 /48: one operator's machines),
// room kept for networks not yet connected, transactions started per minute, and the share of
// SMTP_MAX_BUFFERED_BYTES a client and a network may hold with unfinished DATA. In memory, per
// process: they protect this instance, they are not a shared quota.
import { isIPv6 } from 'node:net';
import { addCount } from '../counts.js';

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
    addCount(this.connections, clientKey(ip), -1);
    addCount(this.networks, networkKey(ip), -1);
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

/**
 * Why bytes of a message arriving are refused: its client or its network holds its share already,
 * only the room kept for networks that hold nothing is left, or all of SMTP_MAX_BUFFERED_BYTES is held.
 */
export type BufferRefusal = 'client' | 'network' | 'reserved' | 'full';

/**
 * What one client (clientKey) may hold of SMTP_MAX_BUFFERED_BYTES: 22 slow connections of one
 * address under the per-IP limit held all of it, and every other sender got 451 4.3.1.
 */
export const CLIENT_BUFFER_SHARE = 1 / 4;
/** What one network (networkKey) may hold, however many addresses or /64s it sends from. */
export const NETWORK_BUFFER_SHARE = 1 / 2;
/** The last part, kept for messages whose network held nothing when their first byte came. */
export const RESERVED_BUFFER_SHARE = 1 / 4;

export interface BufferLimits {
  /** SMTP_MAX_BUFFERED_BYTES. */
  total: number;
  client: number;
  network: number;
  /** Bytes of `total` that only a message of a network holding nothing at its start may use. */
  reserved: number;
}

/** The shares in bytes; never less than the largest message, or that message would get 451 on every retry. */
export function bufferLimits(maxBufferedBytes: number, maxMessageBytes: number): BufferLimits {
  const share = (part: number) =>
    Math.min(maxBufferedBytes, Math.max(maxMessageBytes, Math.floor(part * maxBufferedBytes)));
  return {
    total: maxBufferedBytes,
    client: share(CLIENT_BUFFER_SHARE),
    network: share(NETWORK_BUFFER_SHARE),
    reserved: Math.floor(RESERVED_BUFFER_SHARE * maxBufferedBytes),
  };
}

/** A refusal and the figures it was decided on, for the reply and its log line. */
export interface BufferVerdict {
  refused: BufferRefusal;
  /** The bytes the refusal counts: the client's, the network's, or all connections'. */
  held: number;
  /** The limit they would have passed. */
  limit: number;
  /** clientKey or networkKey, for the client and network refusals. */
  key?: string;
}

/** One message's hold on the buffer while it arrives. */
export interface BufferClaim {
  /** Bytes this message holds now. */
  readonly held: number;
  /**
   * Decided at its first byte: a message whose network held nothing then may use the room kept.
   * One message at a time per network, so neither many connections of one address nor many
   * addresses of one /24 (nor /64s of one /48) take the reserve that is there for other senders.
   */
  readonly mayUseReserve: boolean;
  /** Counts `n` more bytes; null when they may be held, otherwise why not (nothing is counted). */
  take(n: number): BufferVerdict | null;
  /** Gives back all it holds; again, nothing. */
  release(): void;
}

/** Message bytes held in memory by all connections while they arrive, and by each client and network. */
export class BufferedBytes {
  private clients = new Map<string, number>();
  private networks = new Map<string, number>();

  constructor(
    readonly limits: BufferLimits,
    /** The count of all connections' bytes (the metrics gauge reads it). */
    private readonly all: { bytes: number } = { bytes: 0 },
  ) {}

  get bytes(): number {
    return this.all.bytes;
  }

  /** What the client at `ip` and its network hold now. */
  heldBy(ip: string): { client: number; network: number } {
    return { client: this.clients.get(clientKey(ip)) ?? 0, network: this.networks.get(networkKey(ip)) ?? 0 };
  }

  /** A hold for one message of the client at `ip`; released once, whatever becomes of the message. */
  claim(ip: string): BufferClaim {
    const client = clientKey(ip);
    const network = networkKey(ip);
    let started = false;
    const claim = {
      held: 0,
      mayUseReserve: false,
      take: (n: number): BufferVerdict | null => {
        if (n <= 0) return null;
        if (!started) {
          started = true;
          claim.mayUseReserve = !this.networks.has(network);
        }
        const verdict = this.verdict(client, network, claim.mayUseReserve, n);
        if (verdict) return verdict;
        this.add(client, network, n);
        claim.held += n;
        return null;
      },
      release: () => {
        if (claim.held) this.add(client, network, -claim.held);
        claim.held = 0;
      },
    };
    return claim;
  }

  private verdict(client: string, network: string, mayUseReserve: boolean, n: number): BufferVerdict | null {
    const { limits } = this;
    const byClient = this.clients.get(client) ?? 0;
    const byNetwork = this.networks.get(network) ?? 0;
    const all = this.all.bytes;
    if (byClient + n > limits.client) return { refused: 'client', held: byClient, limit: limits.client, key: client };
    if (byNetwork + n > limits.network)
      return { refused: 'network', held: byNetwork, limit: limits.network, key: network };
    if (all + n > limits.total) return { refused: 'full', held: all, limit: limits.total };
    if (!mayUseReserve && all + n > limits.total - limits.reserved)
      return { refused: 'reserved', held: all, limit: limits.total - limits.reserved };
    return null;
  }

  private add(client: string, network: string, n: number): void {
    addCount(this.clients, client, n);
    addCount(this.networks, network, n);
    this.all.bytes = Math.max(0, this.all.bytes + n);
  }
}
