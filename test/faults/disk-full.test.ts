// A full disk under DATA_DIR (a small tmpfs, so root only): ticket-mx must stay up, answer 451
// (the sender keeps the message), say so loudly in its log, and take the retry once space is
// back. It used to die of an unhandled ENOSPC while copying PostgreSQL's output to a log file.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/db/embedded.js';
import { cleanEnv, postmasterPid, runCli, type ServeProcess, startServe } from '../helpers/cli.js';
import { loadZones, startDnsServer, type TestDnsServer } from '../helpers/dns-server.js';
import { SMTP_ZONES } from '../helpers/server.js';
import { buildMessage, deliver } from '../helpers/smtp-client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let mount: string | null = null;
let why = '';
try {
  if (process.getuid?.() !== 0) throw new Error('not root');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ticket-mx-diskfull-'));
  fs.chmodSync(dir, 0o755);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=160m,mode=0755', 'tmpfs', dir], { stdio: 'pipe' });
  mount = dir;
} catch (err) {
  why = `cannot mount a small tmpfs (${(err as Error).message.split('\n')[0]}): the disk-full case needs root`;
}

let dns: TestDnsServer;
let serve: ServeProcess | null = null;

beforeAll(async () => {
  dns = await startDnsServer(loadZones(SMTP_ZONES));
});
afterAll(async () => {
  serve?.child.kill('SIGTERM');
  if (serve) await Promise.race([serve.exited, sleep(30_000)]);
  serve?.child.kill('SIGKILL');
  if (mount) {
    const pid = postmasterPid(path.join(mount, 'data'));
    if (pid) process.kill(pid, 'SIGKILL');
    await sleep(500);
    execFileSync('umount', ['-l', mount]);
    await fsp.rm(mount, { recursive: true, force: true });
  }
  await dns?.close();
});

describe.skipIf(!mount)(`a full disk under DATA_DIR${mount ? '' : ` (skipped: ${why})`}`, () => {
  it('answers 451 and logs it loudly while the disk is full, takes the retry once space is back', async () => {
    const dataDir = path.join(mount!, 'data');
    const logFile = path.join(os.tmpdir(), `ticket-mx-diskfull-${process.pid}.log`); // not on the full disk
    const smtpPort = await freePort();
    const env = cleanEnv({
      DATA_DIR: dataDir,
      SMTP_PORT: String(smtpPort),
      HTTP_PORT: String(await freePort()),
      DNS_SERVERS: dns.address,
      HOOK_TIMEOUT_MS: '5000',
    });
    serve = startServe(env, logFile);
    await serve.waitFor('SERVICE_STARTED', 120_000);
    const created = await runCli(['ticket', 'create', '--subject', 'Disk', '--requester', 'a@example.ru'], env);
    const ticket = created.stdout.split('\n')[0]!;
    const to = `support+${ticket}@flamecrm.ru`;
    const send = (i: number, big = false) =>
      deliver(smtpPort, {
        from: 'ivan@flamecrm.ru',
        to: [to],
        message: buildMessage({
          to,
          messageId: `<disk-${i}@client.test>`,
          body: big ? 'x'.repeat(400_000).replace(/(.{76})/g, '$1\n') : `message ${i}`,
        }),
      });
    expect((await send(0)).short).toBe('250 2.0.0');

    // fill the disk
    const filler = path.join(mount!, 'filler');
    const fd = fs.openSync(filler, 'w');
    const chunk = Buffer.alloc(1024 * 1024, 1);
    try {
      for (;;) fs.writeSync(fd, chunk);
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    } finally {
      fs.closeSync(fd);
    }

    const whileFull: string[] = [];
    for (let i = 1; i <= 5; i++) whileFull.push((await send(i, true)).short);
    expect(whileFull.every((r) => r.startsWith('451') || r.startsWith('421') || r === '000')).toBe(true);
    expect(serve.child.exitCode, 'ticket-mx is still running').toBeNull();
    const loud = serve.logs().filter((l) => l.level === 'error' && /DB_DISK_FULL|DB_EMBEDDED_/.test(String(l.code)));
    expect(loud.length, 'a loud log line says the disk is full').toBeGreaterThan(0);

    // space is back: the sender's retries are taken, each once
    fs.rmSync(filler);
    const retried: string[] = [];
    for (let i = 1; i <= 5; i++) {
      let r = await send(i, true);
      for (let k = 0; k < 30 && !r.short.startsWith('250'); k++) {
        await sleep(1_000);
        r = await send(i, true);
      }
      retried.push(r.short);
    }
    expect(retried).toEqual(Array(5).fill('250 2.0.0'));
    expect(serve.child.exitCode).toBeNull();
    console.log(`disk full: replies while full ${JSON.stringify(whileFull)}; loud lines ${loud.map((l) => l.code)}`);
  }, 300_000);
});
