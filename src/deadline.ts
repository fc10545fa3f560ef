// Work that may stall (PostgreSQL, DNS) races a timer, and a temporary failure gets a stable tag:
// every SMTP hook answers within its deadline (if smtp-server's callback is never called the
// connection hangs forever), and the HTTP side tags its 503s and bounds its health check alike.

export class DeadlineExceeded extends Error {
  constructor(
    readonly what: string,
    readonly ms: number,
  ) {
    super(`${what} took longer than ${ms} ms`);
    this.name = 'DeadlineExceeded';
  }
}

export function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineExceeded(what, ms)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** A stable tag for a temporary failure, searchable in logs: DB_UNAVAILABLE, DISK_FULL, DEADLINE, INTERNAL. */
export function failureTag(err: unknown): string {
  if (err instanceof DeadlineExceeded) return 'DEADLINE';
  const e = err as { code?: string; message?: string };
  if (e?.code === '53100' || (e?.message && /No space left on device/i.test(e.message))) return 'DISK_FULL';
  if (e?.code && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN)$/.test(e.code))
    return 'DB_UNAVAILABLE';
  if (e?.code && /^(08|53|57|58)/.test(e.code)) return 'DB_UNAVAILABLE'; // connection, resources, operator intervention, system
  if (
    e?.message &&
    /timeout exceeded when trying to connect|Connection terminated|connect ECONNREFUSED|Client has encountered a connection error/i.test(
      e.message,
    )
  )
    return 'DB_UNAVAILABLE';
  // a lock held elsewhere longer than store_messages waits for it (lock_timeout, migration 0008)
  if (e?.code === '55P03') return 'DB_LOCKED';
  if (e?.code && /^[0-9A-Z]{5}$/.test(e.code)) return 'DB_ERROR';
  return 'INTERNAL';
}
