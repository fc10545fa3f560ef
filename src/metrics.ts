// Prometheus metrics for /metrics. One registry per server instance (tests run several).
// Decisions (ours, one per log line with a code) and protocol refusals (smtp-server's own, such
// as the 503 a pipelined DATA gets after its RCPT was refused) are counted apart, so that an alert
// on refused mail does not fire for the echo of a 451.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { FINISHED_STATUSES } from './db/outbox.js';

export interface Metrics {
  registry: Registry;
  replies: Counter<'code' | 'reply'>;
  protocolRefusals: Counter<'reply' | 'kind'>;
  /** Stores that ended after the DATA deadline had answered 451: committed anyway, or abandoned. */
  lateOutcomes: Counter<'code'>;
  dataSeconds: Histogram<'outcome'>;
  /** Messages per commit of the group commit (src/db/group-commit.ts). */
  commitMessages: Histogram;
  /** RCPT ticket lookups answered by one statement (src/db/ticket-lookups.ts). */
  rcptLookups: Histogram;
  connections: Gauge;
  /** Sessions that reached the soft or the hard error limit. */
  errorLimits: Counter<'limit'>;
  /** Message bytes held in memory by all connections; read by the gauge when scraped. */
  buffered: { bytes: number };
  /** Deliveries by kind (mail) and outcome: sent, deferred, failed, bounced. */
  outboxSends: Counter<'kind' | 'outcome'>;
  /** Finished outbox rows deleted after OUTBOX_KEEP_SENT (src/outbox/prune.ts), by status. */
  outboxPruned: Counter<'status'>;
  /** Where the outbox gauges read from when scraped (set by the service once the pool exists). */
  outbox: { stats: (() => Promise<{ kind: string; depth: number; oldestDueSeconds: number }[]>) | null };
}

/** What the embedded PostgreSQL's supervisor knows, read when scraped. */
export interface EmbeddedStatus {
  readonly owned: boolean;
  readonly up: boolean;
  readonly restarts: number;
}

export function createMetrics(sources: { embedded?: EmbeddedStatus | null } = {}): Metrics {
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
  const embedded = sources.embedded;
  if (embedded?.owned) {
    new Gauge({
      name: 'ticketmx_embedded_postgres_up',
      help: 'The embedded PostgreSQL this process supervises is running (1) or being restarted (0)',
      registers: [registry],
      collect() {
        this.set(embedded.up ? 1 : 0);
      },
    });
    let counted = 0;
    new Counter({
      name: 'ticketmx_embedded_postgres_restarts_total',
      help: 'Times the supervisor restarted the embedded PostgreSQL after it died',
      registers: [registry],
      collect() {
        this.inc(embedded.restarts - counted);
        counted = embedded.restarts;
      },
    });
  }
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
    outboxPruned: outboxPruned(registry),
    replies: new Counter({
      name: 'ticketmx_smtp_decisions_total',
      help: 'SMTP decisions by log code and reply code',
      labelNames: ['code', 'reply'],
      registers: [registry],
    }),
    protocolRefusals: new Counter({
      name: 'ticketmx_smtp_protocol_refusals_total',
      help:
        'Refusals smtp-server decides itself, by reply code; kind="consequence" when a refusal of ours in the same ' +
        'transaction caused it (503 to DATA after the RCPT got 451), kind="client" otherwise',
      labelNames: ['reply', 'kind'],
      registers: [registry],
    }),
    lateOutcomes: new Counter({
      name: 'ticketmx_data_late_total',
      help: 'Messages whose store ended after the deadline answered 451: DATA_LATE_COMMIT (stored; the retry is a duplicate) or DATA_LATE_ABANDONED',
      labelNames: ['code'],
      registers: [registry],
    }),
    dataSeconds: new Histogram({
      name: 'ticketmx_data_seconds',
      help: 'Time from the end of DATA to the reply',
      labelNames: ['outcome'],
      buckets: [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    commitMessages: new Histogram({
      name: 'ticketmx_commit_messages',
      help: 'Messages stored by one commit (group commit: the messages ready at the same moment share it)',
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers: [registry],
    }),
    rcptLookups: new Histogram({
      name: 'ticketmx_rcpt_lookups_per_statement',
      help: 'RCPT ticket lookups answered by one statement (the lookups asked at the same moment share it)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
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

function outboxPruned(registry: Registry): Counter<'status'> {
  const counter = new Counter({
    name: 'ticketmx_outbox_pruned_total',
    help: 'Finished outbox rows deleted once older than OUTBOX_KEEP_SENT, by status (sent, failed, bounced)',
    labelNames: ['status'],
    registers: [registry],
  });
  // every status from the start: a rate() over a series that appears only at its first deletion misses it
  for (const status of FINISHED_STATUSES) counter.inc({ status }, 0);
  return counter;
}
