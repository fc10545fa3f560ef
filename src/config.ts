// The only reader of process.env: one zod schema, two profiles, a frozen Config.
// A bad value stops the process with every problem listed, each naming its variable.

import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

export type Profile = 'local' | 'production';
export type AuthPolicy = 'enforce' | 'monitor';

export interface Config {
  profile: Profile;
  databaseUrl: string | null;
  dataDir: string;
  smtpHost: string;
  smtpPort: number;
  smtpHostname: string;
  mailDomains: string[];
  supportLocalPart: string;
  maxMessageBytes: number;
  maxRecipients: number;
  maxClients: number;
  authPolicy: AuthPolicy;
  staffSenders: string[];
  dnsServers: string[];
  dnsTimeoutMs: number;
  dnsCacheSeconds: number;
  arcTrustedSealers: string[];
  replyAddressSecret: string | null;
  replyAddressSecretPrevious: string | null;
  replyAddressUnsigned: 'refuse' | 'accept';
  maxConnectionsPerIp: number;
  ticketMaxMessagesPerHour: number;
  attachmentMaxCount: number;
  attachmentMaxBytes: number;
  notificationSenders: string[];
  maxMessagesPerIpPerMinute: number;
  httpHost: string;
  httpPort: number;
  logLevel: string;
  databasePoolSize: number;
  /** Deadline for one SMTP hook (RCPT lookup; DATA after the last byte). */
  hookTimeoutMs: number;
  socketTimeoutMs: number;
  greetingDelayMs: number;
  maxSessionMs: number;
  maxBufferedBytes: number;
  proxyProtocol: boolean;
  tlsCertFile: string | null;
  tlsKeyFile: string | null;
}

/** What every variable means, its default per profile: the README table is kept equal to this by a test. */
export const VARIABLES = {
  DATABASE_URL: 'PostgreSQL URL. Unset: the local profile with an embedded PostgreSQL under DATA_DIR.',
  DATA_DIR: 'Directory for the embedded PostgreSQL and its credentials (local profile).',
  SMTP_HOST: 'Address the SMTP server listens on.',
  SMTP_PORT: 'SMTP port (0 picks a free port).',
  SMTP_HOSTNAME: 'Name in the 220 greeting and EHLO reply.',
  MAIL_DOMAINS: 'Comma-separated domains we are the MX for; anything else is relaying and refused.',
  SUPPORT_LOCAL_PART: 'Local part of reply addresses (support+TKT-1@…).',
  MAX_MESSAGE_BYTES: 'Largest message accepted, advertised as SIZE; larger gets 552 5.3.4.',
  SMTP_MAX_RECIPIENTS: 'Recipients per transaction; more get 452 4.5.3.',
  SMTP_MAX_CLIENTS: 'Concurrent SMTP connections; more get 421.',
  AUTH_POLICY: '`enforce` refuses unauthenticated or unauthorised senders with 550; `monitor` accepts and records.',
  STAFF_SENDERS: 'Comma-separated staff addresses and @domains allowed to write to any ticket.',
  DNS_SERVERS: 'Comma-separated DNS servers (ip or ip:port) for SPF/DKIM/DMARC; unset uses the system resolver.',
  DNS_CACHE_SECONDS:
    'How long DNS answers (and NXDOMAIN) are kept in memory; 0 keeps nothing. Temporary errors are never kept.',
  DNS_TIMEOUT_MS:
    'Time for one DNS query try (two tries per server); a lookup that still fails is a temporary error (451 4.7.x).',
  ARC_TRUSTED_SEALERS:
    'Comma-separated domains whose valid ARC seal vouches for forwarded mail (e.g. a mailing list or forwarding service).',
  REPLY_ADDRESS_SECRET: 'Secret for signed reply addresses support+TKT-1.<mac>@; set, RCPT accepts only a valid MAC.',
  REPLY_ADDRESS_SECRET_PREVIOUS: 'The previous secret during a key rotation: addresses signed with it keep working.',
  REPLY_ADDRESS_UNSIGNED: '`refuse` or `accept` unsigned addresses once a secret is set (accept only while migrating).',
  TICKET_MAX_MESSAGES_PER_HOUR:
    'Messages one ticket accepts per hour (a mail-loop breaker); more get 450 4.7.1. 0 turns it off.',
  ATTACHMENT_MAX_COUNT: 'Attachments per message; more get 552 5.3.4.',
  ATTACHMENT_MAX_BYTES: 'Total decoded size of the attachments of one message; more get 552 5.3.4.',
  NOTIFICATION_SENDERS:
    'Comma-separated From addresses of our own notifications, so that they are recognised if they come back (support@ and noreply@ our domains always are).',
  SMTP_MAX_CONNECTIONS_PER_IP: 'Concurrent connections from one client IP; more get 421 4.7.0. 0 turns the limit off.',
  SMTP_MAX_MESSAGES_PER_IP_PER_MINUTE:
    'Transactions one client IP may start per minute; more get 450 4.7.1 at MAIL FROM. 0 turns the limit off.',
  HTTP_HOST: 'Address for /healthz and /metrics (set 0.0.0.0 for a Prometheus on another host).',
  HTTP_PORT: 'Port for /healthz and /metrics (0 picks a free port).',
  LOG_LEVEL: 'pino level: fatal, error, warn, info, debug, trace, silent.',
  DATABASE_POOL_SIZE: 'PostgreSQL connections per process.',
  HOOK_TIMEOUT_MS:
    'Deadline for one SMTP decision (RCPT lookup, DATA after the final dot); past it we answer 451 4.3.0.',
  SMTP_SOCKET_TIMEOUT_MS: 'Idle time before a silent client is disconnected.',
  SMTP_MAX_SESSION_MS:
    'Longest an SMTP connection may stay open, however busy; then 421 4.4.2 and the connection is closed.',
  SMTP_MAX_BUFFERED_BYTES:
    'Message bytes all connections together may hold in memory; a message that would pass it gets 451 4.3.1.',
  SMTP_GREETING_DELAY_MS:
    'Pause before the 220 greeting; a client that talks during it gets 421 (early-talker check). 0 disables it.',
  PROXY_PROTOCOL: 'Expect a PROXY protocol header (behind a TCP balancer): true/false.',
  TLS_CERT_FILE: 'PEM certificate for STARTTLS; unset: STARTTLS is not offered.',
  TLS_KEY_FILE: 'PEM private key for STARTTLS.',
} as const;

export type VariableName = keyof typeof VARIABLES;

const list = (value: string | undefined): string[] =>
  (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

const int = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

const bool = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' }))
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const domainRe = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const localPartRe = /^[a-z0-9!#$%&'*/=?^_`{|}~.-]{1,64}$/;

const schema = z.object({
  DATABASE_URL: z
    .string()
    .trim()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  DATA_DIR: z.string().trim().min(1).optional(),
  SMTP_HOST: z
    .string()
    .trim()
    .refine((v) => isIP(v) !== 0 || v === 'localhost', 'must be an IP address')
    .optional(),
  SMTP_PORT: int(0, 65535).optional(),
  SMTP_HOSTNAME: z.string().trim().regex(domainRe, 'must be a host name').optional(),
  MAIL_DOMAINS: z
    .string()
    .transform((v) => list(v).map((d) => d.toLowerCase()))
    .pipe(
      z
        .array(z.string().regex(domainRe, 'must list domain names such as flamecrm.ru'))
        .min(1, 'must name at least one domain'),
    )
    .optional(),
  SUPPORT_LOCAL_PART: z
    .string()
    .trim()
    .toLowerCase()
    .regex(localPartRe, 'must be a plain local part such as support')
    .refine((v) => !v.includes('+'), 'must not contain +')
    .optional(),
  MAX_MESSAGE_BYTES: int(1024, 1024 ** 3).optional(),
  SMTP_MAX_RECIPIENTS: int(1, 1000).optional(),
  SMTP_MAX_CLIENTS: int(1, 100_000).optional(),
  AUTH_POLICY: z.enum(['enforce', 'monitor'], { message: 'must be enforce or monitor' }).optional(),
  STAFF_SENDERS: z
    .string()
    .transform((v) => list(v).map((s) => s.toLowerCase()))
    .pipe(z.array(z.string().regex(/^([^@\s]+)?@[^@\s]+$/, 'must list addresses (a@b.ru) or domains (@b.ru)')))
    .optional(),
  DNS_TIMEOUT_MS: int(50, 60_000).optional(),
  DNS_CACHE_SECONDS: int(0, 86_400).optional(),
  ARC_TRUSTED_SEALERS: z
    .string()
    .transform((v) => list(v).map((d) => d.toLowerCase()))
    .pipe(z.array(z.string().regex(domainRe, 'must list domain names such as lists.example.org')))
    .optional(),
  REPLY_ADDRESS_SECRET: z.string().min(16, 'must be at least 16 characters (e.g. openssl rand -hex 32)').optional(),
  REPLY_ADDRESS_SECRET_PREVIOUS: z.string().min(16, 'must be at least 16 characters').optional(),
  REPLY_ADDRESS_UNSIGNED: z.enum(['refuse', 'accept'], { message: 'must be refuse or accept' }).optional(),
  SMTP_MAX_CONNECTIONS_PER_IP: int(0, 100_000).optional(),
  TICKET_MAX_MESSAGES_PER_HOUR: int(0, 1_000_000).optional(),
  ATTACHMENT_MAX_COUNT: int(0, 10_000).optional(),
  ATTACHMENT_MAX_BYTES: int(0, 1024 ** 3).optional(),
  NOTIFICATION_SENDERS: z
    .string()
    .transform((v) => list(v).map((s) => s.toLowerCase()))
    .pipe(z.array(z.string().regex(/^[^@\s]+@[^@\s]+$/, 'must list addresses such as noreply@flamecrm.ru')))
    .optional(),
  SMTP_MAX_MESSAGES_PER_IP_PER_MINUTE: int(0, 10_000_000).optional(),
  DNS_SERVERS: z
    .string()
    .transform(list)
    .pipe(z.array(z.string().refine(isDnsServer, 'must list IP addresses, optionally with :port ([::1]:53 for IPv6)')))
    .optional(),
  HTTP_HOST: z
    .string()
    .trim()
    .refine((v) => isIP(v) !== 0 || v === 'localhost', 'must be an IP address')
    .optional(),
  HTTP_PORT: int(0, 65535).optional(),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      message: 'must be one of fatal, error, warn, info, debug, trace, silent',
    })
    .optional(),
  DATABASE_POOL_SIZE: int(1, 200).optional(),
  HOOK_TIMEOUT_MS: int(100, 600_000).optional(),
  SMTP_SOCKET_TIMEOUT_MS: int(1000, 3_600_000).optional(),
  SMTP_GREETING_DELAY_MS: int(0, 30_000).optional(),
  SMTP_MAX_SESSION_MS: int(1000, 86_400_000).optional(),
  SMTP_MAX_BUFFERED_BYTES: int(1024 * 1024, 64 * 1024 ** 3).optional(),
  PROXY_PROTOCOL: bool.optional(),
  TLS_CERT_FILE: z.string().trim().min(1).optional(),
  TLS_KEY_FILE: z.string().trim().min(1).optional(),
});

function isDnsServer(value: string): boolean {
  const v6 = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(value);
  if (v6) return isIP(v6[1] ?? '') === 6 && (!v6[2] || Number(v6[2]) <= 65535);
  if (isIP(value)) return true;
  const v4 = /^([\d.]+):(\d{1,5})$/.exec(value);
  return !!v4 && isIP(v4[1] ?? '') === 4 && Number(v4[2]) <= 65535;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Reads the environment once. Empty strings count as unset, as in most shells' `FOO= cmd`. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const input: Record<string, string> = {};
  for (const name of Object.keys(VARIABLES)) {
    const value = env[name];
    if (value !== undefined && value.trim() !== '') input[name] = value;
  }
  const parsed = schema.safeParse(input);
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0] ?? '?');
      problems.push(`${name}: ${issue.message} (got ${JSON.stringify(input[name] ?? '')})`);
    }
    throw new ConfigError(problems);
  }
  const v = parsed.data;
  const profile: Profile = v.DATABASE_URL ? 'production' : 'local';
  const local = profile === 'local';

  if (!local && !v.MAIL_DOMAINS)
    problems.push(
      'MAIL_DOMAINS: must be set in the production profile (DATABASE_URL is set), e.g. MAIL_DOMAINS=flamecrm.ru',
    );
  if (!!v.TLS_CERT_FILE !== !!v.TLS_KEY_FILE)
    problems.push(
      `${v.TLS_CERT_FILE ? 'TLS_KEY_FILE' : 'TLS_CERT_FILE'}: must be set together with ${v.TLS_CERT_FILE ? 'TLS_CERT_FILE' : 'TLS_KEY_FILE'}`,
    );
  if (v.REPLY_ADDRESS_SECRET_PREVIOUS && !v.REPLY_ADDRESS_SECRET)
    problems.push(
      'REPLY_ADDRESS_SECRET_PREVIOUS: set REPLY_ADDRESS_SECRET too (the new secret); the previous one only keeps old addresses working',
    );
  if (v.REPLY_ADDRESS_UNSIGNED && !v.REPLY_ADDRESS_SECRET)
    problems.push('REPLY_ADDRESS_UNSIGNED: only means something with REPLY_ADDRESS_SECRET set');
  if (v.SMTP_MAX_BUFFERED_BYTES !== undefined && v.SMTP_MAX_BUFFERED_BYTES < (v.MAX_MESSAGE_BYTES ?? 25 * 1024 * 1024))
    problems.push(
      'SMTP_MAX_BUFFERED_BYTES: must be at least MAX_MESSAGE_BYTES, or no message of the largest size could ever be taken',
    );
  if (problems.length) throw new ConfigError(problems);

  const smtpHost = v.SMTP_HOST ?? (local ? '127.0.0.1' : '0.0.0.0');
  const config: Config = {
    profile,
    databaseUrl: v.DATABASE_URL ?? null,
    dataDir: path.resolve(v.DATA_DIR ?? 'data'),
    smtpHost,
    smtpPort: v.SMTP_PORT ?? (local ? 2525 : 25),
    smtpHostname: v.SMTP_HOSTNAME ?? os.hostname(),
    mailDomains: v.MAIL_DOMAINS ?? ['flamecrm.ru'],
    supportLocalPart: v.SUPPORT_LOCAL_PART ?? 'support',
    maxMessageBytes: v.MAX_MESSAGE_BYTES ?? 25 * 1024 * 1024,
    maxRecipients: v.SMTP_MAX_RECIPIENTS ?? 50,
    maxClients: v.SMTP_MAX_CLIENTS ?? 1000,
    authPolicy: v.AUTH_POLICY ?? (local ? 'monitor' : 'enforce'),
    staffSenders: v.STAFF_SENDERS ?? [],
    dnsServers: v.DNS_SERVERS ?? [],
    dnsTimeoutMs: v.DNS_TIMEOUT_MS ?? 2_000,
    dnsCacheSeconds: v.DNS_CACHE_SECONDS ?? 60,
    arcTrustedSealers: v.ARC_TRUSTED_SEALERS ?? [],
    replyAddressSecret: v.REPLY_ADDRESS_SECRET ?? null,
    replyAddressSecretPrevious: v.REPLY_ADDRESS_SECRET_PREVIOUS ?? null,
    replyAddressUnsigned: v.REPLY_ADDRESS_UNSIGNED ?? 'refuse',
    maxConnectionsPerIp: v.SMTP_MAX_CONNECTIONS_PER_IP ?? 50,
    ticketMaxMessagesPerHour: v.TICKET_MAX_MESSAGES_PER_HOUR ?? 60,
    attachmentMaxCount: v.ATTACHMENT_MAX_COUNT ?? 50,
    attachmentMaxBytes: v.ATTACHMENT_MAX_BYTES ?? 20 * 1024 * 1024,
    notificationSenders: v.NOTIFICATION_SENDERS ?? [],
    maxMessagesPerIpPerMinute: v.SMTP_MAX_MESSAGES_PER_IP_PER_MINUTE ?? 600,
    // metrics and health are for the operator: loopback unless asked otherwise
    httpHost: v.HTTP_HOST ?? '127.0.0.1',
    httpPort: v.HTTP_PORT ?? 8025,
    logLevel: v.LOG_LEVEL ?? 'info',
    databasePoolSize: v.DATABASE_POOL_SIZE ?? 20,
    hookTimeoutMs: v.HOOK_TIMEOUT_MS ?? 30_000,
    socketTimeoutMs: v.SMTP_SOCKET_TIMEOUT_MS ?? 300_000,
    greetingDelayMs: v.SMTP_GREETING_DELAY_MS ?? 0,
    maxSessionMs: v.SMTP_MAX_SESSION_MS ?? 600_000,
    maxBufferedBytes: v.SMTP_MAX_BUFFERED_BYTES ?? 512 * 1024 * 1024,
    proxyProtocol: v.PROXY_PROTOCOL ?? false,
    tlsCertFile: v.TLS_CERT_FILE ?? null,
    tlsKeyFile: v.TLS_KEY_FILE ?? null,
  };
  return Object.freeze(config);
}

/** Each variable's effective value and whether it came from the environment or the profile's default. */
export function effectiveSettings(
  config: Config,
  env: NodeJS.ProcessEnv = process.env,
): { name: VariableName; value: string; source: 'env' | 'default' }[] {
  const values: Record<VariableName, unknown> = {
    DATABASE_URL: config.databaseUrl
      ? maskUrl(config.databaseUrl)
      : `(embedded PostgreSQL in ${path.join(config.dataDir, 'pg')})`,
    DATA_DIR: config.dataDir,
    SMTP_HOST: config.smtpHost,
    SMTP_PORT: config.smtpPort,
    SMTP_HOSTNAME: config.smtpHostname,
    MAIL_DOMAINS: config.mailDomains.join(','),
    SUPPORT_LOCAL_PART: config.supportLocalPart,
    MAX_MESSAGE_BYTES: config.maxMessageBytes,
    SMTP_MAX_RECIPIENTS: config.maxRecipients,
    SMTP_MAX_CLIENTS: config.maxClients,
    AUTH_POLICY: config.authPolicy,
    STAFF_SENDERS: config.staffSenders.join(',') || '(none)',
    DNS_SERVERS: config.dnsServers.join(',') || '(system resolver)',
    DNS_TIMEOUT_MS: config.dnsTimeoutMs,
    DNS_CACHE_SECONDS: config.dnsCacheSeconds || '0 (off)',
    ARC_TRUSTED_SEALERS: config.arcTrustedSealers.join(',') || '(none)',
    REPLY_ADDRESS_SECRET: config.replyAddressSecret ? '(set)' : '(none: unsigned addresses)',
    REPLY_ADDRESS_SECRET_PREVIOUS: config.replyAddressSecretPrevious ? '(set)' : '(none)',
    REPLY_ADDRESS_UNSIGNED: config.replyAddressUnsigned,
    SMTP_MAX_CONNECTIONS_PER_IP: config.maxConnectionsPerIp || '(off)',
    TICKET_MAX_MESSAGES_PER_HOUR: config.ticketMaxMessagesPerHour || '(off)',
    ATTACHMENT_MAX_COUNT: config.attachmentMaxCount,
    ATTACHMENT_MAX_BYTES: config.attachmentMaxBytes,
    NOTIFICATION_SENDERS: config.notificationSenders.join(',') || '(support@ and noreply@ our domains)',
    SMTP_MAX_MESSAGES_PER_IP_PER_MINUTE: config.maxMessagesPerIpPerMinute || '(off)',
    HTTP_HOST: config.httpHost,
    HTTP_PORT: config.httpPort,
    LOG_LEVEL: config.logLevel,
    DATABASE_POOL_SIZE: config.databasePoolSize,
    HOOK_TIMEOUT_MS: config.hookTimeoutMs,
    SMTP_SOCKET_TIMEOUT_MS: config.socketTimeoutMs,
    SMTP_GREETING_DELAY_MS: config.greetingDelayMs,
    SMTP_MAX_SESSION_MS: config.maxSessionMs,
    SMTP_MAX_BUFFERED_BYTES: config.maxBufferedBytes,
    PROXY_PROTOCOL: config.proxyProtocol,
    TLS_CERT_FILE: config.tlsCertFile ?? '(none: STARTTLS off)',
    TLS_KEY_FILE: config.tlsKeyFile ?? '(none)',
  };
  return (Object.keys(VARIABLES) as VariableName[]).map((name) => ({
    name,
    value: String(values[name]),
    source: env[name] !== undefined && env[name]!.trim() !== '' ? 'env' : 'default',
  }));
}

function maskUrl(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}
