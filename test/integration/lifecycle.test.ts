// What an operator meets around the promise: a start that fails part-way exits non-zero with
// nothing left running; signals (a second Ctrl-C, idle sessions at shutdown); a `kill -9` that
// leaves PostgreSQL running for the next start to adopt, and loses no log line of a 250.
// `serve` runs as a child process here, its output in a file, as under systemd.
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, openEmbeddedPostgres } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { cleanEnv, gone, postmasterPid, runCli, type ServeProcess, spawnCli, startServe } from '../helpers/cli.js';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { loadZones, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { SMTP_ZONES, startTestServer } from '../helpers/server.js';
import { buildMessage, dotStuff, SmtpClient } from '../helpers/smtp-client.js';

let tmp: string;
let dns: TestDnsServer;
const running: ServeProcess[] = [];

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ticket-mx-lifecycle-'));
  await fs.chmod(tmp, 0o755); // when we are root, the embedded PostgreSQL runs as postgres and must reach it
  dns = await startDnsServer(loadZones(SMTP_ZONES));
});
afterEach(() => {
  for (const s of running.splice(0)) s.child.kill('SIGKILL');
});
afterAll(async () => {
  await dns?.close();
  // a PostgreSQL a failed test left behind
  for (const dir of await fs.readdir(tmp).catch(() => [])) {
    const pid = postmasterPid(path.join(tmp, dir));
    if (pid) process.kill(pid, 'SIGQUIT');
  }
  await fs.rm(tmp, { recursive: true, force: true });
});

async function serve(env: Record<string, string>, name: string): Promise<ServeProcess> {
  const s = startServe(
    cleanEnv({ DNS_SERVERS: dns.address, SMTP_PORT: String(await freePort()), HTTP_PORT: '0', ...env }),
    path.join(tmp, `${name}.log`),
  );
  running.push(s);
  return s;
}

/** The exit, or null if the process is still running after `ms`. */
const exitWithin = (s: ServeProcess, ms: number) =>
  Promise.race([s.exited, new Promise<null>((r) => setTimeout(() => r(null), ms))]);

const localEnv = async (name: string) => ({ DATA_DIR: await fs.mkdtemp(path.join(tmp, `${name}-`)) });

describe('a start that fails part-way', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => db?.drop());

  it('exits non-zero when the HTTP port is taken (production profile), and never takes mail', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const httpPort = (busy.address() as net.AddressInfo).port;
    const smtpPort = await freePort();
    try {
      const s = await serve(
        { DATABASE_URL: db.url, MAIL_DOMAINS: 'flamecrm.ru', SMTP_PORT: String(smtpPort), HTTP_PORT: String(httpPort) },
        'http-busy',
      );
      const exit = await exitWithin(s, 30_000);
      expect(exit, 'serve must exit when a start step fails').toEqual({ code: 1, signal: null });
      expect(s.text()).toContain('EADDRINUSE');
      expect(s.logs().map((l) => l.code)).toContain('SERVICE_START_FAILED');
      expect(s.logs().map((l) => l.code)).not.toContain('SERVICE_STARTED');
      const refused = await new Promise<boolean>((resolve) =>
        net
          .connect(smtpPort, '127.0.0.1')
          .once('connect', () => resolve(false))
          .once('error', () => resolve(true)),
      );
      expect(refused, 'nothing listens on the SMTP port').toBe(true);
    } finally {
      busy.close();
    }
  });

  it('exits non-zero when a migration is refused (local profile), and stops the embedded PostgreSQL', async () => {
    const env = await localEnv('refused');
    const before = await openEmbeddedPostgres(env.DATA_DIR);
    await migrate(before.url);
    const client = new pg.Client({ connectionString: before.url });
    await client.connect();
    await client.query("insert into ticketmx.schema_migrations (id, name) values (9999, '9999_future.sql')");
    await client.end();
    await before.stop();

    const s = await serve(env, 'refused');
    const exit = await exitWithin(s, 60_000);
    expect(exit, 'serve must exit when the migration is refused').toEqual({ code: 1, signal: null });
    expect(s.text()).toContain('run a newer ticket-mx');
    const started = s.logs().find((l) => l.code === 'DB_EMBEDDED_STARTED');
    expect(started).toBeDefined();
    expect(await gone(started!.pid as number, 10_000), 'the embedded PostgreSQL is stopped').toBe(true);
    expect(postmasterPid(env.DATA_DIR)).toBeNull();
  }, 120_000);
});

describe('signals', () => {
  it('a second Ctrl-C while messages are finishing stops PostgreSQL too, and exits', async () => {
    const env = { ...(await localEnv('second-sigint')), HOOK_TIMEOUT_MS: '20000' };
    const s = await serve(env, 'second-sigint');
    const started = await s.waitFor('SERVICE_STARTED');
    const postgres = postmasterPid(env.DATA_DIR)!;
    const created = await runCli(
      ['ticket', 'create', '--subject', 'Ctrl-C', '--requester', 'a@example.ru'],
      cleanEnv({ DATA_DIR: env.DATA_DIR }),
    );
    const ticket = created.stdout.split('\n')[0]!;
    // a message half sent: the graceful stop waits for it
    const client = await SmtpClient.connect(Number(String(started.smtp).split(':')[1]));
    await client.command('EHLO client.example');
    await client.command('MAIL FROM:<ivan@flamecrm.ru>');
    expect((await client.command(`RCPT TO:<support+${ticket}@flamecrm.ru>`)).code).toBe(250);
    expect((await client.command('DATA')).code).toBe(354);
    client.write('Subject: half\r\n\r\nstill typing');

    s.child.kill('SIGINT');
    expect(await s.waitFor('SMTP_CLOSING')).toMatchObject({ inData: 1 });
    s.child.kill('SIGINT');
    const exit = await exitWithin(s, 20_000);
    client.destroy();
    expect(exit, 'the second Ctrl-C is handled, not the default death by SIGINT').toEqual({ code: 1, signal: null });
    expect(await gone(postgres, 20_000), 'the embedded PostgreSQL is not left running').toBe(true);
  }, 120_000);

  it('outbox run: a second Ctrl-C during a send stops the embedded PostgreSQL too, and exits', async () => {
    const env = await localEnv('outbox-sigint');
    // a relay that accepts the connection and never greets: the send in flight hangs
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => sockets.push(socket));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const relay = `smtp://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
      const cliEnv = cleanEnv({ ...env, OUTBOUND_SMTP_URL: relay, OUTBOX_SEND_TIMEOUT: '60s' });
      await runCli(['migrate'], cliEnv);
      const created = await runCli(
        ['ticket', 'create', '--subject', 'Ctrl-C', '--requester', 'a@example.ru', '--message', 'hello'],
        cliEnv,
      );
      expect(created.code, created.stderr).toBe(0);
      const sender = spawnCli(['outbox', 'run'], cliEnv);
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
        sender.once('exit', (code, signal) => r({ code, signal })),
      );
      try {
        // the sender is running and its send has reached the silent relay
        const deadline = Date.now() + 30_000;
        while (!(sender.output().includes('outbox sender running') && sockets.length) && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 100));
        expect(sockets.length, sender.output()).toBeGreaterThan(0);
        const postgres = postmasterPid(env.DATA_DIR)!;
        expect(postgres).toBeGreaterThan(0);
        sender.kill('SIGINT');
        await new Promise((r) => setTimeout(r, 300));
        sender.kill('SIGINT');
        const exit = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 20_000))]);
        expect(exit, 'the second Ctrl-C is handled, not the default death by SIGINT').toEqual({
          code: 1,
          signal: null,
        });
        expect(await gone(postgres, 20_000), 'the embedded PostgreSQL is not left running').toBe(true);
      } finally {
        sender.kill('SIGKILL');
      }
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  }, 120_000);

  it('a session still sending its DATA when the wait is over gets 421 4.3.2 and its line, like the idle ones (attack run 5)', async () => {
    const db = await createTestDatabase();
    // the wait is HOOK_TIMEOUT_MS + 5 s
    const server = await startTestServer(db.url, {
      HOOK_TIMEOUT_MS: '2000',
      AUTH_DNS_BUDGET_MS: '300',
      PIPELINE_QUEUE_TIMEOUT_MS: '300',
      PIPELINE_CPU_LIMIT_MS: '300',
    });
    try {
      await insertTestTicket(db.pool, 'TKT-1');
      const drip = await SmtpClient.connect(server.port);
      await drip.command('EHLO drip.example');
      await drip.command('MAIL FROM:<ivan@flamecrm.ru>');
      await drip.command('RCPT TO:<support+TKT-1@flamecrm.ru>');
      expect((await drip.command('DATA')).short).toBe('354');
      drip.write('From: ivan@flamecrm.ru\r\nSubject: slow\r\n\r\nline one\r\n');
      const closed = server.service.close();
      const t0 = Date.now();
      const goodbye = await drip.next();
      expect(goodbye.short).toBe('421 4.3.2');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(6_000);
      await closed;
      const cid = server.logsWithCode('SMTP_SHUTTING_DOWN').at(-1)?.cid;
      expect(cid).toBeDefined();
      // nothing of smtp-server's own (421 4.4.2, the 450 for the DATA its close cut short)
      expect(server.logs.filter((l) => l.cid === cid && l.code === 'SMTP_PROTOCOL_REFUSED')).toEqual([]);
    } finally {
      await server.close();
      await db.drop();
    }
  }, 30_000);

  it('at shutdown idle sessions get 421 4.3.2 at once; only DATA in flight is waited for', async () => {
    const db = await createTestDatabase();
    const server = await startTestServer(db.url, { HOOK_TIMEOUT_MS: '20000' });
    try {
      await insertTestTicket(db.pool, 'TKT-1');
      // the lock below keeps a message in flight for as long as the test needs: store_messages' own
      // lock_timeout (1 s, migration 0008) is off in this database
      await db.pool.query("alter function store_messages(bytea, jsonb, integer) set lock_timeout = '0'");
      const idle = await SmtpClient.connect(server.port);
      await idle.command('EHLO idle.example');

      const busy = await SmtpClient.connect(server.port);
      await busy.command('EHLO busy.example');
      await busy.command('MAIL FROM:<ivan@flamecrm.ru>');
      await busy.command('RCPT TO:<support+TKT-1@flamecrm.ru>');
      const locker = await db.pool.connect();
      await locker.query('begin');
      await locker.query('lock table ticket_messages in access exclusive mode');
      const stored = busy.data(buildMessage({ to: 'support+TKT-1@flamecrm.ru' }));
      // the store is waiting for the lock: the message is in flight
      await expect
        .poll(async () => {
          const { rows } = await db.pool.query(
            "select count(*)::int as n from pg_stat_activity where query like '%store_message%' and wait_event_type = 'Lock'",
          );
          return rows[0].n;
        })
        .toBe(1);

      const closed = server.service.close();
      const t0 = Date.now();
      const goodbye = await idle.next();
      expect(goodbye.short).toBe('421 4.3.2');
      expect(Date.now() - t0, 'at once, not after the close timeout').toBeLessThan(10_000);
      expect(server.logsWithCode('SMTP_CLOSING').at(-1)).toMatchObject({ idle: 1, inData: 1 });

      await locker.query('rollback');
      locker.release();
      expect((await stored).short).toBe('250 2.0.0');
      expect((await busy.next()).short).toBe('421 4.3.2');
      await closed;
      expect(server.logsWithCode('SMTP_SHUTTING_DOWN')).toHaveLength(2);
    } finally {
      await server.close();
      await db.drop();
    }
  });
});

describe('kill -9', () => {
  it('the next serve adopts the PostgreSQL a killed serve left running, and stops it when it stops', async () => {
    const env = await localEnv('orphan');
    const first = await serve(env, 'orphan');
    await first.waitFor('SERVICE_STARTED');
    const postgres = postmasterPid(env.DATA_DIR)!;
    first.child.kill('SIGKILL');
    await first.exited;
    expect(await gone(postgres, 1_000), 'kill -9 leaves PostgreSQL running').toBe(false);

    const second = await serve(env, 'orphan');
    expect(await second.waitFor('DB_EMBEDDED_ADOPTED')).toMatchObject({ pid: postgres });
    await second.waitFor('SERVICE_STARTED');
    second.child.kill('SIGTERM');
    expect(await exitWithin(second, 30_000)).toEqual({ code: 0, signal: null });
    expect(await gone(postgres, 10_000), 'the adopted PostgreSQL is stopped with us').toBe(true);
    expect(postmasterPid(env.DATA_DIR)).toBeNull();
  }, 120_000);

  it('loses no log line of a 250, however soon after it the process is killed', async () => {
    const db = await createTestDatabase();
    try {
      await insertTestTicket(db.pool, 'TKT-9');
      const s = await serve(
        {
          DATABASE_URL: db.url,
          MAIL_DOMAINS: 'flamecrm.ru',
          AUTH_POLICY: 'monitor',
          SMTP_MAX_MESSAGES_PER_IP_PER_MINUTE: '0',
          SMTP_MAX_CONNECTIONS_PER_IP: '0',
          TICKET_MAX_MESSAGES_PER_HOUR: '0',
        },
        'kill-9-logs',
      );
      const started = await s.waitFor('SERVICE_STARTED');
      const port = Number(String(started.smtp).split(':')[1]);
      const acknowledged: string[] = [];
      let killed = false;
      const sender = async (n: number) => {
        for (let i = 0; !killed; i++) {
          const message = buildMessage({ to: 'support+TKT-9@flamecrm.ru', body: `burst ${n}.${i}` });
          const r = await sendOne(port, 'support+TKT-9@flamecrm.ru', message).catch(() => null);
          const id = r && /committed as (\d+)/.exec(r)?.[1];
          if (!id) continue;
          acknowledged.push(id);
          if (acknowledged.length >= 150 && !killed) {
            killed = true;
            s.child.kill('SIGKILL');
          }
        }
      };
      await Promise.all(Array.from({ length: 20 }, (_, n) => sender(n)));
      await s.exited;
      const logged = new Set(
        s
          .logs()
          .filter((l) => l.code === 'DATA_COMMITTED')
          .map((l) => String(l.rawMessageId)),
      );
      expect(acknowledged.length).toBeGreaterThanOrEqual(150);
      expect(acknowledged.filter((id) => !logged.has(id))).toEqual([]);
    } finally {
      await db.drop();
    }
  }, 120_000);
});

/** One transaction in one write after the greeting (as Postfix pipelines); the reply to the final dot. */
function sendOne(port: number, rcpt: string, message: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let buffer = '';
    let sent = false;
    socket.setEncoding('utf8');
    socket.on('error', reject);
    socket.on('close', () => reject(new Error('closed')));
    socket.on('data', (d: string) => {
      buffer += d;
      if (!sent && /^220 /m.test(buffer)) {
        sent = true;
        buffer = '';
        socket.write(`EHLO burst.example\r\nMAIL FROM:<ivan@flamecrm.ru>\r\nRCPT TO:<${rcpt}>\r\nDATA\r\n`);
        socket.write(dotStuff(message));
        socket.write('QUIT\r\n');
      }
      const final = /^(250 2\.0\.0 .*|[45]\d\d .*)$/m.exec(buffer.split(/^354 .*$/m)[1] ?? '');
      if (sent && final) {
        resolve(final[1]!);
        socket.destroy();
      }
    });
  });
}
