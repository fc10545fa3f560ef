// `npm run bench:http`: the HTTP server (fastify: /healthz and the API) of a real ticket-mx in its own
// process against PostgreSQL (embedded unless TEST_DATABASE_URL is set; never DATABASE_URL). For
// each kind of request: requests/second, latency p50/p95/p99, errors, and the server's CPU seconds.
// `--bin` runs another build's bin/ticket-mx.js (e.g. one before fastify) for the routes it has.
// A benchmark, not a test: it asserts nothing.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { freePort, openEmbeddedPostgres } from '../src/db/embedded.js';
import { DEFAULT_SCHEMA, inSchema } from '../src/db/schema.js';
import { PROJECT_ROOT } from '../src/paths.js';

const { values: opts } = parseArgs({
  options: {
    requests: { type: 'string', default: '5000' },
    concurrency: { type: 'string', default: '10' },
    only: { type: 'string', multiple: true, default: [] },
    bin: { type: 'string', default: path.join(PROJECT_ROOT, 'bin', 'ticket-mx.js') },
    help: { type: 'boolean', short: 'h' },
  },
});

if (opts.help) {
  console.log(`Usage: npm run bench:http -- [options]
  --requests N     requests per kind (5000)
  --concurrency N  requests in flight at once, over keep-alive connections (10)
  --only NAME      only this kind (repeatable): ${Object.keys(KINDS()).join(', ')}
  --bin FILE       the ticket-mx to run (default: this build's bin/ticket-mx.js)`);
  process.exit(0);
}

const TOKEN = `tmx_bench_${'x'.repeat(40)}`;
const TICKET = 'TKT-800001';

interface Kind {
  method: string;
  path: string;
  body?: () => string;
  headers?: Record<string, string>;
  /** The status every answer should have. */
  status: number;
}

function KINDS(): Record<string, Kind> {
  let n = 0;
  const json = { 'content-type': 'application/json' };
  return {
    healthz: { method: 'GET', path: '/healthz', status: 200 },
    'ticket-get': { method: 'GET', path: `/v1/tickets/${TICKET}`, status: 200 },
    'messages-poll': { method: 'GET', path: `/v1/tickets/${TICKET}/messages?after=0&limit=10`, status: 200 },
    'wrong-token': {
      method: 'GET',
      path: `/v1/tickets/${TICKET}`,
      headers: { authorization: 'Bearer wrong' },
      status: 401,
    },
    'answer-post': {
      method: 'POST',
      path: `/v1/tickets/${TICKET}/messages`,
      headers: json,
      body: () => JSON.stringify({ author: { address: 'anna@flamecrm.ru' }, text: `Answer ${++n} from the CRM.` }),
      status: 201,
    },
    'ticket-post': {
      method: 'POST',
      path: '/v1/tickets',
      headers: json,
      body: () =>
        JSON.stringify({
          subject: `Bench ticket ${++n}`,
          requester: 'client@example.ru',
          message: { text: 'It does not print.' },
        }),
      status: 201,
    },
  };
}

function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

async function waitForHttp(base: string, exited: () => string | null) {
  for (let i = 0; i < 600; i++) {
    const why = exited();
    if (why) throw new Error(`ticket-mx exited: ${why}`);
    if (
      await fetch(`${base}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('ticket-mx did not answer /healthz');
}

async function run(base: string, kind: Kind, requests: number, concurrency: number) {
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const worker = async () => {
    while (next < requests) {
      next++;
      const t = performance.now();
      try {
        const res = await fetch(`${base}${kind.path}`, {
          method: kind.method,
          headers: { authorization: `Bearer ${TOKEN}`, ...kind.headers },
          body: kind.body?.(),
        });
        await res.arrayBuffer();
        if (res.status !== kind.status) errors++;
      } catch {
        errors++;
      }
      latencies.push(performance.now() - t);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { seconds: (performance.now() - started) / 1000, latencies: latencies.sort((a, b) => a - b), errors };
}

async function main() {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'ticket-mx-bench-http-'));
  const embedded = process.env.TEST_DATABASE_URL ? null : await openEmbeddedPostgres(dataDir);
  const url = inSchema(process.env.TEST_DATABASE_URL ?? embedded!.url, DEFAULT_SCHEMA);
  const port = await freePort();
  const server = spawn(process.execPath, [opts.bin, 'serve'], {
    env: {
      ...process.env,
      DATABASE_URL: url,
      DATABASE_SCHEMA: DEFAULT_SCHEMA,
      DATA_DIR: dataDir,
      MAIL_DOMAINS: 'flamecrm.ru',
      SMTP_HOST: '127.0.0.1',
      SMTP_PORT: '0',
      HTTP_PORT: String(port),
      API_TOKEN: TOKEN,
      LOG_LEVEL: 'warn',
      TICKET_MAX_MESSAGES_PER_HOUR: '0',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let serverErr = '';
  server.stderr!.on('data', (d: Buffer) => (serverErr += d));
  let exited = false;
  server.once('exit', () => (exited = true));
  const base = `http://127.0.0.1:${port}`;
  // the server migrates its database itself (another build may have other migrations)
  await waitForHttp(base, () => (exited ? serverErr || 'exited' : null));
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(
    `insert into tickets (id, subject, requester) values ($1, 'Bench ticket', 'client@example.ru')
     on conflict do nothing`,
    [TICKET],
  );

  const kinds = Object.entries(KINDS()).filter(([name]) => !opts.only.length || opts.only.includes(name));
  const requests = Number(opts.requests);
  const concurrency = Number(opts.concurrency);
  // the ticket the GET kinds read has ten messages (answers posted through the API)
  if (kinds.some(([name]) => name === 'ticket-get' || name === 'messages-poll'))
    await run(base, KINDS()['answer-post']!, 10, 1);
  const cpus = os.cpus();
  console.log(
    `machine: ${cpus.length} x ${cpus[0]?.model ?? '?'}, node ${process.version}; ${requests} requests per kind, ` +
      `${concurrency} in flight; server ${path.relative(process.cwd(), opts.bin) || opts.bin}`,
  );
  console.log('| kind | req/s | p50 ms | p95 ms | p99 ms | errors | server CPU s |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const [name, kind] of kinds) {
    await run(base, kind, Math.min(200, requests), concurrency); // warm-up
    const cpu = cpuSeconds(server.pid!);
    const r = await run(base, kind, requests, concurrency);
    const pct = (p: number) =>
      r.latencies[Math.min(r.latencies.length - 1, Math.floor((p / 100) * r.latencies.length))]!;
    console.log(
      `| ${name} | ${Math.round(requests / r.seconds)} | ${pct(50).toFixed(2)} | ${pct(95).toFixed(2)} | ` +
        `${pct(99).toFixed(2)} | ${r.errors} | ${(cpuSeconds(server.pid!) - cpu).toFixed(2)} |`,
    );
  }
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))?.[1];
  console.log(`server peak RSS: ${hwm ? Math.round(Number(hwm) / 1024) : '?'} MB`);
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  await client.end();
  await embedded?.stop();
  await fs.rm(dataDir, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
