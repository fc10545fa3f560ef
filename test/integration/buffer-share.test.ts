// The shares of SMTP_MAX_BUFFERED_BYTES (src/smtp/limits.ts) against a real server: one address
// holding many slow DATA streams, many addresses of one /24, two networks together. Whoever is over
// its share gets 421 4.7.1 the moment it passes it, its session is closed (not read to the final
// dot), and nothing of that message is kept; everyone else still gets 250, and the messages that
// fitted are committed. Last, many sessions of two networks streaming DATA: those past the
// shares get 421 at once, and a sender of a third network is greeted and answered 250 meanwhile. Loopback sources (127.0.0.0/8 is all ours on Linux) are
// the other senders: 127.0.0.2 is another client of 127.0.0.1's /24, 127.0.1.1 another network.
import net from 'node:net';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { buildMessage, dotStuff, SmtpClient } from '../helpers/smtp-client.js';

// 4 MiB in all: a client 1 MiB, a network 2 MiB, the last 1 MiB for networks holding nothing
const MiB = 2 ** 20;
const BODY = `${'y'.repeat(98)}\r\n`.repeat(2500); // 250 KB: four fit in a client's share, not five

let db: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db.url, {
    MAX_MESSAGE_BYTES: String(MiB),
    SMTP_MAX_BUFFERED_BYTES: String(4 * MiB),
    TICKET_MAX_MESSAGES_PER_HOUR: '0',
  });
  await insertTestTicket(db.pool, 'TKT-1001', 'client@example.ru', 'Printer on fire');
});

afterAll(async () => {
  await server?.close();
  await db?.drop();
});

beforeEach(async () => {
  await db.pool.query('truncate raw_messages, ticket_messages, unrouted_messages, attachments cascade');
  server.logs.length = 0;
  // every test ends with all its messages answered: nothing is held when the next begins
  await expect.poll(buffered).toBe(0);
});

async function buffered(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${server.httpPort}/metrics`)).text();
  return Number(/^ticketmx_smtp_buffered_bytes (\d+)/m.exec(text)![1]);
}

let sequence = 0;
const message = (tag: string) => buildMessage({ messageId: `<${tag}-${++sequence}@slow.example>`, body: BODY });
/** What the server holds of one message before its final dot (dot-stuffed, without the dot). */
const SIZE = dotStuff(message('size')).length - 3;

/** A slow sender: its DATA is sent but for the final dot, and waits there. */
async function startSlow(ip: string, tag: string): Promise<{ client: SmtpClient; text: string }> {
  const client = await SmtpClient.connect(server.port, '127.0.0.1', ip);
  await client.command('EHLO slow.example');
  expect((await client.command('MAIL FROM:<ivan@flamecrm.ru>')).code).toBe(250);
  expect((await client.command('RCPT TO:<support+TKT-1001@flamecrm.ru>')).code).toBe(250);
  expect((await client.command('DATA')).code).toBe(354);
  const text = message(tag);
  client.write(dotStuff(text).subarray(0, -3));
  return { client, text };
}

/** Holds `count` messages from `ip`, one after another, each seen held before the next starts. */
async function hold(ip: string, count: number, tag: string) {
  const held = [];
  for (let i = 0; i < count; i++) {
    const before = await buffered();
    held.push(await startSlow(ip, tag));
    // smtp-server keeps the last bytes back until it knows they are not the final dot
    await expect.poll(buffered).toBeGreaterThan(before + SIZE - 16);
  }
  return held;
}

/** The final dot on each; the replies in order. */
async function finish(slow: { client: SmtpClient }[]): Promise<string[]> {
  const replies = [];
  for (const { client } of slow) {
    client.write('.\r\n');
    replies.push((await client.next()).short);
    await client.quit();
  }
  return replies;
}

const committed = async () =>
  (await db.pool.query<{ n: number }>('select count(*)::int as n from raw_messages')).rows[0]!.n;

function sendWithNodemailer(ip: string, tag: string) {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port: server.port,
    secure: false,
    ignoreTLS: true,
    localAddress: ip,
  });
  return transport.sendMail({
    envelope: { from: 'ivan@flamecrm.ru', to: ['support+TKT-1001@flamecrm.ru'] },
    raw: message(tag),
  });
}

describe('the shares of SMTP_MAX_BUFFERED_BYTES', () => {
  it('keeps one address with 22 slow DATA streams to its quarter; other senders still get 250', async () => {
    const fitted = await hold('127.0.0.1', 4, 'hog');
    const refused: { client: SmtpClient; text: string }[] = [];
    for (let i = 0; i < 18; i++) refused.push(await startSlow('127.0.0.1', 'hog'));
    // the 18 are told 421 and closed before their final dot: nothing more of them is read
    await expect.poll(() => refused.every((r) => r.client.isClosed), { timeout: 10_000 }).toBe(true);
    // they hold nothing: the hog holds its four messages, no more
    expect(await buffered()).toBeLessThanOrEqual(4 * SIZE);
    expect(await buffered()).toBeGreaterThan(4 * SIZE - 64);

    // while the hog waits: another address of its /24 (nodemailer), and another network
    const neighbour = await sendWithNodemailer('127.0.0.2', 'neighbour');
    expect(neighbour.response).toMatch(/^250 2\.0\.0 Ok: committed as/);
    const other = await sendWithNodemailer('127.0.1.1', 'other');
    expect(other.response).toMatch(/^250 2\.0\.0 Ok: committed as/);

    expect(await finish(fitted)).toEqual(Array(4).fill('250 2.0.0'));
    expect(await finish(refused)).toEqual(Array(18).fill('421 4.7.1'));
    const refusals = server.logsWithCode('DATA_BUSY_CLIENT');
    expect(refusals).toHaveLength(18);
    expect(refusals[0]).toMatchObject({ client: '127.0.0.1', limit: MiB, ip: '127.0.0.1' });
    expect(refusals[0]!.reply).toBe(
      `421 4.7.1 Too many message bytes arriving from your address at once (limit ${MiB}), ` +
        'message not stored, try again later',
    );
    expect(server.logsWithCode('DATA_BUSY')).toHaveLength(0);
    // closed by us: not an abort, and no other line about it
    expect(server.logsWithCode('DATA_ABORTED')).toHaveLength(0);
    expect(server.logsWithCode('SMTP_PROTOCOL_REFUSED')).toHaveLength(0);
    // nothing lost: the hog's four that fitted and the two others are committed, the rest told to retry
    expect(await committed()).toBe(6);
    await expect.poll(buffered).toBe(0);

    // and a retry of a refused message, now that the hog holds nothing, is taken
    const [retry] = await hold('127.0.0.1', 1, 'retry');
    expect(await finish([retry!])).toEqual(['250 2.0.0']);
    expect(await committed()).toBe(7);
  });

  it('keeps many addresses of one /24 to half; another network still gets 250', async () => {
    const fitted = [...(await hold('127.0.0.1', 4, 'net-a')), ...(await hold('127.0.0.2', 4, 'net-b'))];
    const over = await startSlow('127.0.0.3', 'net-c'); // an address of its own, holding nothing
    await new Promise((r) => setTimeout(r, 300));
    expect(await buffered()).toBeLessThanOrEqual(8 * SIZE);

    const other = await sendWithNodemailer('127.0.1.1', 'other');
    expect(other.response).toMatch(/^250 2\.0\.0/);

    expect(await finish([over])).toEqual(['421 4.7.1']);
    expect(server.logsWithCode('DATA_BUSY_NETWORK')).toEqual([
      expect.objectContaining({
        network: '127.0.0.0/24',
        limit: 2 * MiB,
        reply:
          `421 4.7.1 Too many message bytes arriving from your network at once (limit ${2 * MiB}), ` +
          'message not stored, try again later',
      }),
    ]);
    expect(await finish(fitted)).toEqual(Array(8).fill('250 2.0.0'));
    expect(await committed()).toBe(9);
  });

  it('keeps the last quarter for networks holding nothing: two busy networks cannot take it', async () => {
    const networkA = [...(await hold('127.0.0.1', 4, 'a1')), ...(await hold('127.0.0.2', 4, 'a2'))];
    const networkB = await hold('127.0.1.1', 4, 'b1'); // 3 MiB in all now, or nearly
    const intoReserve = await startSlow('127.0.1.2', 'b2'); // its network holds bytes: not for it
    await new Promise((r) => setTimeout(r, 300));
    expect(await buffered()).toBeLessThanOrEqual(12 * SIZE);

    // a third network, holding nothing, gets the room kept
    const newcomer = await sendWithNodemailer('127.0.2.1', 'newcomer');
    expect(newcomer.response).toMatch(/^250 2\.0\.0/);

    expect(await finish([intoReserve])).toEqual(['421 4.7.1']);
    expect(server.logsWithCode('DATA_BUSY_RESERVED')).toEqual([
      expect.objectContaining({
        ip: '127.0.1.2',
        limit: 3 * MiB,
        reply:
          '421 4.7.1 The server is nearly full and keeps the rest for other networks, message not stored, ' +
          'try again later',
      }),
    ]);
    expect(await finish([...networkA, ...networkB])).toEqual(Array(12).fill('250 2.0.0'));
    expect(await committed()).toBe(13);
  });
});

describe('many sessions streaming big DATA past the shares (attack run 4, F-med-3)', () => {
  let big: TestServer;
  beforeAll(async () => {
    // 32 MiB in all, messages of 4 MiB at most: a client 8 MiB, a network 16 MiB, the last 8 MiB for
    // networks holding nothing (the attack run's sizes divided by eight: this process writes the streams)
    big = await startTestServer(db.url, {
      MAX_MESSAGE_BYTES: String(4 * MiB),
      SMTP_MAX_BUFFERED_BYTES: String(32 * MiB),
      TICKET_MAX_MESSAGES_PER_HOUR: '0',
    });
  });
  afterAll(async () => {
    await big?.close();
  });

  it('closes each session past a share with 421 at once; another network is greeted and gets 250 meanwhile', async () => {
    const PER = 3.5 * MiB;
    const chunk = Buffer.from(`${'a'.repeat(998)}\r\n`.repeat(1024)); // 1 MB of full lines, no dot
    /** Sends DATA and 3.5 MiB as fast as it can, never the final dot; what it was told after the 354. */
    const stream = (ip: string) =>
      new Promise<{ told: string; sent: number; closed: Promise<void> }>((resolve) => {
        const socket = net.connect({ port: big.port, host: '127.0.0.1', localAddress: ip });
        const state = { told: '', sent: 0, closed: new Promise<void>((r) => socket.once('close', () => r())) };
        let stage = 0;
        socket.on('error', () => {});
        socket.on('data', async (d) => {
          if (stage === 5) {
            state.told += d.toString();
            return;
          }
          const next = [
            'EHLO big.example',
            'MAIL FROM:<client@example.ru>',
            'RCPT TO:<support+TKT-1001@flamecrm.ru>',
            'DATA',
          ][stage++];
          if (next) return socket.write(`${next}\r\n`);
          stage = 5;
          socket.write('From: client@example.ru\r\nSubject: big\r\n\r\n');
          while (state.sent < PER && !socket.destroyed && socket.writable) {
            state.sent += chunk.length;
            if (!socket.write(chunk))
              await new Promise((r) => {
                socket.once('drain', r);
                socket.once('close', r);
              });
          }
          resolve(state);
        });
        socket.once('close', () => resolve(state));
        holders.push(socket);
      });
    const holders: net.Socket[] = [];
    const ips = Array.from({ length: 24 }, (_, i) => `127.0.${40 + (i % 2)}.${1 + Math.floor(i / 2)}`);
    const streams = ips.map(stream);

    await new Promise((r) => setTimeout(r, 500)); // the streams are under way
    const started = performance.now();
    const client = await SmtpClient.connect(big.port, '127.0.0.1', '127.0.9.1');
    const greeted = performance.now() - started;
    await client.command('EHLO staff.example');
    await client.command('MAIL FROM:<ivan@flamecrm.ru>');
    await client.command('RCPT TO:<support+TKT-1001@flamecrm.ru>');
    const answer = await client.data(message('during'));
    const answered = performance.now() - started;
    await client.quit();

    const ends = await Promise.all(streams);
    console.log(
      `greeted after ${Math.round(greeted)} ms, 250 after ${Math.round(answered)} ms; ` +
        `${ends.filter((e) => e.told.startsWith('421')).length} of 24 streams told 421`,
    );
    try {
      // generous: the streams' 84 MiB are written by this same process, on a shared machine
      expect(greeted).toBeLessThan(10_000);
      expect(answer.short).toBe('250 2.0.0');
      expect(answered).toBeLessThan(30_000);
      // at most 31 MiB fits (24 MiB outside the reserve, one message per network in it): the
      // others were told 421 before their final dot and closed
      const refused = ends.filter((e) => /^421 4\.[37]\.1 /.test(e.told));
      expect(refused.length).toBeGreaterThanOrEqual(12);
      await Promise.all(refused.map((e) => e.closed));
      expect(big.logsWithCode('DATA_ABORTED')).toHaveLength(0);
      const busy = ['DATA_BUSY', 'DATA_BUSY_CLIENT', 'DATA_BUSY_NETWORK', 'DATA_BUSY_RESERVED'].flatMap((c) =>
        big.logsWithCode(c),
      );
      expect(busy).toHaveLength(refused.length);
    } finally {
      for (const s of holders) s.destroy();
    }
  }, 60_000);
});
