// Each patch of smtp-server's internals (src/smtp/patches.ts) on its own, against a bare
// SMTPServer on a free port: if a new smtp-server version moves what they rely on, this fails.
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { afterEach, describe, expect, it } from 'vitest';
import { assertPatchable, PATCHED_MEMBERS, type PatchOptions } from '../../src/smtp/patches.js';
import { SmtpClient } from '../helpers/smtp-client.js';

const servers: SMTPServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
});

async function start(options: SMTPServerOptions & PatchOptions): Promise<number> {
  const server = new SMTPServer({
    disabledCommands: ['AUTH', 'STARTTLS'],
    hideENHANCEDSTATUSCODES: false,
    logger: false,
    ...options,
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.server.address() as AddressInfo).port;
}

describe('the members the patches rely on', () => {
  it('exist on the pinned smtp-server', () => {
    expect(() => assertPatchable(SMTPConnection.prototype)).not.toThrow();
    for (const member of PATCHED_MEMBERS)
      expect(typeof (SMTPConnection.prototype as unknown as Record<string, unknown>)[member]).toBe('function');
  });

  it('are checked at load, naming what is missing', () => {
    const moved = { ...Object.fromEntries(PATCHED_MEMBERS.map((m) => [m, () => {}])), _onCommand: undefined };
    expect(() => assertPatchable(moved)).toThrow(/no _onCommand: src\/smtp\/patches\.ts/);
  });
});

describe('1. our enhanced status codes, and a log line for refusals smtp-server decides', () => {
  it('sends "550 5.7.1 …" as given (not 5.1.1 added), and reports its own 500 to onProtocolRefusal', async () => {
    const refused: string[] = [];
    const port = await start({
      onRcptTo: (_a, _s, cb) => cb(Object.assign(new Error('5.7.1 Relaying denied'), { responseCode: 550 })),
      onProtocolRefusal: (_s, line) => refused.push(line),
    });
    const client = await SmtpClient.connect(port);
    await client.command('EHLO x');
    await client.command('MAIL FROM:<a@b.ru>');
    const rcpt = await client.command('RCPT TO:<c@d.ru>');
    expect(rcpt.lines).toEqual(['550 5.7.1 Relaying denied']);
    expect((await client.command('FOO')).short).toBe('500 5.5.2');
    await client.quit();
    expect(refused).toEqual(['500 5.5.2 Error: command not recognized']);
  });

  it('holds every one-line reply to 512 octets in ASCII: smtp-server quoting a parameter, a handler its text', async () => {
    const port = await start({
      onRcptTo: (_a, _s, cb) => cb(Object.assign(new Error(`5.7.1 ${'ж'.repeat(1000)}`), { responseCode: 550 })),
    });
    const client = await SmtpClient.connect(port);
    await client.command('EHLO x');
    const param = 'P'.repeat(900);
    const twice = await client.command(`MAIL FROM:<a@b.ru> ${param}=1 ${param}=2`);
    const octets = (line: string) => Buffer.byteLength(`${line}\r\n`);
    expect(twice.lines[0]).toMatch(/^501 5\.5\.4 Error: duplicate P+\.\.\.$/);
    expect(octets(twice.lines[0]!)).toBe(512);
    await client.command('MAIL FROM:<a@b.ru>');
    const rcpt = await client.command('RCPT TO:<c@d.ru>');
    expect(rcpt.lines[0]).toMatch(/^550 5\.7\.1 \?+\.\.\.$/);
    expect(octets(rcpt.lines[0]!)).toBe(512);
    await client.quit();
  });
});

describe('2. the greeting delay is ours to choose', () => {
  it('greets after greetingDelayMs and still refuses past maxClients', async () => {
    const port = await start({ greetingDelayMs: 0, maxClients: 1 });
    const started = performance.now();
    const first = await SmtpClient.connect(port);
    expect(first.greeting.code).toBe(220);
    expect(performance.now() - started).toBeLessThan(90); // smtp-server's own would be >= 100 ms
    const second = await SmtpClient.connect(port);
    expect(second.greeting.code).toBe(421);
    first.destroy();
    second.destroy();
  });
});

describe('3. error limits per session', () => {
  it('delays each command past the soft limit and closes at the hard one with the given 421', async () => {
    const limits: string[] = [];
    const port = await start({
      greetingDelayMs: 0,
      softErrorLimit: 2,
      hardErrorLimit: 4,
      errorDelayMs: 100,
      tooManyErrors: '4.7.0 Too many errors',
      onErrorLimit: (_s, limit, errors) => limits.push(`${limit}:${errors}`),
    });
    const client = await SmtpClient.connect(port);
    await client.command('EHLO x');
    const timings: number[] = [];
    const replies: string[] = [];
    for (let i = 0; i < 4; i++) {
      const started = performance.now();
      replies.push((await client.command('FOO')).short);
      timings.push(performance.now() - started);
    }
    expect(replies).toEqual(['500 5.5.2', '500 5.5.2', '500 5.5.2', '500 5.5.2']);
    expect(await client.next()).toMatchObject({ code: 421, text: 'Too many errors' });
    expect(limits).toEqual(['soft:3', 'hard:4']);
    // the third error crossed the soft limit: the fourth command waited for the delay
    expect(timings[3]).toBeGreaterThanOrEqual(90);
    await expect.poll(() => client.isClosed).toBe(true);
  });

  it('does not count 451 (our trouble) or a successful command', async () => {
    const limits: string[] = [];
    const port = await start({
      greetingDelayMs: 0,
      hardErrorLimit: 2,
      onMailFrom: (_a, _s, cb) => cb(Object.assign(new Error('4.3.0 Try again later'), { responseCode: 451 })),
      onErrorLimit: (_s, limit) => limits.push(limit),
    });
    const client = await SmtpClient.connect(port);
    await client.command('EHLO x');
    for (let i = 0; i < 5; i++) expect((await client.command('MAIL FROM:<a@b.ru>')).short).toBe('451 4.3.0');
    expect((await client.command('NOOP')).code).toBe(250);
    await client.quit();
    expect(limits).toEqual([]);
  });
});
