// Configuration: the two profiles, explicit variables winning, and errors that name the variable.
import { describe, expect, it } from 'vitest';
import { ConfigError, effectiveSettings, loadConfig, VARIABLES } from '../../src/config.js';

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

  it('treats empty values as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', SMTP_PORT: ' ' })).toMatchObject({ profile: 'local', smtpPort: 2525 });
  });

  it('reports which values came from the environment and masks the database password', () => {
    const settings = effectiveSettings(
      loadConfig({ DATABASE_URL: 'postgres://tmx:secret@db/tmx', MAIL_DOMAINS: 'x.ru' }),
      { DATABASE_URL: 'postgres://tmx:secret@db/tmx', MAIL_DOMAINS: 'x.ru' },
    );
    expect(settings.map((s) => s.name)).toEqual(Object.keys(VARIABLES));
    expect(settings.find((s) => s.name === 'DATABASE_URL')).toEqual({
      name: 'DATABASE_URL',
      value: 'postgres://tmx:***@db/tmx',
      source: 'env',
    });
    expect(settings.find((s) => s.name === 'SMTP_PORT')).toEqual({ name: 'SMTP_PORT', value: '25', source: 'default' });
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
