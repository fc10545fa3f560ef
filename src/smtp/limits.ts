// Per-client-IP limits on the SMTP surface: concurrent connections, and transactions started per
// minute. In memory, per process: they protect this instance, they are not a shared quota.

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
    const open = this.connections.get(ip) ?? 0;
    if (this.maxConnections && open >= this.maxConnections) return false;
    this.connections.set(ip, open + 1);
    return true;
  }

  closeConnection(ip: string): void {
    const open = (this.connections.get(ip) ?? 1) - 1;
    if (open > 0) this.connections.set(ip, open);
    else this.connections.delete(ip);
  }

  /** Counts a new transaction (MAIL FROM); false when the IP is over its rate this minute. */
  startTransaction(ip: string): boolean {
    if (!this.maxPerMinute) return true;
    const minute = Math.floor(this.now() / 60_000);
    // A fixed window: the map is dropped whole each minute, so it cannot grow without bound.
    if (minute !== this.window.minute) this.window = { minute, counts: new Map() };
    const count = (this.window.counts.get(ip) ?? 0) + 1;
    this.window.counts.set(ip, count);
    return count <= this.maxPerMinute;
  }
}
