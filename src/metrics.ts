// Prometheus metrics for /metrics. One registry per server instance (tests run several).
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface Metrics {
  registry: Registry;
  replies: Counter<'code' | 'reply'>;
  dataSeconds: Histogram<'outcome'>;
  connections: Gauge;
  /** Message bytes held in memory by all connections; read by the gauge when scraped. */
  buffered: { bytes: number };
  /** Deliveries by kind (mail) and outcome: sent, deferred, failed, bounced. */
  outboxSends: Counter<'kind' | 'outcome'>;
  /** Where the outbox gauges read from when scraped (set by the service once the pool exists). */
  outbox: { stats: (() => Promise<{ kind: string; depth: number; oldestDueSeconds: number }[]>) | null };
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'ticketmx_' });
  const buffered = { bytes: 0 };
  new Gauge({
    name: 'ticketmx_smtp_buffered_bytes',
    help: 'Message bytes held in memory by all connections (bounded by SMTP_MAX_BUFFERED_BYTES)',
    registers: [registry],
    collect() {
      this.set(buffered.bytes);
    },
  });
  const outbox: Metrics['outbox'] = { stats: null };
  // both gauges of one scrape read the same query
  type Stats = { kind: string; depth: number; oldestDueSeconds: number }[];
  let cached: { at: number; stats: Promise<Stats> } | null = null;
  const readStats = (): Promise<Stats> => {
    if (!outbox.stats) return Promise.resolve([]);
    if (!cached || Date.now() - cached.at > 1000) cached = { at: Date.now(), stats: outbox.stats().catch(() => []) };
    return cached.stats;
  };
  new Gauge({
    name: 'ticketmx_outbox_queue_depth',
    help: 'Outbox rows not yet delivered (queued or being sent), by kind',
    labelNames: ['kind'],
    registers: [registry],
    async collect() {
      const stats = await readStats();
      this.reset();
      for (const s of stats) this.set({ kind: s.kind }, s.depth);
    },
  });
  new Gauge({
    name: 'ticketmx_outbox_oldest_due_seconds',
    help: 'How long the longest-waiting due outbox row has been due (0: none is waiting), by kind',
    labelNames: ['kind'],
    registers: [registry],
    async collect() {
      const stats = await readStats();
      this.reset();
      for (const s of stats) this.set({ kind: s.kind }, s.oldestDueSeconds);
    },
  });
  return {
    buffered,
    outbox,
    registry,
    outboxSends: new Counter({
      name: 'ticketmx_outbox_sends_total',
      help: 'Outbox delivery attempts by kind and outcome (sent, deferred, failed; bounced when a report comes back)',
      labelNames: ['kind', 'outcome'],
      registers: [registry],
    }),
    replies: new Counter({
      name: 'ticketmx_smtp_decisions_total',
      help: 'SMTP decisions by log code and reply code',
      labelNames: ['code', 'reply'],
      registers: [registry],
    }),
    dataSeconds: new Histogram({
      name: 'ticketmx_data_seconds',
      help: 'Time from the end of DATA to the reply',
      labelNames: ['outcome'],
      buckets: [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    connections: new Gauge({ name: 'ticketmx_smtp_connections', help: 'Open SMTP connections', registers: [registry] }),
  };
}
