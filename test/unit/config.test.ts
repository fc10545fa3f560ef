// Configuration: the two profiles, explicit variables winning, and errors that name the variable.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bearerChecker } from '../../src/api/auth.js';
import { newApiToken } from '../../src/cli/api-token.js';
import {
  ConfigError,
  effectiveSettings,
  loadConfig,
  SETTINGS,
  settingsHelp,
  VARIABLE_NAMES,
} from '../../src/config.js';
import { PROJECT_ROOT } from '../../src/paths.js';

describe('profiles', () => {
  it('local when DATABASE_URL is unset: embedded, 127.0.0.1:2525, monitor', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      profile: 'local',
      databaseUrl: null,
      smtpHost: '127.0.0.1',
      smtpPort: 2525,
      authPolicy: 'monitor',
      mailDomains: ['flamecrm.ru'],
      supportLocalPart: 'support',
    });
    expect(c.dataDir).toMatch(/\/data$/);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('production when DATABASE_URL is set: 0.0.0.0:25, enforce', () => {
    const c = loadConfig({ DATABASE_URL: 'postgres://u:p@db/tmx', MAIL_DOMAINS: 'Helpdesk.Example.RU, example.ru' });
    expect(c).toMatchObject({
      profile: 'production',
      smtpHost: '0.0.0.0',
      smtpPort: 25,
      authPolicy: 'enforce',
      mailDomains: ['helpdesk.example.ru', 'example.ru'],
    });
  });

  it('explicit variables win over either profile', () => {
    const c = loadConfig({
      DATABASE_URL: 'postgresql://db/tmx',
      MAIL_DOMAINS: 'x.ru',
      SMTP_PORT: '2526',
      SMTP_HOST: '::',
      AUTH_POLICY: 'monitor',
      STAFF_SENDERS: 'Boss@X.ru,@staff.x.ru',
      DNS_SERVERS: '127.0.0.1:5353, [::1]:53, 8.8.8.8',
    });
    expect(c).toMatchObject({
      smtpPort: 2526,
      smtpHost: '::',
      authPolicy: 'monitor',
      staffSenders: ['boss@x.ru', '@staff.x.ru'],
      dnsServers: ['127.0.0.1:5353', '[::1]:53', '8.8.8.8'],
    });
  });

  it('DATA_DIR defaults to data/ of the installation, whatever the current directory', () => {
    const cwd = process.cwd();
    try {
      process.chdir(os.tmpdir());
      expect(loadConfig({}).dataDir).toBe(path.join(PROJECT_ROOT, 'data'));
      expect(loadConfig({ DATA_DIR: 'mine' }).dataDir).toBe(path.join(fs.realpathSync(os.tmpdir()), 'mine'));
    } finally {
      process.chdir(cwd);
    }
  });

  it('treats empty values as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', SMTP_PORT: ' ' })).toMatchObject({ profile: 'local', smtpPort: 2525 });
  });

  it('reports which values came from the environment and masks the database password', () => {
    const settings = effectiveSettings(
      loadConfig({ DATABASE_URL: 'postgres://tmx:secret@db/tmx', MAIL_DOMAINS: 'x.ru' }),
      { DATABASE_URL: 'postgres://tmx:secret@db/tmx', MAIL_DOMAINS: 'x.ru' },
    );
    expect(settings.map((s) => s.name)).toEqual(VARIABLE_NAMES);
    expect(settings.find((s) => s.name === 'DATABASE_URL')).toMatchObject({
      value: 'postgres://tmx:***@db/tmx',
      source: 'env',
    });
    expect(settings.find((s) => s.name === 'SMTP_PORT')).toMatchObject({ value: '25', source: 'default' });
  });
});

describe('bad values', () => {
  it.each([
    [{ SMTP_PORT: '70000' }, 'SMTP_PORT'],
    [{ SMTP_HOST: 'my host' }, 'SMTP_HOST'],
    [{ MAIL_DOMAINS: 'flamecrm.ru, not a domain' }, 'MAIL_DOMAINS'],
    [{ SUPPORT_LOCAL_PART: 'support+x' }, 'SUPPORT_LOCAL_PART'],
    [{ MAX_MESSAGE_BYTES: '12' }, 'MAX_MESSAGE_BYTES'],
    [{ DNS_SERVERS: 'dns.google' }, 'DNS_SERVERS'],
    [{ PROXY_PROTOCOL: 'maybe' }, 'PROXY_PROTOCOL'],
    [{ HOOK_TIMEOUT_MS: '5' }, 'HOOK_TIMEOUT_MS'],
    [{ DATABASE_URL: 'postgres://x/y' }, 'MAIL_DOMAINS'],
    [{ SMTP_MAX_BUFFERED_BYTES: '2000000' }, 'SMTP_MAX_BUFFERED_BYTES'],
    [{ REPLY_ADDRESS_SECRET: 'short' }, 'REPLY_ADDRESS_SECRET'],
    [{ REPLY_ADDRESS_SECRET_PREVIOUS: 'a-previous-secret-0123' }, 'REPLY_ADDRESS_SECRET_PREVIOUS'],
    [{ OUTBOUND_SMTP_URL: 'http://relay.example' }, 'OUTBOUND_SMTP_URL'],
    [{ OUTBOUND_SMTP_URL: 'smtp://' }, 'OUTBOUND_SMTP_URL'],
    [{ NOTIFY_STAFF_TO: 'info' }, 'NOTIFY_STAFF_TO'],
    [{ NOTIFY_LANGUAGE: 'de' }, 'NOTIFY_LANGUAGE'],
    [{ OUTBOX_MAX_AGE: '2 days' }, 'OUTBOX_MAX_AGE'],
    [{ OUTBOX_MAX_AGE: '500ms' }, 'OUTBOX_MAX_AGE'],
    [{ OUTBOX_RETRY_DELAY: '30' }, 'OUTBOX_RETRY_DELAY'],
    [{ DKIM_SELECTOR: 'mail' }, 'DKIM_PRIVATE_KEY_FILE'],
    [{ DKIM_PRIVATE_KEY_FILE: '/etc/dkim.pem' }, 'DKIM_SELECTOR'],
    [{ SUPPORT_LOCAL_PART: 'bounces' }, 'SUPPORT_LOCAL_PART'],
    [{ DATABASE_SCHEMA: 'public' }, 'DATABASE_SCHEMA'],
    [{ DATABASE_SCHEMA: 'pg_toast' }, 'DATABASE_SCHEMA'],
    [{ DATABASE_SCHEMA: 'TicketMX' }, 'DATABASE_SCHEMA'],
    [{ DATABASE_SCHEMA: 'ticket-mx' }, 'DATABASE_SCHEMA'],
    [{ DATABASE_SCHEMA: 'x; drop table tickets' }, 'DATABASE_SCHEMA'],
    [{ TICKET_CLOSED_STATUSES: ' , ' }, 'TICKET_CLOSED_STATUSES'],
    [{ API_TOKEN: 'too-short' }, 'API_TOKEN'],
    [{ METRICS_TOKEN: 'too-short' }, 'METRICS_TOKEN'],
    [{ METRICS_TOKEN: `tmx_${'a'.repeat(20)} ${'b'.repeat(20)}` }, 'METRICS_TOKEN'],
    [{ OPENAPI_PUBLIC: 'maybe' }, 'OPENAPI_PUBLIC'],
    [{ OUTBOUND_SMTP_URL: 'smtp://us%er:p%zz@host' }, 'OUTBOUND_SMTP_URL'],
    [{ TEMPLATES_DIR: '/nonexistent' }, 'TEMPLATES_DIR'],
  ])('%j names %s', (env, name) => {
    let error: unknown;
    try {
      loadConfig(env);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.join('\n')).toMatch(new RegExp(`^${name}: `, 'm'));
  });
});

const problemsOf = (env: Record<string, string>, options?: Parameters<typeof loadConfig>[1]): string[] => {
  try {
    loadConfig(env, options);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

describe('the schema, closed statuses and the API token', () => {
  it('defaults to the ticketmx schema and a closed status of closed; API_TOKEN unset', () => {
    expect(loadConfig({})).toMatchObject({
      databaseSchema: 'ticketmx',
      ticketClosedStatuses: ['closed'],
      apiToken: null,
    });
  });

  it("takes another schema and the CRM's own statuses as typed", () => {
    expect(loadConfig({ DATABASE_SCHEMA: 'helpdesk_mail', TICKET_CLOSED_STATUSES: 'CLOSED, ARCHIVED' })).toMatchObject({
      databaseSchema: 'helpdesk_mail',
      ticketClosedStatuses: ['CLOSED', 'ARCHIVED'],
    });
  });

  it('refuses a token that no request could present: a space inside, or a character beyond ASCII', () => {
    for (const token of [`tmx_${'a'.repeat(20)} ${'b'.repeat(20)}`, `tmx_${'ё'.repeat(40)}`, `tmx_${'é'.repeat(40)}`]) {
      const problems = problemsOf({ API_TOKEN: token });
      expect(problems).toEqual([expect.stringMatching(/^API_TOKEN: must be printable ASCII without spaces/)]);
      expect(problems.join('\n')).not.toContain(token.slice(4, 12));
      // why: the bearer check takes one run of non-space characters, of a header Node reads as latin1
      const check = bearerChecker(token);
      const sent = Buffer.from(`Bearer ${token}`, 'utf8').toString('latin1');
      expect(check(sent)).not.toBeNull();
    }
  });

  it('takes every token api-token create makes, and each authenticates', () => {
    for (let i = 0; i < 200; i++) {
      const token = newApiToken();
      expect(loadConfig({ API_TOKEN: token }).apiToken).toBe(token);
      expect(bearerChecker(token)(`Bearer ${token}`)).toBeNull();
    }
  });

  it('never echoes the API token or the metrics token', () => {
    const token = 'tmx_0123456789abcdef0123456789abcdef0123456789a';
    const metrics = 'tmx_fedcba9876543210fedcba9876543210fedcba9876b';
    const env = { API_TOKEN: token, METRICS_TOKEN: metrics };
    const shown = effectiveSettings(loadConfig(env), env);
    expect(JSON.stringify(shown)).not.toContain(token);
    expect(JSON.stringify(shown)).not.toContain(metrics);
    expect(problemsOf({ API_TOKEN: 'tmx_short' }).join('\n')).not.toContain('tmx_short');
    expect(problemsOf({ METRICS_TOKEN: 'tmx_short' }).join('\n')).not.toContain('tmx_short');
  });

  it('METRICS_TOKEN unset and OPENAPI_PUBLIC true by default, in both profiles', () => {
    for (const env of [{}, { DATABASE_URL: 'postgres://db/x', MAIL_DOMAINS: 'x.ru' }])
      expect(loadConfig(env)).toMatchObject({ metricsToken: null, openapiPublic: true });
    expect(loadConfig({ METRICS_TOKEN: newApiToken(), OPENAPI_PUBLIC: 'false' }).openapiPublic).toBe(false);
  });
});

describe('the relay URL and the templates directory', () => {
  it('refuses a user or password that is not percent-encoded, without echoing it, and takes one that is', () => {
    const problems = problemsOf({ OUTBOUND_SMTP_URL: 'smtp://us%er:p%zz@relay.example.ru:587' });
    expect(problems).toEqual([
      'OUTBOUND_SMTP_URL: has a user or password that is not percent-encoded (write % as %25, e.g. encodeURIComponent)',
    ]);
    expect(problems.join('\n')).not.toContain('p%zz');
    const url = `smtp://${encodeURIComponent('us%er')}:${encodeURIComponent('p%zz')}@relay.example.ru:587`;
    expect(loadConfig({ OUTBOUND_SMTP_URL: url }).outboundSmtpUrl).toBe(url);
  });

  it('refuses a TEMPLATES_DIR that is missing, a file, or holds no template of NOTIFY_LANGUAGE; takes a partial one', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ticket-mx-templates-'));
    try {
      const file = path.join(dir, 'file.txt');
      fs.writeFileSync(file, 'x');
      expect(problemsOf({ TEMPLATES_DIR: path.join(dir, 'nope') })).toEqual([
        `TEMPLATES_DIR: does not exist (got ${JSON.stringify(path.join(dir, 'nope'))})`,
      ]);
      expect(problemsOf({ TEMPLATES_DIR: file })).toEqual([
        `TEMPLATES_DIR: is not a directory (got ${JSON.stringify(file)})`,
      ]);
      // a directory, but with no ru/ templates in it (say, the parent of the right one)
      fs.mkdirSync(path.join(dir, 'en'));
      fs.writeFileSync(path.join(dir, 'en', 'staff-reply.txt'), 'Subject: x\n\ny');
      const [problem] = problemsOf({ TEMPLATES_DIR: dir });
      expect(problem).toMatch(/^TEMPLATES_DIR: has none of the templates of NOTIFY_LANGUAGE=ru \(looked for /);
      for (const f of fs.readdirSync(path.join(PROJECT_ROOT, 'templates', 'ru'))) expect(problem).toContain(`ru/${f}`);
      // the one it has is of en: fine with NOTIFY_LANGUAGE=en, and one file is enough (the rest are built in)
      expect(loadConfig({ TEMPLATES_DIR: dir, NOTIFY_LANGUAGE: 'en' }).templatesDir).toBe(dir);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the CRM webhook', () => {
  const secret = 'w'.repeat(40);
  it('is off by default, and takes a URL with its secret', () => {
    expect(loadConfig({})).toMatchObject({ crmWebhookUrl: null, crmWebhookSecret: null, crmWebhookTimeoutMs: 10_000 });
    expect(
      loadConfig({
        CRM_WEBHOOK_URL: 'https://crm.example.ru/hook',
        CRM_WEBHOOK_SECRET: secret,
        CRM_WEBHOOK_TIMEOUT: '3s',
      }),
    ).toMatchObject({ crmWebhookUrl: 'https://crm.example.ru/hook', crmWebhookTimeoutMs: 3000 });
  });

  it('refuses a URL without a secret, a secret without a URL, a URL of another scheme and a short secret', () => {
    expect(problemsOf({ CRM_WEBHOOK_URL: 'https://crm.example.ru/hook' })).toEqual([
      'CRM_WEBHOOK_SECRET: must be set with CRM_WEBHOOK_URL (webhooks are always signed; openssl rand -hex 32)',
    ]);
    expect(problemsOf({ CRM_WEBHOOK_SECRET: secret })).toEqual([
      'CRM_WEBHOOK_URL: must be set with CRM_WEBHOOK_SECRET (the secret alone sends nothing)',
    ]);
    expect(problemsOf({ CRM_WEBHOOK_URL: 'ftp://crm.example.ru/', CRM_WEBHOOK_SECRET: secret })).toEqual([
      'CRM_WEBHOOK_URL: must be an http:// or https:// URL',
    ]);
    expect(problemsOf({ CRM_WEBHOOK_URL: 'https://u:p@crm.example.ru/', CRM_WEBHOOK_SECRET: secret })).toEqual([
      'CRM_WEBHOOK_URL: must not carry a user or password',
    ]);
    const short = problemsOf({ CRM_WEBHOOK_URL: 'https://crm.example.ru/', CRM_WEBHOOK_SECRET: 'short-secret' });
    expect(short).toEqual(['CRM_WEBHOOK_SECRET: must be at least 32 characters (e.g. openssl rand -hex 32)']);
  });
});

describe('one list of settings', () => {
  it('lists every problem in one round, values and rules between them alike', () => {
    const problems = problemsOf({
      DATABASE_URL: 'postgres://x/y',
      SMTP_PORT: 'abc',
      TLS_CERT_FILE: '/etc/cert.pem',
      REPLY_ADDRESS_UNSIGNED: 'accept',
    });
    expect(problems.map((p) => p.split(':')[0])).toEqual([
      'SMTP_PORT',
      'MAIL_DOMAINS',
      'TLS_KEY_FILE',
      'REPLY_ADDRESS_UNSIGNED',
    ]);
  });

  it('never echoes a secret, in errors or in the banner', () => {
    const secret = 'short-secret';
    const problems = problemsOf({ REPLY_ADDRESS_SECRET: secret, DATABASE_URL: 'mysql://root:hunter2@db/x' });
    expect(problems.join('\n')).not.toMatch(/short-secret|hunter2/);
    expect(problems.join('\n')).toMatch(/^REPLY_ADDRESS_SECRET: must be at least 16 characters/m);
    const env = { REPLY_ADDRESS_SECRET: 'a-long-enough-secret-value' };
    const shown = effectiveSettings(loadConfig(env), env);
    expect(JSON.stringify(shown)).not.toContain('a-long-enough-secret-value');
    expect(shown.find((s) => s.name === 'REPLY_ADDRESS_SECRET')?.value).toBe('(set)');
  });

  it('reads durations with units, shows them back, and masks the relay password in the banner', () => {
    const env = {
      OUTBOX_MAX_AGE: '36h',
      OUTBOX_RETRY_DELAY: '250ms',
      OUTBOUND_SMTP_URL: 'smtps://u:hunter2@relay.ru:465',
    };
    const c = loadConfig(env);
    expect(c).toMatchObject({ outboxMaxAgeMs: 36 * 3_600_000, outboxRetryDelayMs: 250, outboxSendTimeoutMs: 60_000 });
    expect(loadConfig({}).outboxMaxAgeMs).toBe(2 * 86_400_000);
    const shown = effectiveSettings(c, env);
    expect(shown.find((s) => s.name === 'OUTBOX_MAX_AGE')?.value).toBe('36h');
    expect(shown.find((s) => s.name === 'OUTBOX_RETRY_DELAY')?.value).toBe('250ms');
    expect(shown.find((s) => s.name === 'OUTBOUND_SMTP_URL')?.value).toBe('smtps://u:***@relay.ru:465');
    expect(problemsOf({ OUTBOUND_SMTP_URL: 'smtpx://u:hunter2@relay' }).join('\n')).not.toContain('hunter2');
    // unset: the banner says that nothing leaves the machine
    expect(effectiveSettings(loadConfig({}), {}).find((s) => s.name === 'OUTBOUND_SMTP_URL')?.value).toBe(
      '(none: written to DATA_DIR/outbox/, nothing leaves the machine)',
    );
  });

  it('lets a command that does not use a required setting go without it, but still refuses bad values', () => {
    expect(problemsOf({ DATABASE_URL: 'postgres://x/y' }, { unused: ['MAIL_DOMAINS'] })).toEqual([]);
    expect(
      problemsOf({ DATABASE_URL: 'postgres://x/y', MAIL_DOMAINS: 'not a domain' }, { unused: ['MAIL_DOMAINS'] }),
    ).toHaveLength(1);
  });

  it('gives every setting a description and a default for both profiles, and a config key of its own', () => {
    const keys = VARIABLE_NAMES.map((n) => SETTINGS[n].key);
    expect(new Set(keys).size).toBe(keys.length);
    for (const name of VARIABLE_NAMES) expect(SETTINGS[name].describe.length, name).toBeGreaterThan(10);
    const local = loadConfig({});
    for (const key of keys) expect(key in local, key).toBe(true);
  });

  it('help keeps names and descriptions apart, however long the name', () => {
    const help = settingsHelp(80);
    for (const line of help.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
    expect(help).toMatch(/^ {2}SMTP_MAX_MESSAGES_PER_IP_PER_MINUTE {2}\[600\]$/m);
    expect(help).toMatch(/^ {2}SMTP_HOST {2}\[local 127\.0\.0\.1, production 0\.0\.0\.0\]$/m);
  });
});
