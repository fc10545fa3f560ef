// The worker threads that run the pipeline's CPU-bound steps (piscina), and the main thread's side
// of each task: it answers the worker's ticket lookups (the database pool stays here), and a
// watchdog reads the worker thread's own CPU time, so that a message over its CPU budget is cut off
// (the thread is terminated and replaced) and refused as too complex. A task is given to piscina
// only with a thread free for it: the wait for one is here, bounded and fair between networks.
// Per message, two messages cross threads (the task, the result): each hand-off costs CPU on a
// loaded machine.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { addCount } from '../counts.js';
import type { Pool } from '../db/pool.js';
import { unroutedBytesToday } from '../db/queries.js';
import { hasOwnArrayBuffer } from '../mail/growing-buffer.js';
import { PROJECT_ROOT } from '../paths.js';
import { Overloaded } from './budget.js';
import type { PipelineInput } from './steps.js';
import type { Analysis } from './types.js';
import { type Answer, cpuTicksOf, type Request, type Task, type TaskResult, type WorkerData } from './worker.js';
import { supportTickets } from './world.js';

export interface PoolOptions {
  settings: WorkerData['settings'];
  threads: number;
  /** CPU a message may use in its worker, in milliseconds. */
  cpuLimitMs: number;
  /** Heap of one worker (V8 old generation); past it the worker dies and the message is refused. */
  maxHeapMb: number;
  /**
   * A thread left without a task this long exits (Infinity: never); threads start when a message
   * needs one. An idle worker holds its own V8 heap and the modules it loaded (about 45 MB).
   */
  idleMs: number;
  db: Pool;
}

export interface Analysed {
  analysis: Analysis;
  /** The raw bytes, back from the worker (transferred there and back). */
  raw: Buffer;
  sha256: Buffer;
}

/** Linux's clock tick (USER_HZ), what /proc/<pid>/task/<tid>/stat counts in. */
const TICK_MS = 10;
const WATCH_EVERY_MS = 50;

/** Tasks submitted at once at most (one a thread: PIPELINE_WORKERS is at most 256). */
const SLOTS = 4096;

/** A task waiting for a thread. */
interface ThreadWaiter {
  network: string;
  grant: () => void;
}

interface Running {
  slot: number;
  /** When the watchdog first saw the task started (its thread wrote its clock). */
  startedAt: number;
  abort: AbortController;
  exceeded: boolean;
}

export class PipelinePool {
  private readonly piscina: Piscina;
  private readonly running = new Set<Running>();
  private watchdog: NodeJS.Timeout | null = null;
  private readonly board = new Int32Array(new SharedArrayBuffer(SLOTS * 2 * 4));
  private readonly freeSlots = Array.from({ length: SLOTS }, (_, i) => SLOTS - 1 - i);
  /** Threads given a task; each network's tasks on threads or waiting for one; the waiting, oldest first. */
  private taken = 0;
  private readonly inPool = new Map<string, number>();
  private readonly waiters: ThreadWaiter[] = [];

  constructor(private readonly options: PoolOptions) {
    this.piscina = new Piscina({
      filename: workerFile(),
      minThreads: 0,
      maxThreads: options.threads,
      idleTimeout: options.idleMs,
      concurrentTasksPerWorker: 1,
      // the worker awaits the main thread's answers during a task: no blocking waits in it
      atomics: 'async',
      resourceLimits: { maxOldGenerationSizeMb: options.maxHeapMb },
      workerData: { settings: options.settings, clocks: this.board.buffer } satisfies WorkerData,
    });
    // a worker that dies (terminated by the watchdog, out of memory) is replaced by piscina
    this.piscina.on('error', () => {});
  }

  get threads(): number {
    return this.options.threads;
  }

  /**
   * Runs the steps of one message in a worker. The raw bytes are moved there (`input.raw` is
   * detached). Rejects with Overloaded when no thread is free by `waitUntil` (performance.now()).
   */
  async analyse(input: PipelineInput, signal?: AbortSignal, waitUntil?: number): Promise<Analysed> {
    const done = await this.thread(input.network, waitUntil, signal);
    try {
      // given up while it waited for its thread (the deadline): the thread goes to the next one
      signal?.throwIfAborted();
      return await this.run(input, signal);
    } finally {
      done();
    }
  }

  /**
   * A thread for one task, taken before piscina is given it. piscina's own queue has no bound and
   * serves the first come: threads + 1 messages that each run to the CPU limit kept every message
   * behind them there (after the budget had let them in, src/pipeline/budget.ts) until the DATA
   * deadline answered 451 [DEADLINE], which the sender's retry met again. Here the wait ends by the
   * caller's time with Overloaded (451 4.3.1), and a thread that comes free goes to the network
   * with the fewest tasks in the pool (on threads or waiting, the one that just finished still
   * counted, so that turns go round between networks), then to the oldest waiter.
   */
  private thread(network: string, waitUntil: number | undefined, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    addCount(this.inPool, network, 1);
    if (this.taken < this.options.threads && !this.waiters.length) return Promise.resolve(this.take(network));
    return new Promise((resolve, reject) => {
      const started = performance.now();
      const leave = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        return i >= 0;
      };
      const giveUp = (err: unknown) => {
        if (!leave()) return;
        addCount(this.inPool, network, -1);
        reject(err);
      };
      const waiter: ThreadWaiter = {
        network,
        grant: () => {
          leave();
          resolve(this.take(network));
        },
      };
      const onAbort = () => giveUp(signal!.reason);
      const timer =
        waitUntil === undefined
          ? null
          : setTimeout(
              () => {
                const waited = Math.round(performance.now() - started);
                const busy = `${this.taken} of ${this.options.threads} threads busy, ${this.waiters.length} waiting`;
                giveUp(new Overloaded(`no worker thread free within ${waited} ms (${busy})`));
              },
              Math.max(0, waitUntil - performance.now()),
            );
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private take(network: string): () => void {
    this.taken++;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.taken--;
      const next = this.next();
      addCount(this.inPool, network, -1);
      next?.grant();
    };
  }

  /** The waiter a freed thread goes to: of the network with the fewest tasks in the pool, the oldest. */
  private next(): ThreadWaiter | undefined {
    let best: ThreadWaiter | undefined;
    for (const w of this.waiters)
      if (!best || (this.inPool.get(w.network) ?? 0) < (this.inPool.get(best.network) ?? 0)) best = w;
    return best;
  }

  private async run(input: PipelineInput, signal?: AbortSignal): Promise<Analysed> {
    const slot = this.freeSlots.pop();
    if (slot === undefined) throw new Error('more pipeline tasks at once than the clock board holds');
    Atomics.store(this.board, slot * 2, 0);
    const { port1, port2 } = new MessageChannel();
    const task: Running = { slot, startedAt: 0, abort: new AbortController(), exceeded: false };
    const onAbort = () => task.abort.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    port1.on('message', (m: Request) => {
      this.answer(m).then((answer) => port1.postMessage(answer));
    });
    const raw = movable(input.raw);
    const payload: Task = {
      raw,
      envelope: input.envelope,
      routes: input.routes,
      network: input.network,
      dns: input.dns ?? [],
      ...(input.spf ? { spf: input.spf } : {}),
      port: port2,
      slot,
    };
    this.watch(task);
    try {
      const result = (await this.piscina.run(payload, {
        transferList: [raw.buffer as ArrayBuffer, port2],
        signal: task.abort.signal,
      })) as TaskResult;
      const cpuMs = this.cpuMsOf(task);
      if (cpuMs !== null) result.analysis.facts.cpuMs = cpuMs;
      return { analysis: revive(result.analysis), raw: asBuffer(result.raw), sha256: asBuffer(result.sha256) };
    } catch (err) {
      const budget = this.options.cpuLimitMs;
      if (task.exceeded) return this.tooComplex('cpu', budget, { cpuMs: this.cpuMsOf(task) ?? budget });
      if ((err as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY')
        return this.tooComplex('memory', this.options.maxHeapMb * 1024 * 1024, {});
      throw err;
    } finally {
      this.running.delete(task);
      this.freeSlots.push(slot);
      signal?.removeEventListener('abort', onAbort);
      port1.close();
    }
  }

  async close(): Promise<void> {
    if (this.watchdog) clearInterval(this.watchdog);
    await this.piscina.destroy();
  }

  private tooComplex(limit: 'cpu' | 'memory', budget: number, facts: { cpuMs?: number }): Analysed {
    const empty = Buffer.alloc(0);
    return { analysis: { kind: 'too-complex', limit, budget, facts }, raw: empty, sha256: empty };
  }

  /** The world the steps see, answered here on the main thread. */
  private async answer(request: Request): Promise<Answer> {
    try {
      switch (request.op) {
        case 'tickets':
          return { id: request.id, value: await supportTickets(this.options.db, request.refs, request.guessable) };
        case 'unrouted':
          return { id: request.id, value: await unroutedBytesToday(this.options.db, request.network) };
      }
    } catch (err) {
      const e = err as { message?: string; code?: string };
      return { id: request.id, error: { message: e.message ?? String(err), ...(e.code ? { code: e.code } : {}) } };
    }
  }

  private watch(task: Running): void {
    this.running.add(task);
    this.watchdog ??= setInterval(() => this.check(), WATCH_EVERY_MS).unref();
  }

  private check(): void {
    if (!this.running.size) {
      clearInterval(this.watchdog!);
      this.watchdog = null;
      return;
    }
    for (const task of this.running) {
      const used = this.cpuMsOf(task);
      if (used !== null && used > this.options.cpuLimitMs && !task.exceeded) {
        task.exceeded = true;
        task.abort.abort();
      }
    }
  }

  /**
   * CPU the task's thread used since the task started: its own user + system time on Linux, so
   * that waiting for DNS or a busy machine does not count against the message; elsewhere the
   * wall time since the watchdog saw it start. null before it started.
   */
  private cpuMsOf(task: Running): number | null {
    const tid = Atomics.load(this.board, task.slot * 2);
    if (tid === 0) return null;
    if (!task.startedAt) task.startedAt = performance.now();
    if (tid < 0) return Math.round(performance.now() - task.startedAt);
    try {
      const ticks = cpuTicksOf(fs.readFileSync(`/proc/${process.pid}/task/${tid}/stat`, 'utf8'));
      return (ticks - Atomics.load(this.board, task.slot * 2 + 1)) * TICK_MS;
    } catch {
      return null; // the thread is gone (terminated): what it used was counted before
    }
  }
}

/** The compiled worker: next to this file when built, in dist/ when the tests run from src/. */
function workerFile(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) return path.join(path.dirname(here), 'worker.js');
  const built = path.join(PROJECT_ROOT, 'dist', 'src', 'pipeline', 'worker.js');
  if (!fs.existsSync(built)) throw new Error(`${built} is missing: run npm run build`);
  return built;
}

/** A Buffer with an ArrayBuffer of its own, which can be moved to a worker without taking Node's shared pool. */
function movable(b: Buffer): Buffer {
  if (hasOwnArrayBuffer(b)) return b;
  const own = Buffer.allocUnsafeSlow(b.length);
  b.copy(own);
  return own;
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** Structured clone turns Buffers into Uint8Arrays: the attachment rows get theirs back. */
function revive(analysis: Analysis): Analysis {
  if (analysis.kind === 'store')
    for (const a of analysis.rows.attachments)
      Object.assign(a, { content: asBuffer(a.content), sha256: asBuffer(a.sha256) });
  return analysis;
}
