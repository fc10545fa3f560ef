// The embedded PostgreSQL of the local profile as a service manager would run it: restarted on
// its own port when it dies (an error line, a metric), the same port from one start to the next,
// a stale postmaster.pid whose pid is alive again recognised, its own rotated log.
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEmbeddedPostgres } from '../../src/db/embedded.js';
import { createLogger } from '../../src/log.js';
import { createMetrics } from '../../src/metrics.js';
import { gone, postmasterPid } from '../helpers/cli.js';

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ticket-mx-embedded-'));
  await fs.chmod(tmp, 0o755); // as root, PostgreSQL runs as postgres and must reach it
});
afterAll(async () => {
  for (const dir of await fs.readdir(tmp).catch(() => [])) {
    const pid = postmasterPid(path.join(tmp, dir));
    if (pid) process.kill(pid, 'SIGQUIT');
  }
  await fs.rm(tmp, { recursive: true, force: true });
});

function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger(
    'debug',
    new Writable({
      write(chunk: Buffer, _e, done) {
        for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l));
        done();
      },
    }),
  );
  return { log, lines, codes: () => lines.map((l) => l.code) };
}

async function answers(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query('select 1 as one')).rows[0].one;
  } finally {
    await client.end();
  }
}

const dataDir = (name: string) => fs.mkdtemp(path.join(tmp, `${name}-`));

describe('the supervised embedded PostgreSQL', () => {
  it('is restarted on the same port when it dies, with an error line and a metric', async () => {
    const dir = await dataDir('restart');
    const { log, lines, codes } = capture();
    const postgres = await openEmbeddedPostgres(dir, { supervise: true, log });
    const metrics = createMetrics({ embedded: postgres });
    try {
      const first = postgres.pid;
      const port = postgres.port;
      process.kill(first, 'SIGKILL'); // a crash: backends and shared memory left behind for a moment
      await expect.poll(codes, { timeout: 60_000, interval: 100 }).toContain('DB_EMBEDDED_RESTARTED');
      expect(lines.find((l) => l.code === 'DB_EMBEDDED_DIED')).toMatchObject({ level: 'error', pid: first });
      expect(postgres.pid).not.toBe(first);
      expect(postgres.port).toBe(port);
      expect(postgres.up).toBe(true);
      expect(await answers(postgres.url)).toBe(1);
      const text = await metrics.registry.metrics();
      expect(text).toMatch(/^ticketmx_embedded_postgres_restarts_total 1$/m);
      expect(text).toMatch(/^ticketmx_embedded_postgres_up 1$/m);
    } finally {
      const pid = postgres.pid;
      await postgres.stop();
      expect(await gone(pid, 10_000)).toBe(true);
    }
    // stopping it is not a death: nothing restarts it
    expect(codes().filter((c) => c === 'DB_EMBEDDED_DIED')).toHaveLength(1);
  }, 120_000);

  it('keeps its port from one start to the next', async () => {
    const dir = await dataDir('port');
    const first = await openEmbeddedPostgres(dir);
    await first.stop();
    const second = await openEmbeddedPostgres(dir);
    try {
      expect(second.port).toBe(first.port);
      expect(await answers(second.url)).toBe(1);
    } finally {
      await second.stop();
    }
  }, 120_000);

  it('starts despite a stale postmaster.pid whose pid is alive again (pid reuse)', async () => {
    const dir = await dataDir('stale');
    const before = await openEmbeddedPostgres(dir);
    await before.stop();
    // after a reboot, or in a container, the old postmaster's pid now belongs to something else
    const other = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const pgdata = path.join(dir, 'pg');
      const stale = [
        other.pid,
        pgdata,
        Math.floor(Date.now() / 1000),
        before.port + 1,
        '',
        '127.0.0.1',
        '  0  0',
        'ready   ',
      ];
      await fs.writeFile(path.join(pgdata, 'postmaster.pid'), `${stale.join('\n')}\n`);
      const { log, lines } = capture();
      const after = await openEmbeddedPostgres(dir, { log });
      try {
        expect(await answers(after.url)).toBe(1);
        expect(lines.find((l) => l.code === 'DB_EMBEDDED_STALE_PID')).toMatchObject({ pid: other.pid });
      } finally {
        await after.stop();
      }
    } finally {
      other.kill();
    }
  }, 120_000);

  it('writes its own log, which PostgreSQL rotates (one file per weekday), nothing through our process', async () => {
    const dir = await dataDir('log');
    const postgres = await openEmbeddedPostgres(dir);
    try {
      const client = new pg.Client({ connectionString: postgres.url });
      await client.connect();
      const show = async (name: string) => (await client.query(`show ${name}`)).rows[0][name];
      expect(await show('logging_collector')).toBe('on');
      expect(await show('log_filename')).toBe('postgresql-%a.log');
      expect(await show('log_truncate_on_rotation')).toBe('on');
      await client.end();
      const day = new Date().toLocaleDateString('en-US', { weekday: 'short' });
      const file = path.join(dir, 'pg', 'log', `postgresql-${day}.log`);
      await expect.poll(() => fs.readFile(file, 'utf8').catch(() => '')).toContain('ready to accept connections');
      await expect(fs.access(path.join(dir, 'postgres.log'))).rejects.toThrow();
    } finally {
      await postgres.stop();
    }
  }, 120_000);
});
