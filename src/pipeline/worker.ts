// A worker thread of the pipeline pool (pool.ts): runs the steps of one message per task. The DNS
// answers authentication needs come with the task, fetched on the main thread (src/mail/auth-dns.ts):
// a thread that waited for a slow sender's DNS held every other message behind it. Each thread
// keeps a resolver of its own (and cache) only for a question that fetch did not foresee; the ticket lookups of mail to the bare support@ and the unrouted
// budget are asked of the main thread, which keeps the database pool, over the task's port. The
// raw bytes arrive and leave transferred, not copied. Which OS thread runs a task, and its CPU clock
// at the start, go into a shared slot that the main thread's watchdog reads.
import fs from 'node:fs';
import type { MessagePort } from 'node:worker_threads';
import { move, transferableSymbol, valueSymbol, workerData } from 'piscina';
import type { Envelope } from '../db/queries.js';
import type { UnroutedSpent } from '../db/unrouted-budget.js';
import { type DnsRecording, replayResolver, type SpfResult } from '../mail/auth-dns.js';
import { createResolver, type Resolver } from '../mail/dns.js';
import { hasOwnArrayBuffer } from '../mail/growing-buffer.js';
import { analyse, type PipelineSettings, type PipelineWorld, type SupportTickets, sha256Of } from './steps.js';
import type { Analysis, Route } from './types.js';

export interface Task {
  raw: Uint8Array;
  envelope: Envelope;
  routes: Route[];
  network: string;
  /** The answers of the message's authentication lookups (src/mail/auth-dns.ts). */
  dns: DnsRecording;
  /** SPF's result on those answers, when it was found in time. */
  spf?: SpfResult;
  port: MessagePort;
  /** This task's slot in the clock board (pool.ts). */
  slot: number;
}

export interface TaskResult {
  analysis: Analysis;
  raw: Uint8Array;
  sha256: Uint8Array;
}

export interface WorkerData {
  settings: PipelineSettings & Pick<Config, 'dnsServers' | 'dnsTimeoutMs' | 'dnsCacheSeconds'>;
  /** Int32 pairs per slot: the OS thread id (−1 without /proc, 0 before the start) and its CPU ticks then. */
  clocks: SharedArrayBuffer;
}

type Config = import('../config.js').Config;

/** What the worker asks the main thread (answered by pool.ts). */
export type Request =
  | { id: number; op: 'tickets'; refs: Parameters<PipelineWorld['findSupportTickets']>[0]; guessable: boolean }
  | { id: number; op: 'unrouted'; network: string };
export type Answer = { id: number; value?: unknown; error?: { message: string; code?: string } };

let resolver: Resolver | null = null;

export default async function run(task: Task): Promise<unknown> {
  const data = workerData as WorkerData;
  const { settings } = data;
  resolver ??= createResolver({
    servers: settings.dnsServers.length ? settings.dnsServers : undefined,
    timeoutMs: settings.dnsTimeoutMs,
    cacheSeconds: settings.dnsCacheSeconds,
  });
  const clock = threadClock();
  const board = new Int32Array(data.clocks);
  Atomics.store(board, task.slot * 2 + 1, clock.cpuTicks);
  Atomics.store(board, task.slot * 2, clock.tid);

  const port = task.port;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  let next = 0;
  port.on('message', (answer: Answer) => {
    const waiter = pending.get(answer.id);
    if (!waiter) return;
    pending.delete(answer.id);
    if (answer.error) waiter.reject(Object.assign(new Error(answer.error.message), { code: answer.error.code }));
    else waiter.resolve(answer.value);
  });
  type Ask = Request extends infer R ? (R extends Request ? Omit<R, 'id'> : never) : never;
  const ask = <T>(request: Ask): Promise<T> =>
    new Promise((resolve, reject) => {
      const id = ++next;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      port.postMessage({ ...request, id });
    });
  const world: PipelineWorld = {
    resolver: replayResolver(task.dns, resolver),
    findSupportTickets: (refs, guessable) => ask<SupportTickets>({ op: 'tickets', refs, guessable }),
    unroutedBytesToday: (network) => ask<UnroutedSpent>({ op: 'unrouted', network }),
  };
  const raw = Buffer.from(task.raw.buffer, task.raw.byteOffset, task.raw.byteLength);
  try {
    const input = {
      raw,
      envelope: task.envelope,
      routes: task.routes,
      network: task.network,
      ...(task.spf ? { spf: task.spf } : {}),
    };
    const analysis = await analyse(input, world, settings);
    const result: TaskResult = { analysis, raw, sha256: sha256Of(raw) };
    // the raw bytes' ArrayBuffer came here moved: it goes back the same way
    const transfer: ArrayBuffer[] = [raw.buffer as ArrayBuffer];
    if (analysis.kind === 'store') for (const a of analysis.rows.attachments) transfer.push(ownBuffer(a.content));
    return move({
      [transferableSymbol]: transfer.filter((b, i, all) => b.byteLength > 0 && all.indexOf(b) === i),
      [valueSymbol]: result,
    } as never);
  } finally {
    port.close();
  }
}

/**
 * The ArrayBuffer a Buffer may be moved with: its own (growing-buffer.ts). A view into Node's
 * shared 8 KB pool (small Buffers) must be copied instead, or the whole pool would go with it.
 */
function ownBuffer(b: Uint8Array): ArrayBuffer {
  if (hasOwnArrayBuffer(b) && b.buffer instanceof ArrayBuffer) return b.buffer;
  return new ArrayBuffer(0);
}

/** This thread's id and CPU time (user + system, in clock ticks) on Linux; tid −1 elsewhere. */
function threadClock(): { tid: number; cpuTicks: number } {
  try {
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    return { tid, cpuTicks: cpuTicksOf(fs.readFileSync('/proc/thread-self/stat', 'utf8')) };
  } catch {
    return { tid: -1, cpuTicks: 0 };
  }
}

/** utime + stime of a /proc/…/stat line. */
export function cpuTicksOf(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}
