// A large body made of control characters (attack run, finding 3): JSON writes each of \x01–\x1f as
// \u00XX, six bytes for one, so rows carried in one JSON document grew sixfold and were copied on
// the way to PostgreSQL. A real `ticket-mx serve` in its own process, its peak RSS read from /proc
// (Linux), against a real PostgreSQL: the message is stored exactly, and what it costs the server
// in memory stays a small multiple of its size.
import { readFileSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/db/embedded.js';
import { cleanEnv, type ServeProcess, startServe } from '../helpers/cli.js';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { loadZones, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { SMTP_ZONES } from '../helpers/server.js';
import { buildMessage, deliver } from '../helpers/smtp-client.js';

const MiB = 2 ** 20;
const TO = 'support+TKT-6201@flamecrm.ru';
/** Peak RSS over resting RSS per byte of the message that the test allows: 17.5x before 0011, 8.4x with it. */
const MAX_RISE_PER_BYTE = 12;

const kB = (pid: number, field: 'VmRSS' | 'VmHWM') =>
  Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
const settle = () => new Promise((r) => setTimeout(r, 1500));

/** Lines of 76 control characters (\x01–\x1f, no CR or LF), about `bytes` of body. */
function controlBody(bytes: number): string {
  const chars = Array.from({ length: 0x1f }, (_, i) => String.fromCharCode(i + 1)).filter(
    (c) => c !== '\r' && c !== '\n',
  );
  const line = `${Array.from({ length: 76 }, (_, i) => chars[i % chars.length]).join('')}\r\n`;
  return line.repeat(Math.floor(bytes / line.length));
}

let tmp: string;
let dns: TestDnsServer;
let db: TestDatabase;
let serve: ServeProcess;
let port: number;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ticket-mx-control-'));
  dns = await startDnsServer(loadZones(SMTP_ZONES));
  db = await createTestDatabase();
  await insertTestTicket(db.pool, 'TKT-6201', 'client@example.ru');
  port = await freePort();
  serve = startServe(
    cleanEnv({
      DATABASE_URL: db.url,
      DATA_DIR: tmp,
      DNS_SERVERS: dns.address,
      DNS_TIMEOUT_MS: '300',
      MAIL_DOMAINS: 'flamecrm.ru',
      SMTP_HOST: '127.0.0.1',
      SMTP_PORT: String(port),
      HTTP_PORT: '0',
      AUTH_POLICY: 'monitor',
      STAFF_SENDERS: '@flamecrm.ru',
      TICKET_MAX_MESSAGES_PER_HOUR: '0',
      OUTBOX_SEND_IN_SERVE: 'false',
      PIPELINE_WORKERS: '1',
      LOG_LEVEL: 'info',
    }),
    path.join(tmp, 'serve.log'),
  );
  await serve.waitFor('SERVICE_STARTED');
  // warm: a message large enough for the worker thread, which then stays up
  const warm = buildMessage({ to: TO, messageId: '<warm@x>', body: controlBody(2 * MiB) });
  expect((await deliver(port, { from: 'ivan@flamecrm.ru', to: [TO], message: warm })).short).toBe('250 2.0.0');
}, 120_000);

afterAll(async () => {
  serve?.child.kill('SIGTERM');
  await serve?.exited;
  await db?.drop();
  await dns?.close();
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('a body of control characters', () => {
  it('20 MB is stored byte for byte, and the server peak RSS rises by a bounded multiple of it', async () => {
    const message = buildMessage({ to: TO, messageId: '<control-20@x>', body: controlBody(20 * MiB) });
    const size = Buffer.byteLength(message);
    const pid = serve.child.pid!;
    await settle();
    const base = kB(pid, 'VmRSS');
    writeFileSync(`/proc/${pid}/clear_refs`, '5'); // the peak (VmHWM) from now on
    const r = await deliver(port, { from: 'ivan@flamecrm.ru', to: [TO], message });
    const rise = kB(pid, 'VmHWM') - base;
    console.log(
      `control characters, ${(size / MiB).toFixed(1)} MB: peak RSS +${(rise / MiB).toFixed(0)} MB over ` +
        `${(base / MiB).toFixed(0)} MB, ${(rise / size).toFixed(1)} x its size`,
    );
    expect(r.short).toBe('250 2.0.0');
    const { rows } = await db.pool.query<{ bytes: Buffer; full_text: string }>(
      `select r.bytes, m.full_text from ticket_messages m join raw_messages r on r.id = m.raw_message_id
        where m.message_id = '<control-20@x>'`,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]!.bytes.equals(Buffer.from(message))).toBe(true);
    expect(rows[0]!.full_text.length).toBeGreaterThan(19 * MiB);
    expect(rise).toBeLessThan(MAX_RISE_PER_BYTE * size);
  }, 120_000);

  it('20 MB of "a" and NUL is stored without the NULs, at no dearer a multiple (attack run 5)', async () => {
    // PostgreSQL text holds no NUL: removed from the texts (the raw bytes keep them), on their bytes
    const line = `${'a\u0000'.repeat(38)}\r\n`;
    const body = line.repeat(Math.floor((20 * MiB) / line.length));
    const message = buildMessage({ to: TO, messageId: '<nul-20@x>', body });
    const size = Buffer.byteLength(message);
    const pid = serve.child.pid!;
    await settle();
    const base = kB(pid, 'VmRSS');
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    const r = await deliver(port, { from: 'ivan@flamecrm.ru', to: [TO], message });
    const rise = kB(pid, 'VmHWM') - base;
    console.log(
      `NUL, ${(size / MiB).toFixed(1)} MB: peak RSS +${(rise / MiB).toFixed(0)} MB over ${(base / MiB).toFixed(0)} MB, ` +
        `${(rise / size).toFixed(1)} x its size`,
    );
    expect(r.short).toBe('250 2.0.0');
    const { rows } = await db.pool.query<{ bytes: Buffer; head: string; length: number }>(
      `select r.bytes, left(m.full_text, 76) as head, length(m.full_text) as length
         from ticket_messages m join raw_messages r on r.id = m.raw_message_id where m.message_id = '<nul-20@x>'`,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]!.bytes.equals(Buffer.from(message))).toBe(true);
    expect(rows[0]!.head).toBe(`${'a'.repeat(38)}\n${'a'.repeat(37)}`);
    expect(rows[0]!.length).toBeGreaterThan(9 * MiB);
    expect(rise).toBeLessThan(MAX_RISE_PER_BYTE * size);
  }, 120_000);
});
