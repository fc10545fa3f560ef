// A real SMTP relay for the outbox tests (smtp-server on a free loopback port): it takes what
// ticket-mx sends through OUTBOUND_SMTP_URL, keeps the envelope and the exact bytes, and can be
// told to refuse (550), to defer (451), to be down (nothing listening) and to come back on the
// same port, or to hold its answer to DATA.
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';

export interface RelayedMessage {
  from: string;
  to: string[];
  raw: Buffer;
  /** The Message-ID header, as written. */
  messageId: string | null;
}

export type RelayMode = 'accept' | 'reject' | 'defer';

export interface TestRelay {
  port: number;
  /** smtp://user:password@127.0.0.1:port */
  url: string;
  messages: RelayedMessage[];
  mode: RelayMode;
  /** Called with each message before the relay answers its DATA (e.g. to kill the sender first). */
  beforeAnswer: ((m: RelayedMessage) => unknown) | null;
  /** Resolves when at least n messages have arrived. */
  waitFor(n: number, timeoutMs?: number): Promise<RelayedMessage[]>;
  /** Stops listening (the relay is down: connections are refused). */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

export const RELAY_USER = 'ticketmx';
export const RELAY_PASSWORD = 'p@ss:w/rd';

/** `tls`: an smtps:// relay (TLS from the first byte) with this key and certificate. */
export async function startRelay(o: { tls?: { key: Buffer; cert: Buffer } } = {}): Promise<TestRelay> {
  let server: SMTPServer;
  let port = 0;
  const relay: TestRelay = {
    port: 0,
    url: '',
    messages: [],
    mode: 'accept',
    beforeAnswer: null,
    async waitFor(n, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      while (relay.messages.length < n) {
        if (Date.now() > until)
          throw new Error(`the relay got ${relay.messages.length} messages within ${timeoutMs} ms, not ${n}`);
        await new Promise((r) => setTimeout(r, 25));
      }
      return relay.messages;
    },
    down: () => new Promise<void>((resolve) => server.close(() => resolve())),
    up: () => listen(),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };

  const options: SMTPServerOptions = {
    name: 'relay.test',
    banner: 'test relay',
    ...(o.tls ? { secure: true, key: o.tls.key, cert: o.tls.cert } : { disabledCommands: ['STARTTLS'] }),
    authOptional: true,
    logger: false,
    // down() means down: pooled connections of the sender are cut, not waited for
    closeTimeout: 100,
    onAuth(auth, _session, callback) {
      if (auth.username === RELAY_USER && auth.password === RELAY_PASSWORD)
        return callback(null, { user: auth.username });
      callback(Object.assign(new Error('5.7.8 Authentication credentials invalid'), { responseCode: 535 }));
    },
    onRcptTo(address, _session, callback) {
      if (relay.mode === 'reject')
        return callback(
          Object.assign(new Error(`5.1.1 <${address.address}>: Recipient address rejected: User unknown`), {
            responseCode: 550,
          }),
        );
      if (relay.mode === 'defer')
        return callback(Object.assign(new Error('4.7.1 Greylisted, please try again later'), { responseCode: 451 }));
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', async () => {
        const raw = Buffer.concat(chunks);
        const head = raw.toString('latin1', 0, Math.max(0, raw.indexOf('\r\n\r\n')));
        const message: RelayedMessage = {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          messageId: /^Message-ID:\s*(<[^>]+>)/im.exec(head)?.[1] ?? null,
        };
        relay.messages.push(message);
        await relay.beforeAnswer?.(message);
        callback(null, `2.0.0 Ok: queued as ${relay.messages.length}`);
      });
    },
  };
  server = new SMTPServer(options);
  server.on('error', () => {});

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = new SMTPServer(options);
      server.on('error', () => {});
      server.server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        port = (server.server.address() as AddressInfo).port;
        relay.port = port;
        const scheme = o.tls ? 'smtps' : 'smtp';
        relay.url = `${scheme}://${encodeURIComponent(RELAY_USER)}:${encodeURIComponent(RELAY_PASSWORD)}@127.0.0.1:${port}`;
        resolve();
      });
    });
  await listen();
  return relay;
}
