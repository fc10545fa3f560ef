// `npm run bench`: a load generator against a real ticket-mx (its own process) and PostgreSQL
// (embedded unless TEST_DATABASE_URL is set; never DATABASE_URL, which is production's), with the
// whole per-message path switched on: SPF, DKIM and DMARC against a loopback DNS server,
// AUTH_POLICY=enforce, reply-text extraction, storage. Prints messages/second, latency from the
// end of DATA to the 250, errors, the server's peak RSS, its event-loop delay (max, p99: what one
// message may hold the loop) and where the CPU went. With --hostile N, issue 9's hostile shapes
// go in from other networks alongside the load. `--notify` measures twice, notifications off and on (each staff reply
// then queues one mail to its requester, sent by the server's sender to a local SMTP sink started
// here), and prints both. A benchmark, not a test: it asserts nothing.
import { execFileSync, spawn } from 'node:child_process';
import { openSync, readdirSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { SMTPServer } from 'smtp-server';
import { freePort, openEmbeddedPostgres } from '../src/db/embedded.js';
import { migrate } from '../src/db/migrate.js';
import { DEFAULT_SCHEMA, inSchema } from '../src/db/schema.js';
import { PROJECT_ROOT } from '../src/paths.js';
import { publishDkimKey, startDnsServer } from '../test/helpers/dns-server.js';
import { type HostileMessage, hostileMessages } from '../test/helpers/hostile.js';
import { type PrivatePostfix, startPostfix } from '../test/helpers/postfix.js';
import { gmailReply, signed } from './messages.js';

const { values: opts } = parseArgs({
  options: {
    messages: { type: 'string', default: '5000' },
    concurrency: { type: 'string', default: '50' },
    size: { type: 'string', default: '5000' },
    tickets: { type: 'string', default: '100' },
    pipelining: { type: 'boolean', default: false },
    'smtp-source': { type: 'boolean', default: false },
    'vs-postfix': { type: 'boolean', default: false },
    rounds: { type: 'string', default: '2' },
    pg: { type: 'string', multiple: true, default: [] },
    notify: { type: 'boolean', default: false },
    hostile: { type: 'string', default: '0' },
    env: { type: 'string', multiple: true, default: [] },
    profile: { type: 'string' },
    log: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

if (opts.help) {
  console.log(`Usage: npm run bench -- [options]
  --messages N       messages to send (5000)
  --concurrency N    concurrent SMTP sessions, a new connection per message (50)
  --size BYTES       approximate message size (5000)
  --tickets N        tickets the messages are spread over (100)
  --pipelining       send MAIL, RCPT and DATA in one write, as Postfix does
  --smtp-source      drive Postfix's smtp-source (apt-get install postfix) instead of the built-in client
  --vs-postfix       smtp-source against a private Postfix that queues durably and holds, and against
                     ticket-mx (AUTH_POLICY=monitor, the whole pipeline), alternating, --rounds times each (2)
  --pg NAME=VALUE    a PostgreSQL setting for the run (ALTER SYSTEM, reloaded), e.g. --pg commit_delay=100
  --hostile N        also send N of issue 9's hostile messages (seeded) from other networks, 4 at a time
  --notify           run twice: notifications off, then on (one mail per reply to a local SMTP sink)
  --env NAME=VALUE   extra environment for the server (repeatable), e.g. --env LOG_LEVEL=warn
  --profile DIR      write a V8 CPU profile of the server into DIR
  --log FILE         keep the server's log lines (one per SMTP decision) in FILE
TEST_DATABASE_URL set: use that database (schema ticketmx; its tickets get TKT-900001…); unset: an embedded
PostgreSQL in a temp dir. DATABASE_URL (production's) is never used, even when exported.`);
  process.exit(0);
}

/** The load is smtp-source's: --smtp-source, and both sides of --vs-postfix. */
const SMTP_SOURCE = opts['smtp-source'] || opts['vs-postfix'];
const MESSAGES = Number(opts.messages);
const CONCURRENCY = Number(opts.concurrency);
const SIZE = Number(opts.size);
const TICKETS = Number(opts.tickets);
const FIRST_TICKET = 900001;

/** The machine's load when the bench started (its own processes come later). */
const LOAD_BEFORE = os.loadavg()[0]!;

async function main() {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'ticket-mx-bench-'));
  const embedded = process.env.TEST_DATABASE_URL ? null : await openEmbeddedPostgres(dataDir);
  const url = inSchema(process.env.TEST_DATABASE_URL ?? embedded!.url, DEFAULT_SCHEMA);
  await migrate(url);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(
    `insert into tickets (id, subject, requester) select 'TKT-' || n, 'Bench ticket ' || n, 'client' || n || '@example.ru'
     from generate_series($1::int, $2::int) n on conflict do nothing`,
    [FIRST_TICKET, FIRST_TICKET + TICKETS - 1],
  );

  // The public internet's part: DNS for flamecrm.ru (SPF, DMARC p=reject, a DKIM key).
  const dns = await startDnsServer({
    records: {
      'flamecrm.ru': { TXT: ['v=spf1 ip4:127.0.0.0/8 -all'] },
      '_dmarc.flamecrm.ru': { TXT: ['v=DMARC1; p=reject'] },
    },
  });
  const dkimKey = publishDkimKey(dns, 'flamecrm.ru', 'mail');
  const sink = opts.notify ? await startSink() : null;
  const dkimKeyFile = path.join(dataDir, 'dkim.pem');
  await fs.writeFile(dkimKeyFile, dkimKey);
  for (const kv of opts.pg ?? []) {
    const [name, value] = [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)];
    await client.query(`alter system set ${pg.escapeIdentifier(name)} = ${pg.escapeLiteral(value)}`);
  }
  if (opts.pg?.length) await client.query('select pg_reload_conf()');
  const runs: Run[] = [];
  if (opts['vs-postfix']) {
    const postfix = await startPostfix({ dir: path.join(dataDir, 'postfix'), domains: ['flamecrm.ru'], hold: true });
    const rounds: { postfix: PostfixRun; ticketMx: Run }[] = [];
    try {
      for (let round = 0; round < Number(opts.rounds); round++) {
        const a = await measurePostfix(postfix);
        const b = await measure({
          url,
          dataDir,
          dnsAddress: dns.address,
          client,
          messages: [],
          sink: null,
          dkimKeyFile,
          hostile: [],
          postmaster: embedded?.pid ?? null,
        });
        rounds.push({ postfix: a, ticketMx: b });
        process.stderr.write(
          `round ${round + 1}: Postfix ${rate(a.ok, a.seconds)} msg/s, ticket-mx ${rate(b.result.ok, b.seconds)} msg/s\n`,
        );
      }
    } finally {
      await postfix.stop();
    }
    await client.end();
    await dns.close();
    await embedded?.stop();
    await fs.rm(dataDir, { recursive: true, force: true });
    reportVsPostfix(rounds, embedded !== null);
    return;
  }
  for (const notify of opts.notify ? [false, true] : [false]) {
    const messages: Buffer[] = [];
    if (!SMTP_SOURCE) {
      process.stderr.write(`signing ${MESSAGES} messages with DKIM (rsa-sha256, 2048 bits)…\n`);
      // a Message-ID of its own per run, or the second run would be retries of the first
      for (let i = 0; i < MESSAGES; i++)
        messages.push(
          await signed(gmailReply({ i, run: runs.length, ticket: FIRST_TICKET + (i % TICKETS), size: SIZE }), dkimKey),
        );
    }
    const sinkOf = notify ? sink : null;
    const hostile = Number(opts.hostile)
      ? await hostileMessages(Number(opts.hostile), 9, { ticket: `TKT-${FIRST_TICKET}`, staffKey: dkimKey })
      : [];
    runs.push(
      await measure({
        url,
        dataDir,
        dnsAddress: dns.address,
        client,
        messages,
        sink: sinkOf,
        dkimKeyFile,
        hostile,
        postmaster: embedded?.pid ?? null,
      }),
    );
  }
  await client.end();
  await dns.close();
  await sink?.close();
  await embedded?.stop();
  await fs.rm(dataDir, { recursive: true, force: true });

  const cpus = os.cpus();
  const what = SMTP_SOURCE
    ? `smtp-source's plain messages of ~${SIZE} B (SPF and DMARC, no DKIM)`
    : `DKIM-signed messages of ~${SIZE} B`;
  console.log(
    `ticket-mx bench: ${MESSAGES} ${what}, AUTH_POLICY=enforce, ${CONCURRENCY} concurrent sessions, a new connection per message${opts.pipelining ? ', pipelining' : ''}`,
  );
  console.log(
    `machine: ${cpus.length} x ${cpus[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, PostgreSQL ${embedded ? 'embedded' : 'TEST_DATABASE_URL'}`,
  );
  for (const run of runs) report(run, runs.length > 1);
}

interface Run {
  notify: boolean;
  result: LoadResult;
  seconds: number;
  stored: number;
  peakRss: number | null;
  cpu: { server: number; serverSystem: number; postgres: number; load: number };
  /** The server's event-loop delay over the load, in ms (prom-client's monitorEventLoopDelay). */
  loop: { max: string; p99: string; p50: string };
  /** Commits of the group commit during the load, and messages per commit on average. */
  commits: number;
  perCommit: number;
  /** With --hostile: the replies the hostile messages got. */
  hostile: string[];
  /** With notifications on: how many reached the sink, and when the last one did after the load ended. */
  notifications: { delivered: number; queued: number; drainSeconds: number | null } | null;
}

/** One server process, one load, the figures. With a sink: notifications on, sent there. */
async function measure(r: {
  url: string;
  dataDir: string;
  dnsAddress: string;
  client: pg.Client;
  messages: Buffer[];
  sink: Sink | null;
  dkimKeyFile: string;
  hostile: HostileMessage[];
  /** The embedded PostgreSQL's postmaster (null with TEST_DATABASE_URL): whose processes' CPU is counted. */
  postmaster: number | null;
}): Promise<Run> {
  const port = await freePort();
  const httpPort = await freePort();
  const extraEnv = Object.fromEntries(
    (opts.env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
  const nodeArgs = opts.profile ? ['--cpu-prof', `--cpu-prof-dir=${opts.profile}`] : [];
  const notifyEnv = r.sink
    ? {
        NOTIFY_REQUESTER: 'true',
        OUTBOUND_SMTP_URL: `smtp://127.0.0.1:${r.sink.port}`,
        // signed as in production
        DKIM_PRIVATE_KEY_FILE: r.dkimKeyFile,
        DKIM_SELECTOR: 'mail',
      }
    : { NOTIFY_REQUESTER: 'false' };
  const server = spawn(process.execPath, [...nodeArgs, path.join(PROJECT_ROOT, 'bin', 'ticket-mx.js'), 'serve'], {
    env: {
      ...process.env,
      DATABASE_URL: r.url,
      DATABASE_SCHEMA: DEFAULT_SCHEMA,
      DATA_DIR: r.dataDir,
      MAIL_DOMAINS: 'flamecrm.ru',
      SMTP_HOST: '127.0.0.1',
      SMTP_PORT: String(port),
      HTTP_PORT: String(httpPort),
      // the comparison with Postfix: the whole pipeline, recording what enforce would refuse
      AUTH_POLICY: opts['vs-postfix'] ? 'monitor' : 'enforce',
      STAFF_SENDERS: '@flamecrm.ru',
      DNS_SERVERS: r.dnsAddress,
      // one client IP sending thousands of messages a second is what the per-IP limits stop
      SMTP_MAX_CONNECTIONS_PER_IP: '0',
      SMTP_MAX_MESSAGES_PER_IP_PER_MINUTE: '0',
      // 5,000 messages spread over 100 tickets in seconds is a load test, not a mail loop
      TICKET_MAX_MESSAGES_PER_HOUR: '0',
      // the replies come from staff: notifications (when on) go to the requesters only
      NOTIFY_STAFF_TO: '',
      ...notifyEnv,
      ...extraEnv,
    },
    stdio: ['ignore', opts.log ? openSync(opts.log, r.sink ? 'a' : 'w') : 'ignore', 'pipe'],
  });
  let serverErr = '';
  server.stderr!.on('data', (d: Buffer) => (serverErr += d));
  let exited = false;
  server.once('exit', () => (exited = true));
  await waitForPort(port, () => (exited ? serverErr || 'exited' : null));

  const count = async (sql: string) => (await r.client.query<{ n: number }>(sql)).rows[0]!.n;
  const before = await count('select count(*)::int as n from ticket_messages');
  const outboxBefore = await count('select count(*)::int as n from outbox');
  const sinkBefore = r.sink?.count ?? 0;
  const cpuBefore = {
    server: cpuSeconds([server.pid!]),
    serverSystem: cpuSeconds([server.pid!], 'system'),
    postgres: cpuSeconds(postgresPids(r.postmaster)),
    load: process.cpuUsage(),
  };
  const commitsBefore = await eventLoopDelay(httpPort); // prom-client resets its event-loop histogram on every scrape
  const started = performance.now();
  const [result, hostile] = await Promise.all([
    SMTP_SOURCE ? runSmtpSource(port) : runLoad(port, r.messages),
    runHostile(port, r.hostile),
  ]);
  const seconds = (performance.now() - started) / 1000;
  const loop = await eventLoopDelay(httpPort);
  const commits = loop.commits - commitsBefore.commits;
  const perCommit = commits ? (loop.committed - commitsBefore.committed) / commits : Number.NaN;
  const stored = (await count('select count(*)::int as n from ticket_messages')) - before;

  let notifications: Run['notifications'] = null;
  if (r.sink) {
    // the sender keeps up or falls behind: how long until the last notification of this load is out
    const queued = (await count('select count(*)::int as n from outbox')) - outboxBefore;
    const until = performance.now() + 120_000;
    while (r.sink.count - sinkBefore < queued && performance.now() < until) await new Promise((w) => setTimeout(w, 20));
    const delivered = r.sink.count - sinkBefore;
    notifications = {
      delivered,
      queued,
      drainSeconds: delivered >= queued ? (performance.now() - started) / 1000 - seconds : null,
    };
  }
  const peakRss = readPeakRss(server.pid!);
  const load = process.cpuUsage(cpuBefore.load);
  const cpu = {
    server: cpuSeconds([server.pid!]) - cpuBefore.server,
    serverSystem: cpuSeconds([server.pid!], 'system') - cpuBefore.serverSystem,
    postgres: cpuSeconds(postgresPids(r.postmaster)) - cpuBefore.postgres,
    load: (load.user + load.system) / 1e6,
  };
  server.kill('SIGTERM');
  await new Promise((w) => server.once('exit', w));
  return { notify: !!r.sink, result, seconds, stored, peakRss, cpu, notifications, loop, hostile, commits, perCommit };
}

const rate = (messages: number, seconds: number) => (messages / seconds).toFixed(0);

interface PostfixRun {
  ok: number;
  errors: number;
  errorSamples: string[];
  seconds: number;
  /** Messages in Postfix's queue after the load (all of them held). */
  held: number;
  cpu: { postfix: number };
}

/** The same smtp-source load against the private Postfix; its queue is emptied for the next round. */
async function measurePostfix(postfix: PrivatePostfix): Promise<PostfixRun> {
  postfix.clear();
  const before = postfixCpuSeconds(postfix.masterPid());
  const started = performance.now();
  const result = await runSmtpSource(postfix.port);
  const seconds = (performance.now() - started) / 1000;
  const held = postfix.held();
  return { ...result, seconds, held, cpu: { postfix: postfixCpuSeconds(postfix.masterPid()) - before } };
}

/** Postfix's CPU: its live processes, and what its master has reaped of those that exited (smtpd's max_use). */
function postfixCpuSeconds(master: number): number {
  const fieldsOf = (pid: number) => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  };
  let ticks = 0;
  for (const pid of readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)) {
    try {
      const f = fieldsOf(pid);
      if (pid === master || Number(f[1]) === master) ticks += Number(f[11]) + Number(f[12]);
      if (pid === master) ticks += Number(f[13]) + Number(f[14]); // cutime + cstime
    } catch {
      // gone meanwhile
    }
  }
  return ticks / CLOCK_TICKS;
}

function reportVsPostfix(rounds: { postfix: PostfixRun; ticketMx: Run }[], embedded: boolean) {
  const cpus = os.cpus();
  console.log(
    `ticket-mx vs Postfix ${postconf('mail_version')}: the same load, smtp-source -m ${MESSAGES} -s ${CONCURRENCY} -l ${SIZE} ` +
      '(a new connection per message), alternating, Postfix first',
  );
  console.log(
    `  Postfix: a private instance on loopback, every message queued (fsync before 250) and held, nothing delivered`,
  );
  console.log(
    '  ticket-mx: AUTH_POLICY=monitor, SPF/DKIM/DMARC/ARC against a loopback DNS, parse, classify, authorize, reply ' +
      'text, one fsynced commit (synchronous_commit on) before each 250',
  );
  console.log(
    `machine: ${cpus.length} x ${cpus[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, ` +
      `PostgreSQL ${embedded ? 'embedded' : 'TEST_DATABASE_URL'}; load average before ${LOAD_BEFORE.toFixed(2)}`,
  );
  let postfixMessages = 0;
  let postfixSeconds = 0;
  let ticketMessages = 0;
  let ticketSeconds = 0;
  rounds.forEach(({ postfix: a, ticketMx: b }, i) => {
    postfixMessages += a.ok;
    postfixSeconds += a.seconds;
    ticketMessages += b.result.ok;
    ticketSeconds += b.seconds;
    const ratio = b.result.ok / b.seconds / (a.ok / a.seconds);
    console.log(
      `round ${i + 1}: Postfix ${rate(a.ok, a.seconds)} msg/s (${a.held} held, ${a.errors} errors${a.errorSamples.length ? `: ${a.errorSamples[0]}` : ''}; ` +
        `CPU ${a.cpu.postfix.toFixed(2)} s), ticket-mx ${rate(b.result.ok, b.seconds)} msg/s (${b.stored} rows, ` +
        `${b.result.errors} errors${b.result.errorSamples.length ? `: ${b.result.errorSamples[0]}` : ''}; CPU ${b.cpu.server.toFixed(2)} s, ` +
        `PostgreSQL ${b.cpu.postgres.toFixed(2)} s; peak RSS ${b.peakRss ? (b.peakRss / 1024).toFixed(0) : '?'} MB; ` +
        `event loop max ${b.loop.max} ms): ratio ${ratio.toFixed(2)}`,
    );
  });
  const ratio = ticketMessages / ticketSeconds / (postfixMessages / postfixSeconds);
  console.log(
    `all rounds: Postfix ${rate(postfixMessages, postfixSeconds)} msg/s, ticket-mx ${rate(ticketMessages, ticketSeconds)} msg/s, ` +
      `ratio ${ratio.toFixed(2)}`,
  );
}

function postconf(name: string): string {
  try {
    return execFileSync('postconf', ['-h', '-d', name], { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
}

function report(run: Run, labelled: boolean) {
  const { result, seconds, stored, peakRss, cpu } = run;
  const lat = result.latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    lat.length ? lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))]!.toFixed(1) : 'n/a';
  if (labelled)
    console.log(
      run.notify
        ? '\nnotifications ON (each reply queues one mail to its requester, sent to a local SMTP sink while the load runs):'
        : '\nnotifications OFF (NOTIFY_REQUESTER=false):',
    );
  console.log(
    `throughput: ${(result.ok / seconds).toFixed(0)} msg/s (${result.ok} accepted in ${seconds.toFixed(2)} s; ${stored} rows stored)`,
  );
  if (lat.length)
    console.log(
      `latency end of DATA -> 250: p50 ${pct(50)} ms, p95 ${pct(95)} ms, p99 ${pct(99)} ms, max ${lat.at(-1)!.toFixed(1)} ms`,
    );
  console.log(
    `errors: ${result.errors}${result.errorSamples.length ? ` (e.g. ${result.errorSamples.slice(0, 3).join(' | ')})` : ''}`,
  );
  if (run.notifications) {
    const n = run.notifications;
    console.log(
      `notifications: ${n.delivered} of ${n.queued} delivered to the sink; ${
        n.drainSeconds === null
          ? 'not all within 120 s after the load'
          : `the last ${n.drainSeconds.toFixed(2)} s after the load ended`
      }`,
    );
  }
  console.log(`server peak RSS: ${peakRss ? `${(peakRss / 1024).toFixed(0)} MB` : 'n/a'}`);
  console.log(`commits: ${run.commits} (${run.perCommit.toFixed(2)} messages a commit on average)`);
  console.log(
    `server event-loop delay: max ${run.loop.max} ms, p99 ${run.loop.p99} ms, p50 ${run.loop.p50} ms (monitorEventLoopDelay, 10 ms resolution)`,
  );
  if (run.hostile.length)
    console.log(
      `hostile: ${run.hostile.length} messages alongside, answered ${[
        ...run.hostile.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map<string, number>()),
      ]
        .map(([x, n]) => `${x} x${n}`)
        .join(', ')}`,
    );
  const loadCpu = SMTP_SOURCE ? 'n/a (smtp-source)' : cpu.load.toFixed(2);
  console.log(
    `CPU seconds: server ${cpu.server.toFixed(2)} (system ${cpu.serverSystem.toFixed(2)}; ${((cpu.server / Math.max(1, result.ok)) * 1000).toFixed(2)} ms a message), PostgreSQL ${cpu.postgres.toFixed(2)}, load generator${run.notify ? ' and sink' : ''} ${loadCpu} (wall ${seconds.toFixed(2)})`,
  );
}

interface Sink {
  port: number;
  count: number;
  close(): Promise<void>;
}

/** The receiving side of the notifications: an SMTP server that takes everything and counts it. */
async function startSink(): Promise<Sink> {
  const sink: Sink = { port: 0, count: 0, close: async () => {} };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    onData(stream, _session, callback) {
      stream.resume();
      stream.on('end', () => {
        sink.count++;
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  sink.port = (server.server.address() as AddressInfo).port;
  sink.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return sink;
}

interface LoadResult {
  ok: number;
  errors: number;
  errorSamples: string[];
  latencies: number[];
}

/** Dot-stuffed, with the final dot: what goes on the wire after 354. */
function onTheWire(message: Buffer): Buffer {
  return Buffer.from(`${message.toString('latin1').replace(/^\./gm, '..')}.\r\n`, 'latin1');
}

/** One SMTP session: greeting, EHLO, MAIL, RCPT, DATA, message, QUIT. Resolves with the latency. */
function session(port: number, i: number, wire: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    const ticket = FIRST_TICKET + (i % TICKETS);
    const message = wire;
    const steps = opts.pipelining
      ? [
          null,
          'EHLO bench.example\r\n',
          `MAIL FROM:<ivan@flamecrm.ru>\r\nRCPT TO:<support+TKT-${ticket}@flamecrm.ru>\r\nDATA\r\n`,
        ]
      : [
          null,
          'EHLO bench.example\r\n',
          'MAIL FROM:<ivan@flamecrm.ru>\r\n',
          `RCPT TO:<support+TKT-${ticket}@flamecrm.ru>\r\n`,
          'DATA\r\n',
        ];
    // the same replies either way: with pipelining, MAIL, RCPT and DATA are answered for one write
    const expected = [220, 250, 250, 250, 354, 250];
    let replyIndex = 0;
    let sentAt = 0;
    const fail = (why: string) => {
      socket.destroy();
      reject(new Error(why));
      return true;
    };
    socket.setTimeout(60_000, () => fail('timeout'));
    socket.on('error', (e) => fail(e.message));
    onReplies(socket, (line, code) => {
      if (code !== expected[replyIndex]) return fail(line);
      replyIndex++;
      if (replyIndex === expected.length) {
        const latency = performance.now() - sentAt;
        socket.end('QUIT\r\n');
        resolve(latency);
        return true;
      }
      if (code === 354) {
        sentAt = performance.now();
        socket.write(message);
        return false;
      }
      // with pipelining the MAIL, RCPT and DATA replies come for one write
      const next = steps[replyIndex];
      if (next) socket.write(next);
      return false;
    });
  });
}

/** Calls `onReply` with each complete reply's last line and its code until it returns true. */
function onReplies(socket: net.Socket, onReply: (line: string, code: number) => boolean): void {
  let buffer = '';
  let done = false;
  socket.on('data', (chunk) => {
    buffer += chunk.toString('latin1');
    for (let idx = buffer.indexOf('\r\n'); idx >= 0 && !done; idx = buffer.indexOf('\r\n')) {
      const line = buffer.slice(0, idx);
      buffer = buffer.slice(idx + 2);
      if (line[3] !== '-') done = onReply(line, Number(line.slice(0, 3)));
    }
  });
}

async function runLoad(port: number, messages: Buffer[]): Promise<LoadResult> {
  const wires = messages.map(onTheWire);
  const result: LoadResult = { ok: 0, errors: 0, errorSamples: [], latencies: [] };
  let next = 0;
  const worker = async () => {
    while (next < MESSAGES) {
      const i = next++;
      try {
        result.latencies.push(await session(port, i, wires[i]!));
        result.ok++;
      } catch (err) {
        result.errors++;
        if (result.errorSamples.length < 5) result.errorSamples.push((err as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return result;
}

async function runSmtpSource(port: number): Promise<LoadResult> {
  const bin = ['/usr/sbin/smtp-source', '/usr/bin/smtp-source'].find((p) => {
    try {
      execFileSync('test', ['-x', p]);
      return true;
    } catch {
      return false;
    }
  });
  if (!bin) throw new Error('smtp-source not found: apt-get install postfix (it ships smtp-source)');
  // smtp-source sends to one recipient; it measures throughput only (no per-message latency).
  const args = [
    '-m',
    String(MESSAGES),
    '-s',
    String(CONCURRENCY),
    '-l',
    String(SIZE),
    '-f',
    'ivan@flamecrm.ru',
    '-t',
    `support+TKT-${FIRST_TICKET}@flamecrm.ru`,
    `127.0.0.1:${port}`,
  ];
  const out = await new Promise<{ code: number; stderr: string }>((resolve) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    child.on('exit', (code) => resolve({ code: code ?? 1, stderr }));
  });
  const errors = out.code === 0 ? 0 : 1;
  // smtp-source gives every message a Message-ID of its own (<pid.session.msg@host>): each one is a
  // new row (the "rows stored" figure checks it); smtp-source exits non-zero on any reply but 250.
  return {
    ok: out.code === 0 ? MESSAGES : 0,
    errors,
    errorSamples: out.stderr ? [out.stderr.trim().split('\n')[0]!] : [],
    latencies: [],
  };
}

/** Issue 9's shapes from other networks, four sessions at a time; the replies, for the summary. */
async function runHostile(port: number, hostile: HostileMessage[]): Promise<string[]> {
  const replies: string[] = [];
  let next = 0;
  const worker = async (n: number) => {
    while (next < hostile.length) {
      const m = hostile[next++]!;
      replies.push(
        await deliverRaw(port, `127.0.${200 + n}.1`, m.to, m.bytes).catch((e: Error) => `error ${e.message}`),
      );
    }
  };
  await Promise.all(Array.from({ length: 4 }, (_, n) => worker(n)));
  return replies;
}

/** One transaction from `ip`; the reply to the final dot (or the refusal before it), as "550 5.6.0". */
function deliverRaw(port: number, ip: string, to: string, message: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: ip });
    const steps = ['EHLO hostile.example\r\n', 'MAIL FROM:<ivan@flamecrm.ru>\r\n', `RCPT TO:<${to}>\r\n`, 'DATA\r\n'];
    socket.setTimeout(120_000, () => socket.destroy(new Error('timeout')));
    socket.on('error', reject);
    onReplies(socket, (line, code) => {
      if (code === 354) {
        socket.write(onTheWire(message));
        return false;
      }
      const step = steps.shift();
      if (code >= 400 || !step) {
        socket.end('QUIT\r\n');
        resolve(line.slice(0, 9));
        return true;
      }
      socket.write(step);
      return false;
    });
  });
}

/** prom-client's event-loop delay since the last scrape, in milliseconds, and the commits so far. */
async function eventLoopDelay(
  httpPort: number,
): Promise<{ max: string; p99: string; p50: string; commits: number; committed: number }> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} ([0-9.e+-]+)`, 'm').exec(text)?.[1] ?? Number.NaN);
  const read = (name: string) => {
    const v = value(`ticketmx_nodejs_eventloop_lag_${name}_seconds`);
    return Number.isNaN(v) ? 'n/a' : (v * 1000).toFixed(1);
  };
  return {
    max: read('max'),
    p99: read('p99'),
    p50: read('p50'),
    commits: value('ticketmx_commit_messages_count'),
    committed: value('ticketmx_commit_messages_sum'),
  };
}

const CLOCK_TICKS = 100;

/** utime + stime (or stime alone) of these processes, in seconds (Linux /proc). */
function cpuSeconds(pids: number[], which: 'all' | 'system' = 'all'): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += (which === 'all' ? Number(fields[11]) : 0) + Number(fields[12]); // utime + stime
    } catch {
      // the process is gone; its time is lost to the count
    }
  }
  return ticks / CLOCK_TICKS;
}

/**
 * The PostgreSQL processes whose CPU is counted: with the embedded one, its postmaster and that
 * postmaster's children only (another PostgreSQL on the machine, such as a test run's, is not
 * ours); with TEST_DATABASE_URL, every process named postgres.
 */
function postgresPids(postmaster: number | null): number[] {
  const all = pidsNamed('postgres');
  if (postmaster === null) return all;
  const parent = (pid: number) => {
    try {
      // the parent pid is the field after the state, past the comm in parentheses
      return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    } catch {
      return -1;
    }
  };
  return all.filter((pid) => pid === postmaster || parent(pid) === postmaster);
}

function pidsNamed(name: string): number[] {
  try {
    return readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((d) => {
        try {
          return readFileSync(`/proc/${d}/comm`, 'utf8').trim() === name;
        } catch {
          return false;
        }
      })
      .map(Number);
  } catch {
    return [];
  }
}

function readPeakRss(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /VmHWM:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

async function waitForPort(port: number, failure: () => string | null) {
  for (let i = 0; i < 300; i++) {
    const why = failure();
    if (why) throw new Error(`the server did not start: ${why}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the server did not start within 30 s');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
