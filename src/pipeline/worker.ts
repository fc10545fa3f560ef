// A worker thread of the pipeline pool (pool.ts): runs the steps of one message per task. DNS and
// the ticket lookups are asked of the main thread over the task's port, which keeps the resolver's
// cache and the database pool; the raw bytes arrive and leave transferred, not copied.
import fs from 'node:fs';
import type { MessagePort } from 'node:worker_threads';
import { move, transferableSymbol, valueSymbol, workerData } from 'piscina';
import type { Envelope } from '../db/queries.js';
import type { Resolver } from '../mail/dns.js';
import { analyse, type PipelineSettings, type PipelineWorld, type SupportTickets, sha256Of } from './steps.js';
import type { Analysis, Route } from './types.js';

export interface Task {
  raw: Uint8Array;
  envelope: Envelope;
  routes: Route[];
  network: string;
  port: MessagePort;
}

export interface TaskResult {
  analysis: Analysis;
  raw: Uint8Array;
  sha256: Uint8Array;
}

/** What the worker asks the main thread (answered by pool.ts). */
export type Request =
  | { id: number; op: 'dns'; name: string; rrtype: string }
  | { id: number; op: 'tickets'; refs: Parameters<PipelineWorld['findSupportTickets']>[0]; guessable: boolean }
  | { id: number; op: 'unrouted'; network: string };
export type Answer = { id: number; value?: unknown; error?: { message: string; code?: string } };
/** The first message of every task: which OS thread runs it and its CPU clock, for the watchdog. */
export interface Started {
  op: 'started';
  tid: number | null;
  cpuTicks: number | null;
}

export default async function run(task: Task): Promise<unknown> {
  const port = task.port;
  port.postMessage({ op: 'started', ...threadClock() } satisfies Started);
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  let next = 0;
  port.on('message', (answer: Answer) => {
    const waiter = pending.get(answer.id);
    if (!waiter) return;
    pending.delete(answer.id);
    if (answer.error) waiter.reject(Object.assign(new Error(answer.error.message), { code: answer.error.code }));
    else waiter.resolve(answer.value);
  });
  // biome-ignore lint/suspicious/noExplicitAny: a request's shape depends on its op
  const ask = <T>(request: any): Promise<T> =>
    new Promise((resolve, reject) => {
      const id = ++next;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      port.postMessage({ ...request, id });
    });
  const world: PipelineWorld = {
    resolver: ((name, rrtype) => ask({ op: 'dns', name, rrtype })) as Resolver,
    findSupportTickets: (refs, guessable) => ask<SupportTickets>({ op: 'tickets', refs, guessable }),
    unroutedBytesToday: (network) => ask<number>({ op: 'unrouted', network }),
  };
  const raw = Buffer.from(task.raw.buffer, task.raw.byteOffset, task.raw.byteLength);
  try {
    const settings = (workerData as { settings: PipelineSettings }).settings;
    const input = { raw, envelope: task.envelope, routes: task.routes, network: task.network };
    const analysis = await analyse(input, world, settings);
    const result: TaskResult = { analysis, raw, sha256: sha256Of(raw) };
    const transfer: ArrayBuffer[] = [ownBuffer(raw)];
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
 * The ArrayBuffer a Buffer may be moved with: its own, when it spans all of it. A view into Node's
 * shared 8 KB pool (small Buffers) must be copied instead, or the whole pool would go with it.
 */
function ownBuffer(b: Uint8Array): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  return new ArrayBuffer(0);
}

/** This thread's id and CPU time (user + system, in clock ticks) on Linux; null elsewhere. */
function threadClock(): Omit<Started, 'op'> {
  try {
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    return { tid, cpuTicks: cpuTicksOf(fs.readFileSync('/proc/thread-self/stat', 'utf8')) };
  } catch {
    return { tid: null, cpuTicks: null };
  }
}

/** utime + stime of a /proc/…/stat line. */
export function cpuTicksOf(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}
