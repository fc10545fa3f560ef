// The only reader of process.env. Every setting is declared once below (variable, schema, the
// default of each profile, description); the Config type, validation, the banner, `serve --help`
// and the README table are all derived from that one list. A bad value stops the process with
// every problem listed in one round, each naming its variable, never echoing a secret.
import fs from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { DEFAULT_SCHEMA, schemaNameProblem } from './db/schema.js';
import { PROJECT_ROOT, TEMPLATES_DIR } from './paths.js';

export type Profile = 'local' | 'production';
export type AuthPolicy = 'enforce' | 'monitor';

/**
 * A default computed when the configuration is read: from the machine, or from the settings
 * declared before this one (`earlier`, by config key; a setting that failed is missing from it).
 */
type Computed<T> = { compute: (earlier: Readonly<Record<string, unknown>>) => T; text: string };
/** The production profile has no sensible default: the variable must be set. */
const REQUIRED = { required: true } as const;
type Default<T> = T | Computed<T> | typeof REQUIRED;

export interface Setting<T> {
  /** The property of Config that holds the value. */
  key: string;
  /** The section of the README table and of `serve --help`. */
  group: Group;
  describe: string;
  /** From the variable's text to the value; its messages say what is wrong, not what was given. */
  parse: z.ZodType<T, string>;
  local: Default<T>;
  production: Default<T>;
  /** How a value reads in the banner and the start-up log line; default: String(value). */
  show?: (value: T) => string;
  /**
   * How a value is written in the variable, where that is not String(value) (a duration: `1m`, not
   * 60000): the README and `serve --help` show the defaults so, and the parser takes them back.
   */
  write?: (value: T) => string;
  /** Never echoed: not in error messages, not in the banner. */
  secret?: boolean;
}

export const GROUPS = [
  'Database and files',
  'SMTP listener',
  'Connections and limits',
  'Message processing',
  'Sender authentication',
  'Reply addresses',
  'Tickets and attachments',
  'Notifications and the outbox',
  'Health, metrics and logs',
  'HTTP API',
  'CRM webhook',
] as const;
export type Group = (typeof GROUPS)[number];

function setting<P, const K extends string>(
  s: Omit<Setting<P>, 'key' | 'local' | 'production'> & {
    key: K;
    local: Default<NoInfer<P>>;
    production: Default<NoInfer<P>>;
  },
): Setting<P> & { key: K } {
  return s;
}

/** A setting that may stay unset in both profiles: its value is then null; `unset` says what that means. */
function optional<P, const K extends string>(
  s: Omit<Setting<P | null>, 'key' | 'local' | 'production' | 'parse'> & {
    key: K;
    parse: z.ZodType<P, string>;
    unset?: string;
  },
): Setting<P | null> & { key: K } {
  const { unset, ...rest } = s;
  const d = unset ? { compute: () => null, text: unset } : null;
  return { ...rest, local: d, production: d };
}

// ---- value schemas -------------------------------------------------------------------------

const list = (value: string): string[] =>
  value
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

const text = z.string().trim().min(1);
/** A bearer token (API_TOKEN, METRICS_TOKEN). */
const bearerToken = z
  .string()
  .trim()
  .min(32, 'must be at least 32 characters (ticket-mx api-token create makes one)')
  // the bearer token is one run of non-space characters, and Node reads header bytes as latin1:
  // a token with a space or a non-ASCII character could never authenticate
  .regex(
    /^[\x21-\x7e]*$/,
    'must be printable ASCII without spaces, or no request could present it (ticket-mx api-token create makes one)',
  );

const ip = z
  .string()
  .trim()
  .refine((v) => isIP(v) !== 0 || v === 'localhost', 'must be an IP address');
const oneOf = <const T extends string>(values: readonly [T, ...T[]]) =>
  z
    .string()
    .trim()
    .pipe(z.enum(values, { message: `must be ${values.slice(0, -1).join(', ')} or ${values.at(-1)}` }));

const domainRe = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const localPartRe = /^[a-z0-9!#$%&'*/=?^_`{|}~.-]{1,64}$/;
const lowerList = (item: z.ZodType<string, string>) =>
  z
    .string()
    .transform((v) => list(v).map((s) => s.toLowerCase()))
    .pipe(z.array(item));

function isDnsServer(value: string): boolean {
  const v6 = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(value);
  if (v6) return isIP(v6[1] ?? '') === 6 && (!v6[2] || Number(v6[2]) <= 65535);
  if (isIP(value)) return true;
  const v4 = /^([\d.]+):(\d{1,5})$/.exec(value);
  return !!v4 && isIP(v4[1] ?? '') === 4 && Number(v4[2]) <= 65535;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** `500ms`, `30s`, `15m`, `36h`, `2d` → milliseconds, within [min, max]. */
const duration = (min: number, max: number) =>
  z
    .string()
    .trim()
    .toLowerCase()
    .regex(/^\d+(ms|s|m|h|d)$/, 'must be a duration such as 30s, 15m, 12h or 2d')
    .transform((v) => {
      const [, n, unit] = /^(\d+)(ms|s|m|h|d)$/.exec(v)!;
      return Number(n) * DURATION_UNITS[unit!]!;
    })
    .pipe(
      z
        .number()
        .min(min, `must be at least ${showDuration(min)}`)
        .max(max, `must be at most ${showDuration(max)}`),
    );

/** A duration as `duration` reads it, or `0`/`off`: 0, what it keeps is kept for ever. */
const keepDuration = (min: number, max: number) => {
  const within = duration(min, max);
  return z.string().transform((v, ctx) => {
    if (/^\s*(0|off)\s*$/i.test(v)) return 0;
    const parsed = within.safeParse(v);
    if (parsed.success) return parsed.data;
    const out = /^\s*\d+(ms|s|m|h|d)\s*$/i.test(v);
    ctx.addIssue({
      code: 'custom',
      message: out
        ? `${parsed.error.issues[0]?.message ?? 'is not valid'}, or 0 or off to keep every row`
        : 'must be a duration such as 12h or 30d, or 0 or off',
    });
    return z.NEVER;
  });
};

/** Milliseconds as the largest whole unit: 172800000 → 2d. */
export function showDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const)
    if (ms >= DURATION_UNITS[unit]! && ms % DURATION_UNITS[unit]! === 0) return `${ms / DURATION_UNITS[unit]!}${unit}`;
  return `${ms}ms`;
}

const addressRe = /^[^@\s<>,;"]+@[^@\s<>,;"]+\.[^@\s<>,;"]+$/;

/** smtp:// or smtps://, a host, optionally user:password@ (percent-encoded) and a port. */
function relayUrlProblem(value: string): string | null {
  const shape = 'must be an smtp:// or smtps:// URL with a host';
  if (!URL.canParse(value)) return shape;
  const u = new URL(value);
  if (!(u.protocol === 'smtp:' || u.protocol === 'smtps:') || !u.hostname || !(u.pathname === '' || u.pathname === '/'))
    return shape;
  try {
    // src/outbox/mail.ts decodes them for the login
    decodeURIComponent(u.username);
    decodeURIComponent(u.password);
  } catch {
    return 'has a user or password that is not percent-encoded (write % as %25, e.g. encodeURIComponent)';
  }
  return null;
}

/** What is wrong with a path that must be a directory, or null. */
function directoryProblem(dir: string): string | null {
  try {
    return fs.statSync(dir).isDirectory() ? null : 'is not a directory';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT'
      ? 'does not exist'
      : `cannot be read (${(err as NodeJS.ErrnoException).code})`;
  }
}

/** The template files of one language, as the built-in templates/ has them. */
const templateFiles = (language: string): string[] =>
  fs
    .readdirSync(path.join(TEMPLATES_DIR, language))
    .filter((f) => /\.(txt|html)$/.test(f))
    .sort();

const MiB = 1024 * 1024;
/** 10 s, or a third of HOOK_TIMEOUT_MS when that is less: waiting and working both end before the deadline. */
const THIRD_OF_DEADLINE: Computed<number> = {
  compute: (c) => Math.min(10_000, Math.floor(((c.hookTimeoutMs as number | undefined) ?? 30_000) / 3)),
  text: '10000, or a third of HOOK_TIMEOUT_MS if less',
};
/**
 * 7.5 s, or a quarter of HOOK_TIMEOUT_MS, or what the deadline leaves after the wait for a turn, the
 * CPU and a second, when that is less: it ends before the deadline whatever those two are set to.
 */
const DNS_SHARE_OF_DEADLINE: Computed<number> = {
  compute: (c) => {
    const hook = (c.hookTimeoutMs as number | undefined) ?? 30_000;
    const rest =
      hook -
      ((c.pipelineQueueTimeoutMs as number | undefined) ?? 10_000) -
      ((c.pipelineCpuLimitMs as number | undefined) ?? 10_000) -
      1_000;
    return Math.max(100, Math.min(7_500, Math.floor(hook / 4), rest));
  },
  text: '7500, less if HOOK_TIMEOUT_MS leaves less',
};
const none = (what: string) => (v: string | null) => v ?? `(none: ${what})`;
const joined = (empty: string) => (v: string[]) => v.join(',') || empty;
const orOff = (v: number) => (v ? String(v) : '0 (off)');
/**
 * One worker per core but one, which the main thread (SMTP, the commits) and PostgreSQL share:
 * on the 2-core machine one worker took 131 msg/s and two 102 (README, Benchmark).
 */
const defaultWorkers = () => Math.max(1, os.availableParallelism() - 1);

// ---- the settings --------------------------------------------------------------------------

export const SETTINGS = {
  DATABASE_URL: optional({
    key: 'databaseUrl',
    group: 'Database and files',
    describe: 'PostgreSQL URL. Unset: the local profile with an embedded PostgreSQL under `DATA_DIR`.',
    unset: '(embedded)',
    parse: z
      .string()
      .trim()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL'),
    secret: true,
  }),
  DATABASE_SCHEMA: setting({
    key: 'databaseSchema',
    group: 'Database and files',
    describe:
      "Schema that holds all of ticket-mx (tables, functions, migration history), beside the CRM's tables; " +
      'every connection sets `search_path` to it. Created by the first `migrate` unless it exists.',
    parse: text.superRefine((v, ctx) => {
      const problem = schemaNameProblem(v);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
    local: DEFAULT_SCHEMA,
    production: DEFAULT_SCHEMA,
  }),
  DATA_DIR: setting({
    key: 'dataDir',
    group: 'Database and files',
    describe:
      'Directory for the embedded PostgreSQL (`pg/`, its log in `pg/log/`, credentials). The default is `data/` in ' +
      'the ticket-mx directory, wherever the command is run from; a value you set is relative to the current directory.',
    parse: text.transform((v) => path.resolve(v)),
    // Not ./data of the current directory: `npx ticket-mx ticket show` run from a subdirectory
    // would find no server there and start an empty second database beside the real one.
    local: { compute: () => path.join(PROJECT_ROOT, 'data'), text: 'data/ in the ticket-mx directory' },
    production: { compute: () => path.join(PROJECT_ROOT, 'data'), text: 'data/ in the ticket-mx directory' },
  }),
  DATABASE_POOL_SIZE: setting({
    key: 'databasePoolSize',
    group: 'Database and files',
    describe: 'PostgreSQL connections per process.',
    parse: int(1, 200),
    local: 20,
    production: 20,
  }),
  DATABASE_COMMIT_MAX_MESSAGES: setting({
    key: 'databaseCommitMaxMessages',
    group: 'Database and files',
    describe:
      'Messages that may share one transaction and one commit when they are ready at the same moment (group commit); ' +
      'each is answered after that commit. `1` commits each message alone.',
    parse: int(1, 1000),
    local: 32,
    production: 32,
  }),
  SMTP_HOST: setting({
    key: 'smtpHost',
    group: 'SMTP listener',
    describe: 'Address the SMTP server listens on.',
    parse: ip,
    local: '127.0.0.1',
    production: '0.0.0.0',
  }),
  SMTP_PORT: setting({
    key: 'smtpPort',
    group: 'SMTP listener',
    describe: 'SMTP port (`0` picks a free port). Port 25 needs root or `CAP_NET_BIND_SERVICE`.',
    parse: int(0, 65535),
    local: 2525,
    production: 25,
  }),
  SMTP_HOSTNAME: setting({
    key: 'smtpHostname',
    group: 'SMTP listener',
    describe: 'Name in the 220 greeting and the EHLO reply.',
    parse: z.string().trim().toLowerCase().regex(domainRe, 'must be a host name'),
    local: { compute: () => os.hostname(), text: 'the host name' },
    production: { compute: () => os.hostname(), text: 'the host name' },
  }),
  MAIL_DOMAINS: setting({
    key: 'mailDomains',
    group: 'SMTP listener',
    describe: 'Comma-separated domains we are the MX for; anything else is relaying and refused.',
    parse: lowerList(z.string().regex(domainRe, 'must list domain names such as flamecrm.ru')).pipe(
      z.array(z.string()).min(1, 'must name at least one domain'),
    ),
    local: ['flamecrm.ru'],
    production: REQUIRED,
    show: joined(''),
  }),
  SUPPORT_LOCAL_PART: setting({
    key: 'supportLocalPart',
    group: 'SMTP listener',
    describe: 'Local part of reply addresses (`support+TKT-1@…`).',
    parse: z
      .string()
      .trim()
      .toLowerCase()
      .regex(localPartRe, 'must be a plain local part such as support')
      .refine((v) => !v.includes('+'), 'must not contain +'),
    local: 'support',
    production: 'support',
  }),
  TLS_CERT_FILE: optional({
    key: 'tlsCertFile',
    group: 'SMTP listener',
    describe: 'PEM certificate for STARTTLS. Unset: STARTTLS is not offered (never a built-in key), with a warning.',
    parse: text,
    show: none('STARTTLS off'),
  }),
  TLS_KEY_FILE: optional({
    key: 'tlsKeyFile',
    group: 'SMTP listener',
    describe: 'PEM private key for STARTTLS; set together with `TLS_CERT_FILE`.',
    parse: text,
    show: none('STARTTLS off'),
  }),
  PROXY_PROTOCOL: setting({
    key: 'proxyProtocol',
    group: 'SMTP listener',
    describe: 'Expect a PROXY protocol header (behind a TCP balancer): `true` or `false`.',
    parse: bool,
    local: false,
    production: false,
  }),
  SMTP_GREETING_DELAY_MS: setting({
    key: 'greetingDelayMs',
    group: 'SMTP listener',
    describe: 'Pause before the 220 greeting; a client that talks during it gets `421` (early-talker check).',
    parse: int(0, 30_000),
    local: 0,
    production: 0,
  }),
  MAX_MESSAGE_BYTES: setting({
    key: 'maxMessageBytes',
    group: 'Connections and limits',
    describe: 'Largest message accepted, advertised as `SIZE`; larger gets `552 5.3.4`.',
    parse: int(1024, 1024 ** 3),
    local: 25 * MiB,
    production: 25 * MiB,
  }),
  SMTP_MAX_RECIPIENTS: setting({
    key: 'maxRecipients',
    group: 'Connections and limits',
    describe: 'Recipients per transaction; more get `452 4.5.3`.',
    parse: int(1, 1000),
    local: 50,
    production: 50,
  }),
  SMTP_MAX_CLIENTS: setting({
    key: 'maxClients',
    group: 'Connections and limits',
    describe:
      'Concurrent SMTP connections; more get `421`. An idle connection costs about 12 KB (README), so the ' +
      'default is far from the memory limit; the file descriptor limit must allow it.',
    parse: int(1, 1_000_000),
    local: 10_000,
    production: 10_000,
  }),
  SMTP_MAX_CONNECTIONS_PER_NETWORK: setting({
    key: 'maxConnectionsPerNetwork',
    group: 'Connections and limits',
    describe: 'Concurrent connections from one network (IPv4 /24, IPv6 /48); more get `421 4.7.0`. `0` turns it off.',
    parse: int(0, 1_000_000),
    local: 200,
    production: 200,
    show: orOff,
  }),
  SMTP_RESERVED_CLIENTS: setting({
    key: 'reservedClients',
    group: 'Connections and limits',
    describe:
      'The last this many of `SMTP_MAX_CLIENTS` go only to networks with no connection open (`421 4.7.0` for the ' +
      'others); past that point the server counts as nearly full.',
    parse: int(0, 1_000_000),
    local: 1000,
    production: 1000,
  }),
  SMTP_STRESS_SOCKET_TIMEOUT_MS: setting({
    key: 'stressSocketTimeoutMs',
    group: 'Connections and limits',
    describe:
      'Idle time before a silent client is disconnected while the server is nearly full (as Postfix does under stress), ' +
      'for every connection open then.',
    parse: int(1000, 3_600_000),
    local: 10_000,
    production: 10_000,
  }),
  SMTP_SOFT_ERROR_LIMIT: setting({
    key: 'softErrorLimit',
    group: 'Connections and limits',
    describe:
      'Refused commands (5xx, 450, 452) in one session after which every reply waits `SMTP_ERROR_DELAY_MS`. `0` turns it off.',
    parse: int(0, 100_000),
    local: 10,
    production: 10,
    show: orOff,
  }),
  SMTP_HARD_ERROR_LIMIT: setting({
    key: 'hardErrorLimit',
    group: 'Connections and limits',
    describe: 'Refused commands in one session after which it is closed with `421 4.7.0`. `0` turns it off.',
    parse: int(0, 100_000),
    local: 20,
    production: 20,
    show: orOff,
  }),
  SMTP_ERROR_DELAY_MS: setting({
    key: 'errorDelayMs',
    group: 'Connections and limits',
    describe: 'The wait before each reply once a session is past `SMTP_SOFT_ERROR_LIMIT`.',
    parse: int(0, 60_000),
    local: 1000,
    production: 1000,
  }),
  SMTP_MAX_CONNECTIONS_PER_IP: setting({
    key: 'maxConnectionsPerIp',
    group: 'Connections and limits',
    describe: 'Concurrent connections from one client IP; more get `421 4.7.0`. `0` turns the limit off.',
    parse: int(0, 100_000),
    local: 50,
    production: 50,
    show: orOff,
  }),
  SMTP_MAX_MESSAGES_PER_IP_PER_MINUTE: setting({
    key: 'maxMessagesPerIpPerMinute',
    group: 'Connections and limits',
    describe: 'Transactions one client IP may start per minute; more get `450 4.7.1` at MAIL FROM. `0` turns it off.',
    parse: int(0, 10_000_000),
    local: 600,
    production: 600,
    show: orOff,
  }),
  HOOK_TIMEOUT_MS: setting({
    key: 'hookTimeoutMs',
    group: 'Connections and limits',
    describe: 'Deadline for one SMTP decision (RCPT lookup, DATA after the final dot); past it we answer `451 4.3.0`.',
    parse: int(100, 600_000),
    local: 30_000,
    production: 30_000,
  }),
  SMTP_SOCKET_TIMEOUT_MS: setting({
    key: 'socketTimeoutMs',
    group: 'Connections and limits',
    describe: 'Idle time before a silent client is disconnected.',
    parse: int(1000, 3_600_000),
    local: 300_000,
    production: 300_000,
  }),
  SMTP_MAX_SESSION_MS: setting({
    key: 'maxSessionMs',
    group: 'Connections and limits',
    describe: 'Longest an SMTP connection may stay open, however busy; then `421 4.4.2` and the connection is closed.',
    parse: int(1000, 86_400_000),
    local: 600_000,
    production: 600_000,
  }),
  SMTP_MAX_BUFFERED_BYTES: setting({
    key: 'maxBufferedBytes',
    group: 'Connections and limits',
    describe:
      'Message bytes all connections together may hold in memory; a message that would pass it gets `421 4.3.1` ' +
      'at once and its session is closed. One client (IPv4 address, IPv6 /64) may hold a quarter of it, one ' +
      'network (/24, /48) half, and the last quarter is kept for networks holding nothing; past a share ' +
      '`421 4.7.1`. At least `MAX_MESSAGE_BYTES`.',
    parse: int(MiB, 64 * 1024 ** 3),
    local: 512 * MiB,
    production: 512 * MiB,
  }),
  MAX_HEADER_BYTES: setting({
    key: 'maxHeaderBytes',
    group: 'Message processing',
    describe: 'Largest header block of a message; larger gets `550 5.6.0`, before any parser sees it.',
    parse: int(1024, 1024 * 1024),
    local: 256 * 1024,
    production: 256 * 1024,
  }),
  MAX_HEADER_LINES: setting({
    key: 'maxHeaderLines',
    group: 'Message processing',
    describe:
      'Most physical lines (folded continuations included) in a header block; more get `550 5.6.0`. ' +
      "mailauth's header parser grows faster than the square of a field's folded lines.",
    parse: int(10, 100_000),
    local: 1000,
    production: 1000,
  }),
  PIPELINE_WORKERS: setting({
    key: 'pipelineWorkers',
    group: 'Message processing',
    describe: 'Worker threads for the CPU-bound steps (MIME parsing, DKIM/ARC, HTML, reply text).',
    parse: int(1, 256),
    local: { compute: () => defaultWorkers(), text: 'the number of cores − 1 (at least 1)' },
    production: { compute: () => defaultWorkers(), text: 'the number of cores − 1 (at least 1)' },
  }),
  PIPELINE_INLINE_MAX_BYTES: setting({
    key: 'pipelineInlineMaxBytes',
    group: 'Message processing',
    describe:
      'Messages up to this size, of at most 2,000 lines, 64 MIME boundaries, 8 DKIM/ARC signatures, 4,000 `<` (HTML ' +
      'tags), 8 KiB of address fields and 100 body lines ending with a colon (tags counted again once a base64 or quoted-printable ' +
      'body is decoded; lines and colons also on the lines the reply text reads), are processed on the main thread, without the hand-off to a worker (measured: ' +
      'at most tens of milliseconds of CPU, whatever their bytes); larger ones on the workers. `0` sends every message ' +
      'to the workers.',
    parse: int(0, 1024 * MiB),
    local: 64 * 1024,
    production: 64 * 1024,
  }),
  PIPELINE_MAX_MESSAGES: setting({
    key: 'pipelineMaxMessages',
    group: 'Message processing',
    describe: 'Messages processed at once (from the end of DATA to the commit); the others wait their turn.',
    // the worker pool's shared clock board has 4096 slots (src/pipeline/pool.ts)
    parse: int(1, 4096),
    local: 16,
    production: 16,
  }),
  PIPELINE_MAX_MEMORY_BYTES: setting({
    key: 'pipelineMaxMemoryBytes',
    group: 'Message processing',
    describe:
      'What the messages processed at once may cost together, each charged its measured peak: 256 KB + 16 × its size, ' +
      'at most 34 MB + 3.5 × its size (1/5/25 MB: 16/52/122 MB), and 4 more per control character; the others wait their turn.',
    parse: int(16 * MiB, 64 * 1024 ** 3),
    local: 1024 * MiB,
    production: 1024 * MiB,
  }),
  PIPELINE_QUEUE_TIMEOUT_MS: setting({
    key: 'pipelineQueueTimeoutMs',
    group: 'Message processing',
    describe:
      'Longest a message waits for its turn (a place in the budget, then a worker thread); then `451 4.3.1` (our load: ' +
      'the sender retries). Less than `HOOK_TIMEOUT_MS`.',
    parse: int(10, 600_000),
    local: THIRD_OF_DEADLINE,
    production: THIRD_OF_DEADLINE,
  }),
  PIPELINE_CPU_LIMIT_MS: setting({
    key: 'pipelineCpuLimitMs',
    group: 'Message processing',
    describe:
      "CPU time one message may take in its worker (the thread's own time on Linux); past it the worker is stopped " +
      'and the message gets `550 5.6.0`.',
    parse: int(100, 600_000),
    local: THIRD_OF_DEADLINE,
    production: THIRD_OF_DEADLINE,
  }),
  UNROUTED_MAX_MESSAGE_BYTES: setting({
    key: 'unroutedMaxMessageBytes',
    group: 'Message processing',
    describe:
      'Largest message stored as unrouted mail (postmaster@/abuse@, auto-replies, bounces: no authentication); ' +
      'larger gets `552 5.3.4`.',
    parse: int(1024, 1024 ** 3),
    local: 2 * MiB,
    production: 2 * MiB,
  }),
  UNROUTED_MAX_BYTES_PER_NETWORK_PER_DAY: setting({
    key: 'unroutedMaxBytesPerNetworkPerDay',
    group: 'Message processing',
    describe:
      'Bytes of unrouted mail one client network (IPv4 /24, IPv6 /48) may have stored per day, counted in the database ' +
      'for all instances; more get `450 4.7.1`. `0` turns it off.',
    parse: int(0, 1024 ** 4),
    local: 50 * MiB,
    production: 50 * MiB,
    show: orOff,
  }),
  UNROUTED_MAX_BYTES_PER_DAY: setting({
    key: 'unroutedMaxBytesPerDay',
    group: 'Message processing',
    describe:
      'Bytes of unrouted mail all client networks together may have stored per day (the per-network budget times ' +
      'many networks is no bound), counted in the database for all instances; more get `452 4.3.1` until the next ' +
      'day. `0` turns it off.',
    parse: int(0, 1024 ** 5),
    local: 1024 * MiB,
    production: 1024 * MiB,
    show: orOff,
  }),
  AUTH_POLICY: setting({
    key: 'authPolicy',
    group: 'Sender authentication',
    describe: '`enforce` refuses unauthenticated or unauthorised senders with 550; `monitor` accepts and records.',
    parse: oneOf<AuthPolicy>(['enforce', 'monitor']),
    local: 'monitor',
    production: 'enforce',
  }),
  STAFF_SENDERS: setting({
    key: 'staffSenders',
    group: 'Sender authentication',
    describe: 'Comma-separated staff addresses and `@domains` allowed to write to any ticket.',
    parse: lowerList(z.string().regex(/^([^@\s]+)?@[^@\s]+$/, 'must list addresses (a@b.ru) or domains (@b.ru)')),
    local: [],
    production: [],
    show: joined('(none)'),
  }),
  STAFF_DKIM_DOMAINS: setting({
    key: 'staffDkimDomains',
    group: 'Sender authentication',
    describe:
      'Comma-separated subdomains whose DKIM signature authenticates staff of their parent domain (staff mail signed as ' +
      '`d=mail.flamecrm.ru` for `@flamecrm.ru`). Otherwise staff need `d=` (or the MAIL FROM domain) equal to their ' +
      "domain: any other subdomain's key (a mailing service it is delegated to) is refused `550 5.7.22`.",
    parse: lowerList(z.string().regex(domainRe, 'must list domain names such as mail.flamecrm.ru')),
    local: [],
    production: [],
    show: joined('(none)'),
  }),
  AUTH_BIND_STAFF: setting({
    key: 'authBindStaff',
    group: 'Sender authentication',
    describe:
      "Staff mail that only a DKIM signature authenticates must name its ticket in a signed field (the ticket's address " +
      'in To or Cc, `[TKT-…]` in Subject, X-Ticket-ID, or a notification in In-Reply-To/References), else `550 5.7.1` ' +
      '(`AUTH_NOT_BOUND`): a genuine staff message sent again to another ticket is refused. `false` turns it off.',
    parse: bool,
    local: true,
    production: true,
  }),
  DNS_SERVERS: setting({
    key: 'dnsServers',
    group: 'Sender authentication',
    describe: 'Comma-separated DNS servers (`ip` or `ip:port`, `[::1]:53`) for SPF/DKIM/DMARC.',
    parse: z
      .string()
      .transform(list)
      .pipe(
        z.array(z.string().refine(isDnsServer, 'must list IP addresses, optionally with :port ([::1]:53 for IPv6)')),
      ),
    local: { compute: () => [], text: '(system)' },
    production: { compute: () => [], text: '(system)' },
    show: joined('(system resolver)'),
  }),
  DNS_TIMEOUT_MS: setting({
    key: 'dnsTimeoutMs',
    group: 'Sender authentication',
    describe:
      'Time for the first try of a DNS query; the second gets twice as long, so a lookup has 3× this per server ' +
      '(c-ares may send more tries within it). A lookup that still fails is a temporary error (`451 4.7.x`).',
    parse: int(50, 60_000),
    local: 2_000,
    production: 2_000,
  }),
  DNS_CACHE_SECONDS: setting({
    key: 'dnsCacheSeconds',
    group: 'Sender authentication',
    describe:
      'How long DNS answers (and NXDOMAIN/NODATA) are kept in memory; `0` keeps nothing. Temporary errors are never kept.',
    parse: int(0, 86_400),
    local: 60,
    production: 60,
    show: orOff,
  }),
  AUTH_DNS_BUDGET_MS: setting({
    key: 'authDnsBudgetMs',
    group: 'Sender authentication',
    describe:
      "Time after a message's final dot that its SPF, DKIM, ARC and DMARC lookups may still take (they run on the main " +
      'thread, SPF from the DATA command on, so no worker waits for DNS); a lookup still open then is a temporary ' +
      'error. With `PIPELINE_QUEUE_TIMEOUT_MS` and `PIPELINE_CPU_LIMIT_MS` less than `HOOK_TIMEOUT_MS`; by default ' +
      'a quarter of `HOOK_TIMEOUT_MS`, or what it leaves after those two and 1 s, if less than 7500.',
    parse: int(100, 600_000),
    local: DNS_SHARE_OF_DEADLINE,
    production: DNS_SHARE_OF_DEADLINE,
  }),
  ARC_TRUSTED_SEALERS: setting({
    key: 'arcTrustedSealers',
    group: 'Sender authentication',
    describe:
      'Comma-separated domains whose valid ARC seal vouches for forwarded mail (a mailing list or forwarding service).',
    parse: lowerList(z.string().regex(domainRe, 'must list domain names such as lists.example.org')),
    local: [],
    production: [],
    show: joined('(none)'),
  }),
  REPLY_ADDRESS_SECRET: optional({
    key: 'replyAddressSecret',
    group: 'Reply addresses',
    describe: 'Secret (16+ characters, e.g. `openssl rand -hex 32`) for signed reply addresses `support+TKT-1.<mac>@`.',
    parse: z.string().min(16, 'must be at least 16 characters (e.g. openssl rand -hex 32)'),
    secret: true,
  }),
  REPLY_ADDRESS_SECRET_PREVIOUS: optional({
    key: 'replyAddressSecretPrevious',
    group: 'Reply addresses',
    describe: 'The previous secret during a key rotation: addresses signed with it keep working.',
    parse: z.string().min(16, 'must be at least 16 characters'),
    secret: true,
  }),
  REPLY_ADDRESS_UNSIGNED: setting({
    key: 'replyAddressUnsigned',
    group: 'Reply addresses',
    describe:
      'With a secret set: `refuse` or `accept` unsigned addresses (`accept` only while migrating). ' +
      'Without a secret nothing is signed and it does not apply.',
    parse: oneOf(['refuse', 'accept']),
    local: 'refuse',
    production: 'refuse',
  }),
  TICKET_MAX_MESSAGES_PER_HOUR: setting({
    key: 'ticketMaxMessagesPerHour',
    group: 'Tickets and attachments',
    describe:
      'Messages one ticket accepts per hour from one author (a mail-loop breaker; strangers share one count); ' +
      'more from that author get `450 4.7.1`, others still get in. The other loop breaker ' +
      'comes with it: the third message within an hour with the same text (80 characters or more, digits and ' +
      'spacing aside, no attachment) from one author to one ticket is recorded as a loop, not posted. `0` turns both off.',
    parse: int(0, 1_000_000),
    local: 60,
    production: 60,
    show: orOff,
  }),
  TICKET_CLOSED_STATUSES: setting({
    key: 'ticketClosedStatuses',
    group: 'Tickets and attachments',
    describe:
      'Comma-separated ticket statuses that take no more mail (compared without case): a reply to such a ticket ' +
      "gets `550 5.1.1`. `ticket close` sets the first. With a CRM view, list the CRM's own values (`CLOSED`).",
    parse: z
      .string()
      .transform(list)
      .pipe(z.array(z.string().max(100, 'must list statuses such as closed')).min(1, 'must name at least one status')),
    local: ['closed'],
    production: ['closed'],
    show: joined(''),
  }),
  ATTACHMENT_MAX_COUNT: setting({
    key: 'attachmentMaxCount',
    group: 'Tickets and attachments',
    describe: 'Attachments per message; more get `552 5.3.4`.',
    parse: int(0, 10_000),
    local: 50,
    production: 50,
  }),
  ATTACHMENT_MAX_BYTES: setting({
    key: 'attachmentMaxBytes',
    group: 'Tickets and attachments',
    describe: "Total decoded size of one message's attachments; more get `552 5.3.4`.",
    parse: int(0, 1024 ** 3),
    local: 20 * MiB,
    production: 20 * MiB,
  }),
  NOTIFICATION_SENDERS: setting({
    key: 'notificationSenders',
    group: 'Tickets and attachments',
    describe:
      'Comma-separated From addresses of our own notifications, recognised if they come back ' +
      '(`support@` and `noreply@` our domains always are).',
    parse: lowerList(z.string().regex(/^[^@\s]+@[^@\s]+$/, 'must list addresses such as noreply@flamecrm.ru')),
    local: [],
    production: [],
    show: joined('(support@ and noreply@ our domains)'),
  }),
  NOTIFY_STAFF_TO: setting({
    key: 'notifyStaffTo',
    group: 'Notifications and the outbox',
    describe:
      'Comma-separated staff addresses that get "ticket created" and every reply of a requester, or of a ' +
      'third party accepted under `AUTH_POLICY=monitor` (one mail each, `Reply-To` the ticket address). ' +
      'Empty: staff get no notifications.',
    parse: lowerList(z.string().regex(addressRe, 'must list addresses such as info@flamecrm.ru')),
    local: ['info@flamecrm.ru'],
    production: [],
    show: joined('(none: staff get no notifications)'),
  }),
  NOTIFY_REQUESTER: setting({
    key: 'notifyRequester',
    group: 'Notifications and the outbox',
    describe:
      "Mail each authenticated staff reply to the ticket's requester (`true`), or leave that to the CRM (`false`).",
    parse: bool,
    local: true,
    production: true,
  }),
  NOTIFY_LANGUAGE: setting({
    key: 'notifyLanguage',
    group: 'Notifications and the outbox',
    describe: 'Language of the notification templates: `ru` or `en`.',
    parse: oneOf(['ru', 'en']),
    local: 'ru',
    production: 'ru',
  }),
  TEMPLATES_DIR: optional({
    key: 'templatesDir',
    group: 'Notifications and the outbox',
    describe:
      'Directory with your own notification templates (`<language>/<event>.txt` and `.html`, as in `templates/`); ' +
      'a template it lacks is taken from `templates/`. It must exist and hold at least one template of `NOTIFY_LANGUAGE`.',
    parse: text
      .transform((v) => path.resolve(v))
      .superRefine((v, ctx) => {
        const problem = directoryProblem(v);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
    unset: '(built-in templates/)',
    show: none('the built-in templates/'),
  }),
  OUTBOUND_SMTP_URL: optional({
    key: 'outboundSmtpUrl',
    group: 'Notifications and the outbox',
    describe:
      'Relay for notifications: `smtp://user:password@host:587` (STARTTLS when offered) or `smtps://…:465`. ' +
      'Unset: each notification is written to `DATA_DIR/outbox/<id>.eml` and nothing leaves the machine.',
    parse: z
      .string()
      .trim()
      .superRefine((v, ctx) => {
        const problem = relayUrlProblem(v);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
    secret: true,
    show: (v) => (v ? maskUrl(v) : '(none: written to DATA_DIR/outbox/, nothing leaves the machine)'),
    unset: '(none: .eml files)',
  }),
  OUTBOUND_SMTP_TLS_VERIFY: setting({
    key: 'outboundSmtpTlsVerify',
    group: 'Notifications and the outbox',
    describe: "Verify the relay's TLS certificate (`true`); `false` only for a relay with a self-signed certificate.",
    parse: bool,
    local: true,
    production: true,
  }),
  DKIM_PRIVATE_KEY_FILE: optional({
    key: 'dkimPrivateKeyFile',
    group: 'Notifications and the outbox',
    describe:
      'PEM private key (RSA, 2048 bits advised) to DKIM-sign notifications with `d=` the first of `MAIL_DOMAINS`; ' +
      'set together with `DKIM_SELECTOR`.',
    parse: text,
    show: none('not signed'),
  }),
  DKIM_SELECTOR: optional({
    key: 'dkimSelector',
    group: 'Notifications and the outbox',
    describe: 'DKIM selector (`s=`): the key is published at `<selector>._domainkey.<first MAIL_DOMAINS>`.',
    parse: z
      .string()
      .trim()
      .toLowerCase()
      .regex(/^[a-z0-9]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?)*$/, 'must be a DNS label'),
    show: none('not signed'),
  }),
  OUTBOX_SEND_IN_SERVE: setting({
    key: 'outboxSendInServe',
    group: 'Notifications and the outbox',
    describe:
      '`serve` runs the sender (`true`); `false` when a separate `ticket-mx outbox run` delivers. ' +
      'Any number of senders may run against one database.',
    parse: bool,
    local: true,
    production: true,
  }),
  OUTBOX_CONCURRENCY: setting({
    key: 'outboxConcurrency',
    group: 'Notifications and the outbox',
    describe:
      'Deliveries of each kind (mail, CRM webhook) one sender has in flight at once, in slots of its own (and pooled ' +
      'connections to the relay); after a timeout a kind goes one at a time until a delivery goes through.',
    parse: int(1, 100),
    local: 4,
    production: 4,
  }),
  OUTBOX_SEND_TIMEOUT: setting({
    key: 'outboxSendTimeoutMs',
    group: 'Notifications and the outbox',
    describe:
      'Longest one delivery attempt may take; past it the attempt is retried. A sender that dies mid-send ' +
      'leaves its row to another sender after twice this.',
    parse: duration(1000, 3_600_000),
    local: 60_000,
    production: 60_000,
    show: showDuration,
    write: showDuration,
  }),
  OUTBOX_RETRY_DELAY: setting({
    key: 'outboxRetryDelayMs',
    group: 'Notifications and the outbox',
    describe: 'Wait before the first retry of a 4xx or a connection error; it doubles with every attempt, up to 1h.',
    parse: duration(100, 86_400_000),
    local: 60_000,
    production: 60_000,
    show: showDuration,
    write: showDuration,
  }),
  OUTBOX_MAX_AGE: setting({
    key: 'outboxMaxAgeMs',
    group: 'Notifications and the outbox',
    describe: 'How long a delivery is retried before it fails for good (`30m`, `12h`, `2d`…).',
    parse: duration(1000, 365 * 86_400_000),
    local: 2 * 86_400_000,
    production: 2 * 86_400_000,
    show: showDuration,
    write: showDuration,
  }),
  OUTBOX_KEEP_SENT: setting({
    key: 'outboxKeepSentMs',
    group: 'Notifications and the outbox',
    describe:
      'How long a finished outbox row (sent, failed or bounced) is kept after its last attempt before `serve` ' +
      '(or `ticket-mx outbox run`) deletes it: `30d` by default, `12h`, `90d`…, at least `1h`; `0` or `off` ' +
      'keeps every row.',
    parse: keepDuration(3_600_000, 3650 * 86_400_000),
    local: 30 * 86_400_000,
    production: 30 * 86_400_000,
    show: (v) => (v ? showDuration(v) : '0 (off: kept for ever)'),
    write: (v) => (v ? showDuration(v) : '0'),
  }),
  HTTP_HOST: setting({
    key: 'httpHost',
    group: 'Health, metrics and logs',
    describe:
      'Address for `/healthz`, `/metrics` and the HTTP API (set `0.0.0.0` for a Prometheus, with `METRICS_TOKEN`, ' +
      'or a CRM on another host; put TLS in front of the API then).',
    parse: ip,
    // metrics and health are for the operator: loopback unless asked otherwise
    local: '127.0.0.1',
    production: '127.0.0.1',
  }),
  HTTP_PORT: setting({
    key: 'httpPort',
    group: 'Health, metrics and logs',
    describe: 'Port for `/healthz`, `/metrics` and the HTTP API `/v1/…` (`0` picks a free port).',
    parse: int(0, 65535),
    local: 8025,
    production: 8025,
  }),
  METRICS_TOKEN: optional({
    key: 'metricsToken',
    group: 'Health, metrics and logs',
    describe:
      '`GET /metrics` asks for `Authorization: Bearer <METRICS_TOKEN>` (Prometheus: `authorization: { ' +
      'credentials_file: … }` in the scrape config); a request without it gets `401`. Unset: `/metrics` answers ' +
      'whoever reaches `HTTP_HOST`. `/healthz` never asks. `ticket-mx api-token create` makes one.',
    unset: '(no token)',
    parse: bearerToken,
    secret: true,
  }),
  LOG_LEVEL: setting({
    key: 'logLevel',
    group: 'Health, metrics and logs',
    describe: 'pino level: `fatal`, `error`, `warn`, `info`, `debug`, `trace`, `silent`.',
    parse: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    local: 'info',
    production: 'info',
  }),
  API_TOKEN: optional({
    key: 'apiToken',
    group: 'HTTP API',
    describe:
      'Bearer token of the HTTP API (`/v1/…` on `HTTP_PORT`); unset, the API is off and `/v1/…` answers 404. ' +
      '`ticket-mx api-token create` makes one.',
    unset: '(API off)',
    parse: bearerToken,
    secret: true,
  }),
  OPENAPI_PUBLIC: setting({
    key: 'openapiPublic',
    group: 'HTTP API',
    describe:
      '`GET /v1/openapi.json` answers without a token (`true`); `false`: it asks for `API_TOKEN` like every other ' +
      '`/v1/…` route.',
    parse: bool,
    local: true,
    production: true,
  }),
  API_MAX_BODY_BYTES: setting({
    key: 'apiMaxBodyBytes',
    group: 'HTTP API',
    describe: 'Largest request body the API reads; a larger one gets `413` (`BODY_TOO_LARGE`).',
    parse: int(1024, 64 * MiB),
    local: MiB,
    production: MiB,
  }),
  CRM_WEBHOOK_URL: optional({
    key: 'crmWebhookUrl',
    group: 'CRM webhook',
    describe:
      "The CRM's endpoint: every committed ticket message is POSTed there as signed JSON, through the outbox " +
      '(retried with backoff, one event id across retries). Unset: no webhooks.',
    unset: '(no webhooks)',
    parse: z
      .string()
      .trim()
      .refine((v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol), 'must be an http:// or https:// URL')
      // fetch refuses such a URL, and the signature is what authenticates us to the CRM
      .refine((v) => !URL.canParse(v) || !new URL(v).username, 'must not carry a user or password'),
    // a webhook URL often carries a token of the CRM's (?key=…): never echoed
    secret: true,
  }),
  CRM_WEBHOOK_SECRET: optional({
    key: 'crmWebhookSecret',
    group: 'CRM webhook',
    describe:
      'Key of the HMAC-SHA256 signature of each webhook (`X-TicketMx-Signature`), 32+ characters; ' +
      'required with `CRM_WEBHOOK_URL`. The CRM verifies with the same secret.',
    parse: z.string().trim().min(32, 'must be at least 32 characters (e.g. openssl rand -hex 32)'),
    secret: true,
  }),
  CRM_WEBHOOK_TIMEOUT: setting({
    key: 'crmWebhookTimeoutMs',
    group: 'CRM webhook',
    describe:
      "Time for one webhook delivery (connect to the end of the CRM's answer); longer counts as not delivered " +
      'and is retried.',
    parse: duration(100, 120_000),
    local: 10_000,
    production: 10_000,
    show: showDuration,
    write: showDuration,
  }),
} as const;

type Settings = typeof SETTINGS;
/** The name of a variable the code reads. */
export type VariableName = keyof Settings;
type KeyOf<S> = S extends { key: infer K extends string } ? K : never;
type ValueOf<S> = S extends Setting<infer T> ? T : never;
/** The settings by their camelCase key, as the code uses them. */
export type Config = { readonly profile: Profile } & {
  readonly [N in VariableName as KeyOf<Settings[N]>]: ValueOf<Settings[N]>;
};
export type SettingKey = Exclude<keyof Config, 'profile'>;

/** Every variable the code reads, in the order of the list above. */
export const VARIABLE_NAMES = Object.keys(SETTINGS) as VariableName[];

// ---- rules between settings ----------------------------------------------------------------

/** A rule over several settings: checked in the same round as the values, on those that parsed. */
interface Rule {
  uses: VariableName[];
  /** The problem, or null. */
  check(c: Config, given: (name: VariableName) => boolean): string | null;
}

const RULES: Rule[] = [
  {
    uses: ['TLS_CERT_FILE', 'TLS_KEY_FILE'],
    check: (c) =>
      !!c.tlsCertFile === !!c.tlsKeyFile
        ? null
        : c.tlsCertFile
          ? 'TLS_KEY_FILE: must be set together with TLS_CERT_FILE'
          : 'TLS_CERT_FILE: must be set together with TLS_KEY_FILE',
  },
  {
    uses: ['REPLY_ADDRESS_SECRET_PREVIOUS', 'REPLY_ADDRESS_SECRET'],
    check: (c) =>
      c.replyAddressSecretPrevious && !c.replyAddressSecret
        ? 'REPLY_ADDRESS_SECRET_PREVIOUS: set REPLY_ADDRESS_SECRET too (the new secret); ' +
          'the previous one only keeps old addresses working'
        : null,
  },
  {
    uses: ['REPLY_ADDRESS_UNSIGNED', 'REPLY_ADDRESS_SECRET'],
    check: (c, given) =>
      given('REPLY_ADDRESS_UNSIGNED') && !c.replyAddressSecret
        ? 'REPLY_ADDRESS_UNSIGNED: only means something with REPLY_ADDRESS_SECRET set'
        : null,
  },
  {
    uses: ['DKIM_PRIVATE_KEY_FILE', 'DKIM_SELECTOR'],
    check: (c) =>
      !!c.dkimPrivateKeyFile === !!c.dkimSelector
        ? null
        : c.dkimPrivateKeyFile
          ? 'DKIM_SELECTOR: must be set together with DKIM_PRIVATE_KEY_FILE'
          : 'DKIM_PRIVATE_KEY_FILE: must be set together with DKIM_SELECTOR',
  },
  {
    // a template TEMPLATES_DIR lacks is taken from templates/, but one with none of them is a mistake
    uses: ['TEMPLATES_DIR', 'NOTIFY_LANGUAGE'],
    check: (c) => {
      if (!c.templatesDir) return null;
      const files = templateFiles(c.notifyLanguage);
      const has = files.filter((f) => fs.existsSync(path.join(c.templatesDir!, c.notifyLanguage, f)));
      return has.length
        ? null
        : `TEMPLATES_DIR: has none of the templates of NOTIFY_LANGUAGE=${c.notifyLanguage} ` +
            `(looked for ${files.map((f) => `${c.notifyLanguage}/${f}`).join(', ')} in ${c.templatesDir})`;
    },
  },
  {
    uses: ['SUPPORT_LOCAL_PART'],
    check: (c) =>
      c.supportLocalPart === 'bounces'
        ? "SUPPORT_LOCAL_PART: bounces is the local part of our notifications' envelope senders; choose another"
        : null,
  },
  {
    uses: ['SMTP_MAX_BUFFERED_BYTES', 'MAX_MESSAGE_BYTES'],
    check: (c) =>
      c.maxBufferedBytes < c.maxMessageBytes
        ? 'SMTP_MAX_BUFFERED_BYTES: must be at least MAX_MESSAGE_BYTES, ' +
          'or no message of the largest size could ever be taken'
        : null,
  },
  {
    uses: ['CRM_WEBHOOK_URL', 'CRM_WEBHOOK_SECRET'],
    check: (c) =>
      c.crmWebhookUrl && !c.crmWebhookSecret
        ? 'CRM_WEBHOOK_SECRET: must be set with CRM_WEBHOOK_URL (webhooks are always signed; openssl rand -hex 32)'
        : !c.crmWebhookUrl && c.crmWebhookSecret
          ? 'CRM_WEBHOOK_URL: must be set with CRM_WEBHOOK_SECRET (the secret alone sends nothing)'
          : null,
  },
  {
    uses: ['SMTP_RESERVED_CLIENTS', 'SMTP_MAX_CLIENTS'],
    check: (c) =>
      c.reservedClients >= c.maxClients ? 'SMTP_RESERVED_CLIENTS: must be less than SMTP_MAX_CLIENTS' : null,
  },
  {
    uses: ['SMTP_SOFT_ERROR_LIMIT', 'SMTP_HARD_ERROR_LIMIT'],
    check: (c) =>
      c.hardErrorLimit && c.softErrorLimit >= c.hardErrorLimit
        ? 'SMTP_SOFT_ERROR_LIMIT: must be less than SMTP_HARD_ERROR_LIMIT (or the hard limit 0, off)'
        : null,
  },
  {
    // past the DATA deadline the worker is given up on with a 451 that every retry gets again;
    // the CPU limit must refuse the message (550 5.6.0) before that, and a wait for a turn end in time
    uses: ['PIPELINE_CPU_LIMIT_MS', 'PIPELINE_QUEUE_TIMEOUT_MS', 'HOOK_TIMEOUT_MS'],
    check: (c) =>
      c.pipelineQueueTimeoutMs + c.pipelineCpuLimitMs >= c.hookTimeoutMs
        ? 'PIPELINE_CPU_LIMIT_MS: with PIPELINE_QUEUE_TIMEOUT_MS it must stay below HOOK_TIMEOUT_MS ' +
          `(${c.pipelineQueueTimeoutMs} + ${c.pipelineCpuLimitMs} >= ${c.hookTimeoutMs}), or a message over its CPU ` +
          'budget would get 451 at the deadline on every retry instead of 550 5.6.0'
        : null,
  },
  {
    // the DNS budget is spent before the wait for a turn and the CPU: all three end before the deadline
    uses: ['AUTH_DNS_BUDGET_MS', 'PIPELINE_CPU_LIMIT_MS', 'PIPELINE_QUEUE_TIMEOUT_MS', 'HOOK_TIMEOUT_MS'],
    check: (c) =>
      c.pipelineQueueTimeoutMs + c.pipelineCpuLimitMs < c.hookTimeoutMs &&
      c.authDnsBudgetMs + c.pipelineQueueTimeoutMs + c.pipelineCpuLimitMs >= c.hookTimeoutMs
        ? 'AUTH_DNS_BUDGET_MS: with PIPELINE_QUEUE_TIMEOUT_MS and PIPELINE_CPU_LIMIT_MS it must stay below ' +
          `HOOK_TIMEOUT_MS (${c.authDnsBudgetMs} + ${c.pipelineQueueTimeoutMs} + ${c.pipelineCpuLimitMs} >= ` +
          `${c.hookTimeoutMs}), or a message whose DNS is slow would get 451 at the deadline on every retry`
        : null,
  },
];

// ---- reading -------------------------------------------------------------------------------

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  /**
   * Variables this command does not use: a missing required value is not a problem for it
   * (`ticket show` needs no MAIL_DOMAINS). Bad values are still refused.
   */
  unused?: VariableName[];
}

const isComputed = <T>(d: Default<T>): d is Computed<T> => typeof d === 'object' && d !== null && 'compute' in d;
const isRequired = <T>(d: Default<T>): d is typeof REQUIRED => typeof d === 'object' && d !== null && 'required' in d;
const setIn = (env: NodeJS.ProcessEnv, name: string) => (env[name] ?? '').trim() !== '';

/** Reads the environment once. Empty strings count as unset, as in most shells' `FOO= cmd`. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, options: LoadOptions = {}): Readonly<Config> {
  const given = (name: VariableName) => setIn(env, name);
  const profile: Profile = given('DATABASE_URL') ? 'production' : 'local';
  const problems: string[] = [];
  const failed = new Set<VariableName>();
  const values: Record<string, unknown> = { profile };

  for (const name of VARIABLE_NAMES) {
    const s = SETTINGS[name] as Setting<unknown>;
    if (given(name)) {
      const raw = env[name]!;
      const parsed = s.parse.safeParse(raw);
      if (parsed.success) values[s.key] = parsed.data;
      else {
        failed.add(name);
        const message = parsed.error.issues[0]?.message ?? 'is not valid';
        problems.push(`${name}: ${message}${s.secret ? '' : ` (got ${JSON.stringify(raw)})`}`);
      }
      continue;
    }
    const d = profile === 'local' ? s.local : s.production;
    if (isRequired(d)) {
      failed.add(name);
      if (!options.unused?.includes(name))
        problems.push(`${name}: must be set in the production profile (DATABASE_URL is set)${example(name)}`);
    } else values[s.key] = isComputed(d) ? d.compute(values) : d;
  }
  const config = values as Config;
  for (const rule of RULES) {
    if (rule.uses.some((n) => failed.has(n))) continue;
    const problem = rule.check(config, given);
    if (problem) problems.push(problem);
  }
  if (problems.length) throw new ConfigError(problems);
  return Object.freeze(config);
}

const EXAMPLES: Partial<Record<VariableName, string>> = { MAIL_DOMAINS: 'flamecrm.ru' };
const example = (name: VariableName) => (EXAMPLES[name] ? `, e.g. ${name}=${EXAMPLES[name]}` : '');

// ---- describing ----------------------------------------------------------------------------

export interface EffectiveSetting {
  name: VariableName;
  group: Group;
  value: string;
  source: 'env' | 'default';
}

/** Each variable's effective value (secrets masked) and whether it came from the environment. */
export function effectiveSettings(config: Config, env: NodeJS.ProcessEnv = process.env): EffectiveSetting[] {
  return VARIABLE_NAMES.map((name) => {
    const s = SETTINGS[name] as Setting<unknown>;
    return {
      name,
      group: s.group,
      value: showValue(name, s, (config as unknown as Record<string, unknown>)[s.key], config),
      source: setIn(env, name) ? 'env' : 'default',
    };
  });
}

function showValue(name: VariableName, s: Setting<unknown>, value: unknown, config: Config): string {
  if (name === 'DATABASE_URL')
    return value ? maskUrl(String(value)) : `(embedded PostgreSQL in ${path.join(config.dataDir, 'pg')})`;
  if (s.show) return s.show(value); // a secret's show masks it
  if (s.secret) return value ? '(set)' : '(none)';
  if (value === null) return '(none)';
  return Array.isArray(value) ? value.join(',') : String(value);
}

export function maskUrl(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

/** A default as the README and the help show it: a value as it would be written in the variable. */
function defaultText(s: Setting<unknown>, d: Default<unknown>): string {
  if (isRequired(d)) return 'required';
  if (isComputed(d)) return d.text;
  if (d === null) return '(none)';
  if (s.write) return s.write(d);
  if (Array.isArray(d)) return d.length ? d.join(',') : '(none)';
  return String(d);
}

const inCode = (s: string) => (/^\(|^required$|^the |\s/.test(s) ? s : `\`${s}\``);
const namesIn = (group: Group) => VARIABLE_NAMES.filter((n) => SETTINGS[n].group === group);

/** The README's configuration tables, one per group (test/unit/docs.test.ts keeps them equal). */
export function settingsMarkdown(): string {
  const out: string[] = [];
  for (const group of GROUPS) {
    if (!namesIn(group).length) continue;
    out.push(`### ${group}`, '', '| variable | local | production | meaning |', '| --- | --- | --- | --- |');
    for (const name of namesIn(group)) {
      const s = SETTINGS[name] as Setting<unknown>;
      out.push(
        `| \`${name}\` | ${inCode(defaultText(s, s.local))} | ${inCode(defaultText(s, s.production))} | ${s.describe} |`,
      );
    }
    out.push('');
  }
  return out.join('\n').trimEnd();
}

/** `serve --help`: every variable with its defaults, the description wrapped under the name. */
export function settingsHelp(width = 80): string {
  const out: string[] = [];
  for (const group of GROUPS) {
    if (!namesIn(group).length) continue;
    out.push(`\n${group}:`);
    for (const name of namesIn(group)) {
      const s = SETTINGS[name] as Setting<unknown>;
      const local = defaultText(s, s.local);
      const production = defaultText(s, s.production);
      out.push(`  ${name}  [${local === production ? local : `local ${local}, production ${production}`}]`);
      out.push(...wrap(s.describe.replace(/`/g, ''), width - 6).map((l) => `      ${l}`));
    }
  }
  return out.join('\n');
}

export function wrap(words: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of words.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}
