// The CLI as a newcomer uses it: `serve` on the embedded PostgreSQL, `ticket create` and
// `ticket show` from a second terminal with no extra configuration, a reply sent with swaks.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/db/embedded.js';
import { readMigrations } from '../../src/db/migrate.js';
import { macFor } from '../../src/mail/address.js';
import { PROJECT_ROOT } from '../../src/paths.js';
import { cleanEnv, run, runCli, spawnCli, swaks } from '../helpers/cli.js';
import { createEmptyDatabase, createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { loadZones, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { SMTP_ZONES, startTestServer } from '../helpers/server.js';
import { buildMessage, deliver } from '../helpers/smtp-client.js';

beforeAll(() => {
  try {
    execFileSync('swaks', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('swaks is not installed: apt-get install swaks (.ci/run does this)');
  }
});

describe('help and usage', () => {
  it.each([
    ['--help'],
    ['serve', '--help'],
    ['migrate', '--help'],
    ['ticket', '--help'],
    ['ticket', 'create', '--help'],
    ['ticket', 'show', '--help'],
    ['ticket', 'show', '-h'],
    ['ticket', 'reply', '--help'],
    ['outbox', '--help'],
    ['outbox', 'list', '--help'],
    ['outbox', 'show', '--help'],
    ['outbox', 'retry', '--help'],
    ['outbox', 'run', '--help'],
    ['ticket', 'list', '--help'],
    ['ticket', 'close', '--help'],
    ['api-token', '--help'],
    ['api-token', 'create', '--help'],
  ])('ticket-mx %s prints usage and exits 0', async (...args) => {
    const r = await runCli(args, cleanEnv());
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: ticket-mx/);
  });

  it.each([
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['ticket', 'delete'], /unknown ticket command 'delete'/],
    [['ticket', 'create', '--subject', 'x'], /--requester/],
    [['ticket', 'show'], /exactly one ticket id/],
    [['ticket', 'show', '12345'], /not a ticket id/],
    [['serve', '--port', '25'], /Unknown option '--port'/],
    [['outbox', 'show'], /exactly one outbox id/],
    [['outbox', 'retry', 'TKT-1'], /not an outbox id/],
    [['outbox', 'list', '--status', 'lost'], /--status must be one of queued, sending, sent, failed, bounced/],
    [['outbox', 'send'], /unknown outbox command 'send'/],
  ])('ticket-mx %j is a usage error (exit 2)', async (args, message) => {
    const r = await runCli(args, cleanEnv());
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it.each([
    [['frobnicate'], 'ticket-mx --help'],
    [['ticket', 'delete'], 'ticket-mx ticket --help'],
    [['ticket', 'show'], 'ticket-mx ticket show --help'],
    [['serve', '--port', '25'], 'ticket-mx serve --help'],
    [['reprocess'], 'ticket-mx reprocess --help'],
  ])('ticket-mx %j points at the help that says what it takes', async (args, help) => {
    const r = await runCli(args, cleanEnv());
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split('\n').at(-1)).toBe(`Run '${help}' for usage.`);
  });
});

describe('help texts say what the README says', () => {
  const COMMANDS = [
    'serve',
    'migrate',
    'ticket create',
    'ticket reply',
    'ticket show',
    'ticket list',
    'ticket close',
    'outbox list',
    'outbox show',
    'outbox retry',
    'outbox run',
    'api-token create',
    'reply-text',
    'reprocess',
  ];
  const help = async (command: string) =>
    (await runCli([...command.split(' ').filter(Boolean), '--help'], cleanEnv())).stdout;
  const readme = fs.readFile(path.join(PROJECT_ROOT, 'README.md'), 'utf8');

  it.each(COMMANDS)("each usage of ticket-mx %s is a row of the README's Commands table", async (command) => {
    const text = await help(command);
    // a form on each line that starts with ticket-mx; a line that does not goes on the one before
    const forms: string[] = [];
    for (const line of text.slice(text.indexOf('Usage: ') + 7, text.indexOf('\n\n')).split('\n')) {
      if (line.trim().startsWith('ticket-mx ')) forms.push(line.trim());
      else forms.push(`${forms.pop()} ${line.trim()}`);
    }
    const commands = (await readme).split('\n## Commands\n')[1]!.split('\n## ')[0]!;
    const rows = commands.split('\n').filter((l) => l.startsWith('| `ticket-mx '));
    const cells = rows.map((l) => /^\| `([^`]+)`/.exec(l)![1]!.replace(/\\\|/g, '|'));
    expect(forms.length).toBeGreaterThan(0);
    for (const form of forms) expect(cells).toContain(form);
  });

  // the main help, each group's and each command's (serve's lists every setting)
  it.each(['', 'ticket', 'outbox', 'api-token', ...COMMANDS])(
    'ticket-mx %s --help fits 80 columns',
    async (command) => {
      const text = await help(command);
      expect(text).toMatch(/Usage: ticket-mx/);
      expect(text.split('\n').filter((l) => [...l].length > 80)).toEqual([]);
    },
  );

  it('ticket show --help names the paging fields of --json', async () => {
    const text = await help('ticket show');
    expect(text).toContain('"messagesMore"');
    expect(text).toContain('"messagesNext"');
  });

  it('outbox show --help says it prints the exact bytes as sent, with LF line ends', async () => {
    const text = (await help('outbox show')).replace(/\s+/g, ' ');
    expect(text).toContain("the exact bytes of an outbox row's mail as sent");
    expect(text).toContain('with LF line ends');
  });

  it.each([[''], ['  ']])('ticket reply --subject %j is a usage error naming its --help', async (subject) => {
    const args = ['ticket', 'reply', 'TKT-1', '--from', 'a@b.ru', '--message', 'x', '--subject', subject];
    const r = await runCli(args, cleanEnv());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--subject must not be empty');
    expect(r.stderr.trimEnd().split('\n').at(-1)).toBe("Run 'ticket-mx ticket reply --help' for usage.");
  });
});

describe('configuration errors stop the process and name the variable', () => {
  it.each([
    [{ SMTP_PORT: '99999' }, /SMTP_PORT: must be at most 65535/],
    [{ AUTH_POLICY: 'strict' }, /AUTH_POLICY: must be enforce or monitor/],
    [{ MAX_MESSAGE_BYTES: '10MB' }, /MAX_MESSAGE_BYTES: must be a whole number/],
    [{ DATABASE_URL: 'postgres://u:p@127.0.0.1:1/db' }, /MAIL_DOMAINS: must be set in the production profile/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL: must be a postgres:\/\/ or postgresql:\/\/ URL/],
    [{ STAFF_SENDERS: 'ivan' }, /STAFF_SENDERS: must list addresses/],
    [{ TLS_CERT_FILE: '/etc/cert.pem' }, /TLS_KEY_FILE: must be set together with TLS_CERT_FILE/],
    [{ API_TOKEN: `tmx_${'a'.repeat(20)} ${'b'.repeat(20)}` }, /API_TOKEN: must be printable ASCII without spaces/],
    [{ OUTBOUND_SMTP_URL: 'smtp://us%er:p%zz@host' }, /OUTBOUND_SMTP_URL: has a user or password that is not percent/],
    [{ TEMPLATES_DIR: '/nonexistent' }, /TEMPLATES_DIR: does not exist/],
  ])('%j', async (env, message) => {
    const r = await runCli(['serve'], cleanEnv(env));
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(message);
  });

  it('lists every problem at once', async () => {
    const r = await runCli(['serve'], cleanEnv({ SMTP_PORT: 'x', HTTP_PORT: '-1', LOG_LEVEL: 'loud' }));
    expect(r.stderr).toMatch(/SMTP_PORT/);
    expect(r.stderr).toMatch(/HTTP_PORT/);
    expect(r.stderr).toMatch(/LOG_LEVEL/);
  });
});

describe('against DATABASE_URL', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => db?.drop());

  it('migrate, ticket create with --id, ticket show of a ticket without replies', async () => {
    const env = cleanEnv({ DATABASE_URL: db.url, MAIL_DOMAINS: 'helpdesk.example.ru' });
    expect((await runCli(['migrate'], env)).stdout).toContain('database is up to date');
    const created = await runCli(
      ['ticket', 'create', '--subject', 'VPN down', '--requester', 'Boss@Example.ru', '--id', 'tkt-555', '--json'],
      env,
    );
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({
      ticket: { id: 'TKT-555', requester: 'boss@example.ru', subject: 'VPN down' },
      replyAddress: 'support+TKT-555@helpdesk.example.ru',
    });
    const again = await runCli(
      ['ticket', 'create', '--subject', 'dup', '--requester', 'a@b.ru', '--id', 'TKT-555'],
      env,
    );
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('ticket TKT-555 already exists');
    const shown = JSON.parse((await runCli(['ticket', 'show', 'TKT-555', '--json'], env)).stdout);
    expect(shown).toEqual({
      ticket: expect.objectContaining({ id: 'TKT-555' }),
      messages: [],
      notifications: [],
      refused: [],
      messagesMore: false,
      messagesNext: '0',
      notificationsMore: false,
      notificationsNext: '0',
      refusedMore: false,
      refusedNext: '0',
    });
    const missing = await runCli(['ticket', 'show', 'TKT-556'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no such ticket TKT-556');
  });

  it('ticket reply stores a staff answer and queues its mail to the requester in the same transaction', async () => {
    const env = cleanEnv({ DATABASE_URL: db.url, MAIL_DOMAINS: 'helpdesk.example.ru', OUTBOX_SEND_IN_SERVE: 'false' });
    await runCli(
      ['ticket', 'create', '--subject', 'Answer me', '--requester', 'ann@example.ru', '--id', 'TKT-700'],
      env,
    );
    const r = await runCli(
      [
        'ticket',
        'reply',
        'TKT-700',
        '--from',
        'ivan@helpdesk.example.ru',
        '--name',
        'Ivan',
        '--message',
        'Done.',
        '--subject',
        ' Про счёт ',
        '--json',
      ],
      env,
    );
    expect(r.code, r.stderr).toBe(0);
    const { messageId, outbox } = JSON.parse(r.stdout);
    expect(outbox).toHaveLength(1);
    const shown = JSON.parse((await runCli(['ticket', 'show', 'TKT-700', '--json'], env)).stdout);
    expect(shown.messages).toEqual([
      expect.objectContaining({
        id: messageId,
        from: 'ivan@helpdesk.example.ru',
        role: 'staff',
        subject: 'Про счёт',
        text: 'Done.',
        source: 'cli',
      }),
    ]);
    expect(shown.notifications).toEqual([
      expect.objectContaining({ id: outbox[0], to: 'ann@example.ru', event: 'staff_reply', status: 'queued' }),
    ]);
    const preview = await runCli(['outbox', 'show', outbox[0], '--text'], env);
    expect(preview.stderr).toContain('not attempted yet: a preview');
    expect(preview.stdout).toContain('To: ann@example.ru');
    expect(preview.stdout).toContain('Reply-To: support+TKT-700@helpdesk.example.ru');
    expect(preview.stdout).toMatch(/^Subject: Re: \[TKT-700\] Answer me$/m);
    expect(preview.stdout).toContain('\nDone.\n');
    // a typed message has no raw bytes: reprocess leaves it alone
    const reprocessed = await runCli(['reprocess', '--ticket', 'TKT-700'], env);
    expect(reprocessed.code, reprocessed.stderr).toBe(0);
    expect(reprocessed.stdout.trim()).toBe('reprocessed 0 messages: 0 changed, 0 unchanged, 0 failed');
    const missing = await runCli(['ticket', 'reply', 'TKT-701', '--from', 'a@b.ru', '--message', 'x'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no such ticket TKT-701');
    expect((await runCli(['ticket', 'reply', 'TKT-700', '--from', 'a@b.ru'], env)).code).toBe(2);
    // a closed ticket takes no more messages, typed ones included (as the API refuses them)
    expect((await runCli(['ticket', 'close', 'TKT-700'], env)).code).toBe(0);
    const closed = await runCli(
      ['ticket', 'reply', 'TKT-700', '--from', 'ivan@helpdesk.example.ru', '--message', 'Late.'],
      env,
    );
    expect(closed.code).toBe(1);
    expect(closed.stderr).toContain('ticket TKT-700 is closed (status closed)');
    const after = JSON.parse((await runCli(['ticket', 'show', 'TKT-700', '--json'], env)).stdout);
    expect(after.messages).toHaveLength(1);
  });

  it('prints a signed reply address when REPLY_ADDRESS_SECRET is set', async () => {
    const env = cleanEnv({
      DATABASE_URL: db.url,
      MAIL_DOMAINS: 'helpdesk.example.ru',
      REPLY_ADDRESS_SECRET: 'a-secret-of-32-characters-000000',
    });
    const created = await runCli(
      ['ticket', 'create', '--subject', 'Signed', '--requester', 'a@example.ru', '--id', 'TKT-600'],
      env,
    );
    expect(created.stdout).toContain(
      `reply address: support+TKT-600.${macFor('TKT-600', 'a-secret-of-32-characters-000000')}@helpdesk.example.ru`,
    );
  });
});

describe('commands that only read', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => db?.drop());

  it('migrate and ticket show need no MAIL_DOMAINS in the production profile; ticket create does', async () => {
    const env = cleanEnv({ DATABASE_URL: db.url });
    const migrated = await runCli(['migrate'], env);
    expect(migrated.stderr).toBe('');
    expect(migrated).toMatchObject({ code: 0, stdout: 'database is up to date\n' });
    const shown = await runCli(['ticket', 'show', 'TKT-1'], env);
    expect(shown).toMatchObject({ code: 1, stderr: expect.stringContaining('no such ticket TKT-1') });
    const created = await runCli(['ticket', 'create', '--subject', 's', '--requester', 'a@b.ru'], env);
    expect(created).toMatchObject({ code: 78, stderr: expect.stringContaining('MAIL_DOMAINS: must be set') });
  });

  it('ticket show refuses a database that lacks migrations, and leaves it as it is', async () => {
    const bare = await createEmptyDatabase();
    try {
      const r = await runCli(['ticket', 'show', 'TKT-1'], cleanEnv({ DATABASE_URL: bare.plainUrl }));
      const [first] = await readMigrations();
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`the database lacks migrations (${first!.name}`);
      expect(r.stderr).toContain('run `ticket-mx migrate`');
      const client = new pg.Client({ connectionString: bare.plainUrl });
      await client.connect();
      const { rows } = await client.query(
        "select count(*)::int as n from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')",
      );
      const schemas = await client.query("select count(*)::int as n from pg_namespace where nspname = 'ticketmx'");
      await client.end();
      expect(rows[0].n, 'no table was made').toBe(0);
      expect(schemas.rows[0].n, 'no schema was made').toBe(0);
    } finally {
      await bare.drop();
    }
  });

  it('never creates an embedded database where there is none (run from the wrong directory)', async () => {
    const empty = await fs.mkdtemp(path.join(os.tmpdir(), 'ticket-mx-nodb-'));
    try {
      for (const args of [
        ['ticket', 'show', 'TKT-1'],
        ['ticket', 'create', '--subject', 's', '--requester', 'a@b.ru'],
      ]) {
        const r = await runCli(args, cleanEnv({ DATA_DIR: empty }));
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(`no database in ${empty} yet`);
      }
      expect(await fs.readdir(empty)).toEqual([]);
    } finally {
      await fs.rm(empty, { recursive: true, force: true });
    }
  });

  it('ticket show | head: a reader that goes away early is not a crash', async () => {
    const server = await startTestServer(db.url);
    try {
      await insertTestTicket(db.pool, 'TKT-77');
      const long = Array.from({ length: 4000 }, (_, i) => `line ${i} of a long reply that fills the pipe`).join('\n');
      const r = await deliver(server.port, {
        from: 'ivan@flamecrm.ru',
        to: ['support+TKT-77@flamecrm.ru'],
        message: buildMessage({ to: 'support+TKT-77@flamecrm.ru', body: long }),
      });
      expect(r.short).toBe('250 2.0.0');
    } finally {
      await server.close();
    }
    const bin = path.join(PROJECT_ROOT, 'bin', 'ticket-mx.js');
    const piped = await run(
      'bash',
      ['-c', `"${process.execPath}" "${bin}" ticket show TKT-77 --full | head -1; echo "exit=\${PIPESTATUS[0]}" >&2`],
      cleanEnv({ DATABASE_URL: db.url }),
    );
    expect(piped.stdout).toBe('TKT-77  Test ticket TKT-77\n');
    expect(piped.stderr).not.toMatch(/EPIPE|Error/);
    expect(piped.stderr).toContain('exit=0');
  });
});

describe('the README walk-through on the embedded PostgreSQL', () => {
  let dataDir: string;
  let serve: ReturnType<typeof spawnCli> | undefined;
  let dns: TestDnsServer;

  beforeAll(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'ticket-mx-cli-'));
    dns = await startDnsServer(loadZones(SMTP_ZONES));
  });
  afterAll(async () => {
    await dns?.close();
    serve?.kill('SIGKILL');
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('serve, ticket create, swaks, ticket show, graceful stop', async () => {
    const smtpPort = await freePort();
    const env = cleanEnv({
      DATA_DIR: dataDir,
      SMTP_PORT: String(smtpPort),
      HTTP_PORT: String(await freePort()),
      DNS_SERVERS: dns.address,
    });
    serve = spawnCli(['serve'], env);
    await expect.poll(() => serve!.output(), { timeout: 60_000, interval: 200 }).toContain('"code":"SERVICE_STARTED"');
    expect(serve.output()).toContain('local profile');
    expect(serve.output()).toMatch(/AUTH_POLICY\s+monitor\s+\(default\)/);

    // a second terminal: no DATABASE_URL, same DATA_DIR (the installation's data/ by default)
    // nothing leaves the machine: the banner says where notifications go instead
    expect(serve.output()).toMatch(
      /OUTBOUND_SMTP_URL\s+\(none: written to DATA_DIR\/outbox\/, nothing leaves the machine\)/,
    );
    expect(serve.output()).toContain(
      `ticket-mx: notifications are written to ${path.join(dataDir, 'outbox')} (OUTBOUND_SMTP_URL is unset): nothing leaves the machine`,
    );
    const created = await runCli(
      [
        'ticket',
        'create',
        '--subject',
        'Printer on fire',
        '--requester',
        'client@example.ru',
        '--message',
        'The printer on the third floor is on fire.',
      ],
      cleanEnv({ DATA_DIR: dataDir }),
    );
    expect(created.code).toBe(0);
    const [id, addressLine, queued] = created.stdout.trim().split('\n');
    expect(id).toMatch(/^TKT-\d+$/);
    const address = addressLine!.replace('reply address: ', '');
    expect(address).toBe(`support+${id}@flamecrm.ru`);
    expect(queued).toBe('staff notification queued: outbox 1 (ticket-mx outbox show 1)');

    // serve's sender writes it to DATA_DIR/outbox/1.eml, and outbox show prints those bytes
    const eml = path.join(dataDir, 'outbox', '1.eml');
    await expect
      .poll(
        () =>
          fs.access(eml).then(
            () => true,
            () => false,
          ),
        { timeout: 20_000 },
      )
      .toBe(true);
    const bytes = await runCli(['outbox', 'show', '1'], cleanEnv({ DATA_DIR: dataDir }));
    expect(bytes.code).toBe(0);
    expect(bytes.stdout).toBe(`${(await fs.readFile(eml, 'utf8')).replace(/\r\n/g, '\n').replace(/\n$/, '')}\n`);
    expect(bytes.stderr).toMatch(
      /^1 {2}sent {2}mail {2}ticket created {2}TKT-\d+ {2}to info@flamecrm\.ru {2}attempt 1 {2}sent /,
    );
    const text = await runCli(['outbox', 'show', '1', '--text'], cleanEnv({ DATA_DIR: dataDir }));
    expect(text.stdout).toContain(`Subject: [${id}] Printer on fire`);
    expect(text.stdout).toContain(`Новый тикет поддержки ${id}\n\nОт: client@example.ru\nТема: Printer on fire`);
    expect(text.stdout).toContain('The printer on the third floor is on fire.');

    const sent = await swaks([
      '--server',
      `127.0.0.1:${smtpPort}`,
      '--to',
      address,
      '--from',
      'ivan@flamecrm.ru',
      '--header',
      `Subject: Re: [${id}] Printer on fire`,
      '--body',
      'Replaced the toner, it prints again.',
    ]);
    expect(sent.code).toBe(0);
    expect(sent.stdout + sent.stderr).not.toMatch(/\b[45]\d\d /);

    const refused = await swaks([
      '--server',
      `127.0.0.1:${smtpPort}`,
      '--to',
      'support+TKT-999999@flamecrm.ru',
      '--from',
      'ivan@flamecrm.ru',
      '--silent',
      '0',
    ]);
    expect(refused.code).toBe(24); // swaks: every recipient was refused
    expect(refused.stdout).toContain('550 5.1.1 No such ticket TKT-999999');

    const shown = JSON.parse((await runCli(['ticket', 'show', id!, '--json'], cleanEnv({ DATA_DIR: dataDir }))).stdout);
    expect(shown.messages).toHaveLength(2);
    expect(shown.messages[0]).toMatchObject({ from: 'client@example.ru', source: 'cli' });
    expect(shown.messages[1]).toMatchObject({
      from: 'ivan@flamecrm.ru',
      subject: `Re: [${id}] Printer on fire`,
      text: 'Replaced the toner, it prints again.',
    });
    const human = await runCli(['ticket', 'show', id!], cleanEnv({ DATA_DIR: dataDir }));
    expect(human.stdout).toContain('Replaced the toner, it prints again.');
    // the reply came from someone who is not staff here (STAFF_SENDERS is empty): staff are told of it
    await expect
      .poll(async () => (await runCli(['outbox', 'list'], cleanEnv({ DATA_DIR: dataDir }))).stdout, { timeout: 20_000 })
      .toMatch(/^2 {2}sent {2}mail {2}reply from a third party {2}TKT-\d+ {2}to info@flamecrm\.ru/m);
    expect((await runCli(['ticket', 'show', id!], cleanEnv({ DATA_DIR: dataDir }))).stdout).toMatch(
      /2 notifications\n {4}notification 1 to info@flamecrm\.ru \(ticket created\) sent \S+: written to /,
    );
    // the local profile monitors: not staff (STAFF_SENDERS is empty), recorded and accepted
    expect(human.stdout).toContain('auth: spf=pass (flamecrm.ru, aligned) dkim=none dmarc=pass (p=reject) arc=none');
    expect(human.stdout).toMatch(
      /decision: AUTH_NOT_ALLOWED \(accepted because AUTH_POLICY=monitor\): ivan@flamecrm.ru is neither staff/,
    );

    serve.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => serve!.once('exit', (c) => resolve(c)));
    expect(code).toBe(0);
    expect(serve.output()).toContain('"code":"SERVICE_STOPPED"');
    // the embedded PostgreSQL went down with it
    await expect(fs.access(path.join(dataDir, 'pg', 'postmaster.pid'))).rejects.toThrow();
  }, 120_000);
});
