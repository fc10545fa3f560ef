// STARTTLS with our own certificate (TLS_CERT_FILE/TLS_KEY_FILE), and the warning without one.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { SmtpClient } from '../helpers/smtp-client.js';

let db: TestDatabase;
let dir: string;
let server: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  await insertTestTicket(db.pool, 'TKT-5');
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ticket-mx-tls-'));
  // a certificate made for this test run; no key is committed
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=mx.test.flamecrm.ru',
      '-keyout',
      path.join(dir, 'key.pem'),
      '-out',
      path.join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  server = await startTestServer(db.url, {
    TLS_CERT_FILE: path.join(dir, 'cert.pem'),
    TLS_KEY_FILE: path.join(dir, 'key.pem'),
  });
});

afterAll(async () => {
  await server?.close();
  await db?.drop();
  await fs.rm(dir, { recursive: true, force: true });
});

describe('STARTTLS', () => {
  it('is offered with our certificate and the stored row records the cipher', async () => {
    const client = await SmtpClient.connect(server.port);
    const ehlo = await client.command('EHLO x');
    await client.quit();
    expect(ehlo.lines.map((l) => l.slice(4))).toContain('STARTTLS');

    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: server.port,
      secure: false,
      requireTLS: true,
      tls: { rejectUnauthorized: false },
    });
    const info = await transport.sendMail({
      from: 'ivan@flamecrm.ru',
      to: 'support+TKT-5@flamecrm.ru',
      subject: 'over TLS',
      text: 'encrypted',
      messageId: '<tls@x>',
    });
    expect(info.response).toMatch(/^250 2\.0\.0/);
    const { rows } = await db.pool.query("select tls, tls_cipher from ticket_messages where message_id = '<tls@x>'");
    expect(rows).toEqual([{ tls: true, tls_cipher: expect.stringMatching(/^TLS_|AES|CHACHA/) }]);
    expect(server.logsWithCode('TLS_NOT_CONFIGURED')).toHaveLength(0);
  });

  it('presents the configured certificate, not a built-in one', async () => {
    const socket = net.connect(server.port, '127.0.0.1');
    let seen = '';
    socket.on('data', (d) => (seen += d.toString()));
    await expect.poll(() => seen).toMatch(/^220 /);
    socket.write('EHLO x\r\n');
    await expect.poll(() => seen).toMatch(/250 /);
    socket.write('STARTTLS\r\n');
    await expect.poll(() => seen).toMatch(/^220 .*TLS/m);
    socket.removeAllListeners('data');
    const secure = tls.connect({ socket, rejectUnauthorized: false, servername: 'mx.test.flamecrm.ru' });
    await new Promise((resolve) => secure.once('secureConnect', resolve));
    expect(secure.getPeerCertificate().subject.CN).toBe('mx.test.flamecrm.ru');
    secure.destroy();
  });

  it('is not offered, with a warning, when no certificate is configured', async () => {
    const plain = await startTestServer(db.url);
    try {
      const client = await SmtpClient.connect(plain.port);
      const ehlo = await client.command('EHLO x');
      const starttls = await client.command('STARTTLS');
      await client.quit();
      expect(ehlo.lines.map((l) => l.slice(4))).not.toContain('STARTTLS');
      expect(starttls.code).toBeGreaterThanOrEqual(500);
      expect(plain.logsWithCode('TLS_NOT_CONFIGURED')).toHaveLength(1);
    } finally {
      await plain.close();
    }
  });
});
