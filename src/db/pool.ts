// The PostgreSQL pool with the timeouts pg leaves unset (connect waits forever by default,
// query_timeout does not cancel server-side), withTransaction for writes of several statements,
// and withCancellation for a statement a deadline must be able to stop. A message over SMTP is
// still one statement (store_message_with_outbox).
import net from 'node:net';
import pg from 'pg';
import type { Logger } from '../log.js';

export type Pool = pg.Pool;
export type Db = pg.Pool | pg.PoolClient;

export const isPool = (db: Db): db is Pool => db instanceof pg.Pool;

export interface PoolOptions {
  connectionString: string;
  max: number;
  /** Cap on waiting for a free connection; past it the caller answers 451. */
  connectTimeoutMs?: number;
  statementTimeoutMs?: number;
  log?: Logger;
}

export function createPool(options: PoolOptions): Pool {
  const statementTimeout = options.statementTimeoutMs ?? 15_000;
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    idleTimeoutMillis: 30_000,
    application_name: 'ticket-mx',
    statement_timeout: statementTimeout,
    idle_in_transaction_session_timeout: statementTimeout * 2,
    // client-side backstop in case the server never answers (network partition)
    query_timeout: statementTimeout + 5_000,
    keepAlive: true,
  });
  // An idle client whose server went away emits here; without a listener the process dies.
  pool.on('error', (err) =>
    options.log?.warn({ code: 'DB_IDLE_CLIENT_ERROR', err: err.message }, 'idle PostgreSQL connection failed'),
  );
  return pool;
}

/**
 * Runs `fn` on a connection of its own, with the error listener a checked-out client needs; the
 * connection is given back afterwards, or destroyed when `fn` called `discard` (it may be broken,
 * or a cancel may still be on its way to it).
 */
export async function withClient<T>(
  pool: Pool,
  fn: (client: pg.PoolClient, discard: (why: Error | true) => void) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  // a checked-out client has no error listener of the pool's: without one a dropped connection kills us
  const onError = () => {};
  client.on('error', onError);
  let broken: Error | boolean = false;
  try {
    return await fn(client, (why) => {
      broken = why;
    });
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

/**
 * Runs `fn` on a connection of its own. When `signal` aborts (a deadline), the statement running on
 * it is cancelled at once, and the connection is discarded rather than given back, so that a cancel
 * arriving late cannot hit the next statement run on it. `fn` still settles with what the server
 * did: cancelled, or committed before the cancel could act (the caller logs that late commit).
 */
export async function withCancellation<T>(pool: Pool, signal: AbortSignal, fn: (db: Db) => Promise<T>): Promise<T> {
  signal.throwIfAborted();
  return withClient(pool, async (client, discard) => {
    signal.throwIfAborted(); // (while it waited for a connection)
    const cancel = () => {
      discard(true);
      cancelBackend(client);
    };
    signal.addEventListener('abort', cancel, { once: true });
    try {
      return await fn(client);
    } finally {
      signal.removeEventListener('abort', cancel);
    }
  });
}

/**
 * PostgreSQL's CancelRequest for whatever this connection is running: sent on a connection of its
 * own (as libpq's PQcancel does), so it needs no pool slot and no authentication, and it works
 * when the pool is exhausted. Best effort: statement_timeout remains the backstop.
 */
function cancelBackend(client: pg.PoolClient): void {
  const c = client as unknown as { processID?: number; secretKey?: number; host?: string; port?: number };
  if (!c.processID || c.secretKey === undefined || !c.port) return;
  const request = Buffer.alloc(16);
  request.writeInt32BE(16, 0);
  request.writeInt32BE(80877102, 4); // the CancelRequest code
  request.writeInt32BE(c.processID, 8);
  request.writeInt32BE(c.secretKey, 12);
  const host = c.host ?? 'localhost';
  const socket = host.startsWith('/') ? net.connect(`${host}/.s.PGSQL.${c.port}`) : net.connect(c.port, host);
  socket.setTimeout(5_000, () => socket.destroy());
  socket.on('error', () => {}); // nothing to do: the statement then ends at statement_timeout
  socket.on('connect', () => socket.end(request));
  socket.unref();
}

/**
 * Runs fn inside BEGIN … COMMIT on one client of the pool; any error rolls back and is rethrown.
 * What fn writes (outbox rows included) becomes visible, and NOTIFY is delivered, only on commit.
 */
export async function withTransaction<T>(pool: Pool, fn: (tx: pg.PoolClient) => Promise<T>): Promise<T> {
  return withClient(pool, async (client, discard) => {
    try {
      await client.query('begin');
      const result = await fn(client);
      await client.query('commit');
      return result;
    } catch (err) {
      await client.query('rollback').catch(discard); // a connection that cannot roll back is not given back
      throw err;
    }
  });
}
