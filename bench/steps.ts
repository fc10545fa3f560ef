// `npm run bench:steps`: the CPU one message costs in the pipeline's steps, in this process and on
// one thread, without SMTP, worker threads or PostgreSQL: analyse() (src/pipeline/steps.ts) over the
// bench's two shapes of message (the own DKIM-signed Gmail-shaped reply, and what smtp-source sends),
// the DNS recorded before it (dns), and each step alone. Sequential, after a warm-up, and in CPU time rather than wall time, so that it
// reads nearly the same on a loaded machine. `--profile PREFIX` writes a V8 CPU profile of each
// measured loop (without the set-up). A benchmark, not a test.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.js';
import type { Envelope, Ticket } from '../src/db/queries.js';
import { AuthDnsFetch } from '../src/mail/auth-dns.js';
import { authenticate } from '../src/mail/authenticate.js';
import { keyCacheSwitch } from '../src/mail/dkim-keys.js';
import { createResolver } from '../src/mail/dns.js';
import { parseMessage } from '../src/mail/parse.js';
import { replyOfParsed } from '../src/mail/reply-text/message.js';
import { sanitizeHtml } from '../src/mail/sanitize.js';
import { authDnsInput } from '../src/pipeline/pipeline.js';
import { analyse, type PipelineWorld, sha256Of } from '../src/pipeline/steps.js';
import { DEAR_SHAPES, dearMessage } from '../test/helpers/dear.js';
import { publishDkimKey, startDnsServer } from '../test/helpers/dns-server.js';
import { gmailReply, signed, smtpSourceMessage } from './messages.js';

const STEPS = ['analyse', 'dns', 'parse', 'authenticate', 'extract', 'sanitize', 'sha256'] as const;

const { values: opts } = parseArgs({
  options: {
    messages: { type: 'string', default: '2000' },
    size: { type: 'string', default: '5000' },
    shape: { type: 'string', default: 'gmail,smtp-source' },
    dear: { type: 'string' },
    step: { type: 'string', default: STEPS.join(',') },
    profile: { type: 'string' },
    'no-key-cache': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
});

if (opts.help) {
  console.log(`Usage: npm run bench:steps -- [options]
  --messages N       messages of each shape (2000; 300 more warm up first)
  --size BYTES       approximate message size (5000)
  --shape LIST       gmail (DKIM-signed, multipart/alternative), smtp-source (plain text, no DKIM);
                     dear: test/helpers/dear.ts's shapes at each --size (a list), analyse() only: the most
                     CPU one message took, the longest the event loop was held, the RSS the shape grew it by
  --dear LIST        only these of the dear shapes (e.g. flat-html,flat-table,html-entities)
  --step LIST        ${STEPS.join(', ')}
  --no-key-cache     DKIM keys parsed for every message, as mailauth does unpatched (src/mail/dkim-keys.ts)
  --profile PREFIX   a V8 CPU profile of each measured loop: PREFIX.<shape>.<step>.cpuprofile`);
  process.exit(0);
}

if (opts['no-key-cache']) keyCacheSwitch.enabled = false;
const N = Number(opts.messages);
const SIZE = Number(opts.size.split(',')[0]);
const shapes = new Set(opts.shape.split(','));
const steps = new Set(opts.step.split(','));

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function timed(label: string, n: number, fn: (i: number) => Promise<unknown> | unknown) {
  // warm-up: the JIT, the DNS cache, the lazily loaded parts of mailauth and mailparser
  for (let i = 0; i < 300; i++) await fn(i % n);
  const session = opts.profile ? new Session() : null;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const before = cpuMs();
  const wall = performance.now();
  for (let i = 0; i < n; i++) await fn(i);
  const us = ((cpuMs() - before) / n) * 1000;
  const wallUs = ((performance.now() - wall) / n) * 1000;
  if (session) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(`${opts.profile}.${label.replace(/\W+/g, '-')}.cpuprofile`, JSON.stringify(profile));
    session.disconnect();
  }
  console.log(`${label.padEnd(28)} ${us.toFixed(0).padStart(6)} µs CPU a message (${wallUs.toFixed(0)} µs wall)`);
}

async function main() {
  const dns = await startDnsServer({
    records: {
      'flamecrm.ru': { TXT: ['v=spf1 ip4:127.0.0.0/8 -all'] },
      '_dmarc.flamecrm.ru': { TXT: ['v=DMARC1; p=reject'] },
    },
  });
  const key = publishDkimKey(dns, 'flamecrm.ru', 'mail');
  // the bench's server settings: staff replies, notifications off
  const config = loadConfig({
    MAIL_DOMAINS: 'flamecrm.ru',
    STAFF_SENDERS: '@flamecrm.ru',
    AUTH_POLICY: 'monitor',
    NOTIFY_REQUESTER: 'false',
    NOTIFY_STAFF_TO: '',
    DATA_DIR: '/tmp',
  });
  const resolver = createResolver({ servers: [dns.address], timeoutMs: 2000, cacheSeconds: config.dnsCacheSeconds });
  const world: PipelineWorld = {
    resolver,
    findSupportTickets: async () => ({ header: null, subject: null, notification: null }),
    unroutedBytesToday: async () => ({ network: 0, all: 0 }),
  };
  const address = 'support+TKT-900001@flamecrm.ru';
  const ticket: Ticket = {
    id: 'TKT-900001',
    subject: 'Bench ticket',
    requester: 'client@example.ru',
    status: 'open',
    createdAt: new Date(),
  };
  const envelope: Envelope = {
    clientIp: '127.0.0.1',
    clientHostname: null,
    helo: 'bench.example',
    mailFrom: 'ivan@flamecrm.ru',
    rcptTo: [address],
    tls: false,
    tlsCipher: null,
  };
  if (shapes.has('dear')) {
    const signedDear = (m: Buffer) => signed(m, key);
    for (const size of opts.size.split(',').map(Number)) {
      console.log(`-- dear shapes of ${size} bytes, DKIM-signed by staff: analyse() of 10 each, after 3 to warm up`);
      for (const shape of DEAR_SHAPES.filter((s) => !opts.dear || opts.dear.split(',').includes(s))) {
        const run = (m: Buffer) =>
          analyse(
            { raw: m, envelope, routes: [{ kind: 'ticket', ticket, address }], network: '127.0.0.0/24' },
            world,
            config,
          );
        const messages = await Promise.all(
          Array.from({ length: 13 }, (_, i) => signedDear(dearMessage(shape, size, address, i))),
        );
        // RSS from before the warm-up (the first message grows the heap), read after each message
        const rssBefore = process.memoryUsage().rss;
        let rssPeak = rssBefore;
        for (const m of messages.slice(0, 3)) {
          await run(m);
          rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
        }
        const loop = monitorEventLoopDelay({ resolution: 1 });
        loop.enable();
        let worst = 0;
        let outcome = '';
        for (const m of messages.slice(3)) {
          const before = cpuMs();
          outcome = (await run(m)).kind;
          worst = Math.max(worst, cpuMs() - before);
          rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
        }
        loop.disable();
        console.log(
          `${shape.padEnd(18)} ${String(messages[3]!.length).padStart(8)} B  worst ${worst.toFixed(1).padStart(6)} ms CPU` +
            `  event loop held at most ${(loop.max / 1e6).toFixed(1).padStart(6)} ms` +
            `  RSS +${((rssPeak - rssBefore) / 2 ** 20).toFixed(0).padStart(4)} MB  (${outcome})`,
        );
      }
    }
  }
  for (const shape of ['gmail', 'smtp-source'] as const) {
    if (!shapes.has(shape)) continue;
    const messages: Buffer[] = [];
    for (let i = 0; i < N; i++)
      messages.push(
        shape === 'gmail'
          ? await signed(gmailReply({ i, ticket: 900001, size: SIZE }), key)
          : smtpSourceMessage({ i, to: address, from: 'ivan@flamecrm.ru', size: SIZE }),
      );
    console.log(`-- ${shape} (${messages[0]!.length} bytes)`);
    const parsed = await Promise.all(messages.map((m) => parseMessage(m)));
    const step = (name: (typeof STEPS)[number], fn: (i: number) => unknown) =>
      steps.has(name) ? timed(`${shape} ${name}`, N, fn) : undefined;
    await step('analyse', (i) =>
      analyse(
        { raw: messages[i]!, envelope, routes: [{ kind: 'ticket', ticket, address }], network: '127.0.0.0/24' },
        world,
        config,
      ),
    );
    // the main thread's part before the steps (src/mail/auth-dns.ts): SPF and the lookups the
    // header calls for, recorded for the steps' replay
    await step('dns', (i) =>
      new AuthDnsFetch(resolver, authDnsInput(envelope, config.smtpHostname)).record(
        messages[i]!,
        performance.now() + 5_000,
      ),
    );
    await step('parse', (i) => parseMessage(messages[i]!));
    await step('authenticate', (i) =>
      authenticate({
        message: messages[i]!,
        ip: envelope.clientIp,
        helo: envelope.helo!,
        mailFrom: envelope.mailFrom!,
        mta: config.smtpHostname,
        resolver,
      }),
    );
    await step('extract', (i) => replyOfParsed(parsed[i]!));
    await step('sanitize', (i) => {
      const p = parsed[i]!;
      return p.html === null ? null : sanitizeHtml(p.html, p.text);
    });
    await step('sha256', (i) => sha256Of(messages[i]!));
  }
  await dns.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
