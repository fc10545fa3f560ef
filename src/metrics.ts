// Prometheus metrics for /metrics. One registry per server instance (tests run several).
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface Metrics {
  registry: Registry;
  replies: Counter<'code' | 'reply'>;
  dataSeconds: Histogram<'outcome'>;
  connections: Gauge;
  /** Sessions that reached the soft or the hard error limit. */
  errorLimits: Counter<'limit'>;
  /** Message bytes held in memory by all connections; read by the gauge when scraped. */
  buffered: { bytes: number };
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
  return {
    buffered,
    registry,
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
    errorLimits: new Counter({
      name: 'ticketmx_smtp_error_limit_total',
      help: 'Sessions that reached SMTP_SOFT_ERROR_LIMIT (soft: delayed) or SMTP_HARD_ERROR_LIMIT (hard: closed)',
      labelNames: ['limit'],
      registers: [registry],
    }),
  };
}
