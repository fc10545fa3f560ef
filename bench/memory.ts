// `npm run bench:memory`: what one idle connection and one message really cost the server in memory,
// the figures behind SMTP_MAX_CLIENTS and the pipeline budget's costOf (src/pipeline/budget.ts).
// A real ticket-mx in its own process against an embedded PostgreSQL, a fresh one for each
// measurement (what an earlier large message left to the allocator would hide the next one's
// cost); the server's peak RSS is reset before each measurement (/proc/<pid>/clear_refs) and read
// after it (VmHWM). Also the issue-12 figure: the server's peak RSS with 1,000 idle connections
// open. Linux only.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort, openEmbeddedPostgres } from '../src/db/embedded.js';
import { migrate } from '../src/db/migrate.js';
import { DEFAULT_SCHEMA, inSchema } from '../src/db/schema.js';
import { PROJECT_ROOT } from '../src/paths.js';
import { buildMessage, deliver, SmtpClient } from '../test/helpers/smtp-client.js';

const kB = (pid: number, field: 'VmRSS' | 'VmHWM') =>
  Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
const resetPeak = (pid: number) => writeFileSync(`/proc/${pid}/clear_refs`, '5');
const settle = () => new Promise((r) => setTimeout(r, 1500));

function attachmentMessage(bytes: number, i: number): string {
  const line = `${'QUJD'.repeat(19)}\r\n`;
  return buildMessage({ to: 'support+TKT-1@flamecrm.ru', messageId: `<mem-${i}@x>` }).replace(
    'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nThe printer works again.\r\n',
    'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nСкан во вложении.\r\n' +
      '--b\r\nContent-Type: application/pdf; name="scan.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n' +
      `${line.repeat(Math.floor(bytes / line.length))}--b--\r\n`,
  );
}

async function main() {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'ticket-mx-memory-'));
  const embedded = await openEmbeddedPostgres(dataDir);
  const url = inSchema(embedded.url, DEFAULT_SCHEMA);
  await migrate(url);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query("insert into tickets (id, subject, requester) values ('TKT-1', 'x', 'c@example.ru')");
  console.log(`ticket-mx memory: one pipeline worker, node ${process.version}, ${os.cpus().length} cores`);
  // idle connections: greeted and left silent, as a flood would
  {
    const { pid, port, stop } = await startServer(url, dataDir);
    const N = 2000;
    const before = kB(pid, 'VmRSS');
    resetPeak(pid);
    const sockets: net.Socket[] = [];
    for (let i = 0; i < N; i++) {
      const s = net.connect({
        port,
        host: '127.0.0.1',
        localAddress: `127.0.${1 + (i % 200)}.${1 + Math.floor(i / 200)}`,
      });
      s.on('error', () => {});
      sockets.push(s);
      if (i % 100 === 99) await new Promise((r) => setTimeout(r, 50));
      if (i === 999) {
        await settle();
        console.log(
          `1000 idle connections: RSS ${(kB(pid, 'VmRSS') / 1024).toFixed(0)} MB, peak ${(kB(pid, 'VmHWM') / 1024).toFixed(0)} MB ` +
            `(at rest before them: ${(before / 1024).toFixed(0)} MB)`,
        );
      }
    }
    await settle();
    const idle = kB(pid, 'VmRSS');
    console.log(
      `idle connections: ${N} cost ${((idle - before) / 1024).toFixed(1)} MB, ${((idle - before) / N).toFixed(1)} KB each`,
    );
    for (const s of sockets) s.destroy();
    await stop();
  }

  for (const [i, mb] of [1, 5, 25].entries()) {
    const { pid, port, stop } = await startServer(url, dataDir);
    const message = attachmentMessage(mb * 2 ** 20 - 4096, i + 1);
    await settle();
    const base = kB(pid, 'VmRSS');
    resetPeak(pid);
    const r = await deliver(port, { from: 'ivan@flamecrm.ru', to: ['support+TKT-1@flamecrm.ru'], message });
    const peak = kB(pid, 'VmHWM');
    const size = Buffer.byteLength(message);
    console.log(
      `message of ${(size / 2 ** 20).toFixed(1)} MB (${r.short}): peak RSS +${((peak - base) / 1024).toFixed(0)} MB over ` +
        `${(base / 1024).toFixed(0)} MB, ${(((peak - base) * 1024) / size).toFixed(1)} x its size`,
    );
    await stop();
  }
  await client.end();
  await embedded.stop();
  await fs.rm(dataDir, { recursive: true, force: true });
}

/**
 * A ticket-mx of its own, warmed by one small message through every step (and its worker started).
 * Its DATA_DIR is the run's temporary directory: the notifications it files (OUTBOUND_SMTP_URL unset)
 * go there, not into the project's data/.
 */
async function startServer(
  url: string,
  dataDir: string,
): Promise<{ pid: number; port: number; stop(): Promise<void> }> {
  const port = await freePort();
  const server = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'ticket-mx.js'), 'serve'], {
    env: {
      ...process.env,
      DATABASE_URL: url,
      DATA_DIR: dataDir,
      MAIL_DOMAINS: 'flamecrm.ru',
      SMTP_HOST: '127.0.0.1',
      SMTP_PORT: String(port),
      HTTP_PORT: '0',
      AUTH_POLICY: 'monitor',
      LOG_LEVEL: 'warn',
      SMTP_MAX_CONNECTIONS_PER_IP: '0',
      SMTP_MAX_CONNECTIONS_PER_NETWORK: '0',
      PIPELINE_WORKERS: '1',
      ATTACHMENT_MAX_BYTES: String(30 * 2 ** 20),
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const pid = server.pid!;
  for (let i = 0; i < 100; i++) {
    const up = await SmtpClient.connect(port).then(
      (c) => {
        c.destroy();
        return true;
      },
      () => false,
    );
    if (up) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  // warm: one message through every step, large enough for the worker (which then stays 30 s)
  await deliver(port, {
    from: 'ivan@flamecrm.ru',
    to: ['support+TKT-1@flamecrm.ru'],
    message: attachmentMessage(100_000, 0),
  });
  await settle();

  return {
    pid,
    port,
    stop: async () => {
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
    },
  };
}
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
