// Setting the outbox up from the configuration, once per process: the rules of who is notified,
// the VERP key (from the database), the templates and the DKIM key (checked at start), and a
// sender with every kind of delivery this version knows (mail; the CRM webhook when it is set).
// Used by serve and `outbox run`.
import type { Config } from '../config.js';
import { readVerpSecret } from '../db/outbox.js';
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { TEMPLATES_DIR } from '../paths.js';
import { type MailSettings, mailDelivery, readDkimKey } from './mail.js';
import { type NotifyRules, notifyRules } from './notify.js';
import { Sender } from './sender.js';
import { loadTemplates } from './templates.js';
import { webhookDelivery, webhookSettings } from './webhook.js';

export interface Outbox {
  /** Who gets notified (DATA and the functions of tickets.ts). */
  rules: NotifyRules;
  /** The MAC key of bounces+<id>.<mac>@ (RCPT checks it). */
  verpSecret: string;
  mail: MailSettings;
}

export async function openOutbox(config: Readonly<Config>, pool: Pool): Promise<Outbox> {
  const templates = loadTemplates({
    builtIn: TEMPLATES_DIR,
    override: config.templatesDir,
    language: config.notifyLanguage,
  });
  const verpSecret = await readVerpSecret(pool);
  const dkim = await readDkimKey(config);
  return { rules: notifyRules(config), verpSecret, mail: { config, templates, verpSecret, dkim } };
}

export function createSender(
  outbox: Outbox,
  deps: { config: Readonly<Config>; pool: Pool; databaseUrl: string; log: Logger; metrics?: Metrics },
): Sender {
  const { config, pool } = deps;
  const webhook = webhookSettings(config);
  return new Sender({
    pool,
    databaseUrl: deps.databaseUrl,
    // without CRM_WEBHOOK_URL no sender claims webhook rows: they wait, queued, until it is set again
    deliveries: [mailDelivery(pool, outbox.mail), ...(webhook ? [webhookDelivery(pool, webhook)] : [])],
    log: deps.log,
    concurrency: config.outboxConcurrency,
    sendTimeoutMs: config.outboxSendTimeoutMs,
    retryDelayMs: config.outboxRetryDelayMs,
    maxAgeMs: config.outboxMaxAgeMs,
    onOutcome: deps.metrics && ((kind, outcome) => deps.metrics!.outboxSends.inc({ kind, outcome })),
  });
}
