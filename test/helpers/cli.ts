// Runs the built `ticket-mx` command and swaks as child processes, the way a person would.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../../src/paths.js';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const BIN = path.join(PROJECT_ROOT, 'bin', 'ticket-mx.js');

/** The environment a person's shell would have, minus anything of ours that could leak in. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8' };
  return { ...env, ...extra };
}

export function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return run(process.execPath, [BIN, ...args], env);
}

export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = cleanEnv()): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, cwd: PROJECT_ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err
        ? typeof (err as { code?: unknown }).code === 'number'
          ? (err as { code: number }).code
          : 1
        : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Like runCli, with `input` written to the command's standard input. */
export function runCliWithInput(args: string[], env: NodeJS.ProcessEnv, input: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, cwd: PROJECT_ROOT, timeout: 60_000 });
    let stdout = '';
    let stderr = '';
    // no character split between two chunks
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(input);
  });
}

export function spawnCli(args: string[], env: NodeJS.ProcessEnv): ChildProcess & { output: () => string } {
  const child = spawn(process.execPath, [BIN, ...args], { env, cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d));
  child.stderr!.on('data', (d: Buffer) => (output += d));
  return Object.assign(child, { output: () => output });
}

export async function swaks(args: string[]): Promise<Run> {
  return run('swaks', ['--silent', '1', ...args]);
}

/** `ticket-mx serve` as systemd would run it: stdout and stderr into a file, which survives a kill -9. */
export interface ServeProcess {
  child: ChildProcess;
  /** Every JSON log line written so far (across restarts, when they share the file). */
  logs(): Record<string, unknown>[];
  /** The whole file: the banner and messages on stderr too. */
  text(): string;
  /** Resolves with the first log line with `code` (after `from` lines), or rejects after `ms`. */
  waitFor(code: string, ms?: number, from?: number): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startServe(env: NodeJS.ProcessEnv, logFile: string, cwd = PROJECT_ROOT): ServeProcess {
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, [BIN, 'serve'], { env, cwd, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const text = () => fs.readFileSync(logFile, 'utf8');
  const logs = () =>
    text()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const waitFor = async (code: string, ms = 60_000, from = 0) => {
    const until = Date.now() + ms;
    for (;;) {
      const line = logs()
        .slice(from)
        .find((l) => l.code === code);
      if (line) return line;
      if (Date.now() > until) throw new Error(`no ${code} within ${ms} ms; the log:\n${text().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return { child, logs, text, waitFor, exited };
}

/** Resolves true when the process is gone within `ms`. */
export async function gone(pid: number, ms = 30_000): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The pid in DATA_DIR/pg/postmaster.pid, or null without one. */
export function postmasterPid(dataDir: string): number | null {
  try {
    return Number(fs.readFileSync(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]) || null;
  } catch {
    return null;
  }
}
