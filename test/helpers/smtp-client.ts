// A minimal raw SMTP client for tests that need to see every reply line: table-driven dialogues,
// pipelining, several transactions on one connection, a client that goes away mid-DATA.
import net from 'node:net';

export interface Reply {
  code: number;
  /** "5.1.1" or "" */
  enhanced: string;
  text: string;
  lines: string[];
  /** "550 5.1.1" — what the tables compare. */
  short: string;
}

export class SmtpClient {
  private buffer = '';
  private replies: Reply[] = [];
  private waiters: ((r: Reply) => void)[] = [];
  private closed = false;
  greeting!: Reply;

  private constructor(private socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => this.onData(d));
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w(parseReply(['000 connection closed']));
    });
    socket.on('error', () => {});
  }

  /** `localAddress` picks the client's source IP in 127.0.0.0/8, e.g. to be another sender's server. */
  static async connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<SmtpClient> {
    const socket = net.connect({ port, host, ...(localAddress ? { localAddress } : {}) });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const client = new SmtpClient(socket);
    client.greeting = await client.next();
    return client;
  }

  get isClosed() {
    return this.closed;
  }

  private onData(data: string) {
    this.buffer += data;
    let lines: string[] = [];
    for (let idx = this.buffer.indexOf('\r\n'); idx >= 0; idx = this.buffer.indexOf('\r\n')) {
      const line = this.buffer.slice(0, idx);
      this.buffer = this.buffer.slice(idx + 2);
      lines.push(line);
      if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
        const reply = parseReply(lines);
        lines = [];
        const waiter = this.waiters.shift();
        if (waiter) waiter(reply);
        else this.replies.push(reply);
      }
    }
    if (lines.length) this.buffer = lines.map((l) => `${l}\r\n`).join('') + this.buffer;
  }

  next(): Promise<Reply> {
    const ready = this.replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.closed) return Promise.resolve(parseReply(['000 connection closed']));
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  write(data: string | Buffer) {
    this.socket.write(data);
  }

  async command(line: string): Promise<Reply> {
    this.socket.write(`${line}\r\n`);
    return this.next();
  }

  /** Sends every line in one write (PIPELINING) and collects one reply per line. */
  async pipeline(lines: string[]): Promise<Reply[]> {
    this.socket.write(lines.map((l) => `${l}\r\n`).join(''));
    const out: Reply[] = [];
    for (let i = 0; i < lines.length; i++) out.push(await this.next());
    return out;
  }

  /** DATA, the dot-stuffed message, the final dot; returns the reply to the final dot. */
  async data(message: string | Buffer): Promise<Reply> {
    const go = await this.command('DATA');
    if (go.code !== 354) return go;
    this.socket.write(dotStuff(message));
    return this.next();
  }

  async quit() {
    if (!this.closed) await this.command('QUIT').catch(() => undefined);
    this.socket.destroy();
  }

  destroy() {
    this.socket.destroy();
  }
}

export function dotStuff(message: string | Buffer): Buffer {
  let text = Buffer.isBuffer(message) ? message.toString('latin1') : Buffer.from(message, 'utf8').toString('latin1');
  text = text.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
  if (!text.endsWith('\r\n')) text += '\r\n';
  return Buffer.from(`${text}.\r\n`, 'latin1');
}

function parseReply(lines: string[]): Reply {
  const last = lines[lines.length - 1] ?? '';
  const code = Number(last.slice(0, 3));
  const rest = last.slice(4);
  const m = /^([245]\.\d{1,3}\.\d{1,3}) (.*)$/.exec(rest);
  const enhanced = m ? m[1]! : '';
  return { code, enhanced, text: m ? m[2]! : rest, lines, short: enhanced ? `${code} ${enhanced}` : String(code) };
}

/** A small RFC 5322 message for tests. */
export function buildMessage(
  opts: {
    from?: string;
    to?: string;
    subject?: string;
    body?: string;
    messageId?: string | null;
    date?: string;
    headers?: string[];
  } = {},
): string {
  const lines = [
    `From: ${opts.from ?? 'Ivan Petrov <ivan@flamecrm.ru>'}`,
    `To: ${opts.to ?? 'support+TKT-1001@flamecrm.ru'}`,
    `Subject: ${opts.subject ?? 'Re: [TKT-1001] Printer on fire'}`,
    `Date: ${opts.date ?? 'Thu, 26 Nov 2026 10:00:00 +0300'}`,
  ];
  if (opts.messageId !== null)
    lines.push(`Message-ID: ${opts.messageId ?? `<${Math.random().toString(36).slice(2)}@mail.flamecrm.ru>`}`);
  lines.push(
    ...(opts.headers ?? []),
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    opts.body ?? 'The printer works again.',
  );
  return `${lines.join('\r\n')}\r\n`;
}

/** One whole transaction on a new connection; returns the reply that decided it (RCPT or DATA). */
export async function deliver(
  port: number,
  opts: { from: string; to: string[]; message: string | Buffer; ip?: string; helo?: string },
): Promise<Reply> {
  const client = await SmtpClient.connect(port, '127.0.0.1', opts.ip);
  try {
    await client.command(`EHLO ${opts.helo ?? 'mail.example'}`);
    const mail = await client.command(`MAIL FROM:<${opts.from}>`);
    if (mail.code !== 250) return mail;
    let accepted = 0;
    let last: Reply | undefined;
    for (const to of opts.to) {
      last = await client.command(`RCPT TO:<${to}>`);
      if (last.code === 250) accepted++;
    }
    if (!accepted) return last!;
    return await client.data(opts.message);
  } finally {
    await client.quit();
  }
}
