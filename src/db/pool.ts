// The PostgreSQL pool with the timeouts pg leaves unset (connect waits forever by default,
// query_timeout does not cancel server-side), and withTransaction for writes of several statements.
// A message over SMTP is still one statement (store_message_with_outbox).
import pg from 'pg';
import type { Logger } from '../log.js';

export type Pool = pg.Pool;
export type Db = pg.Pool | pg.PoolClient;

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
 * Runs fn inside BEGIN … COMMIT on one client of the pool; any error rolls back and is rethrown.
 * What fn writes (outbox rows included) becomes visible, and NOTIFY is delivered, only on commit.
 */
export async function withTransaction<T>(pool: Pool, fn: (tx: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // a checked-out client has no error listener of the pool's: without one a dropped connection kills us
  const onError = () => {};
  client.on('error', onError);
  let broken: Error | undefined;
  try {
    await client.query('begin');
    const result = await fn(client);
    await client.query('commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch((e: Error) => {
      broken = e; // not given back to the pool: destroyed
    });
    throw err;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}
