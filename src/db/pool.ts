// The PostgreSQL pool with the timeouts pg leaves unset (connect waits forever by default,
// query_timeout does not cancel server-side). Writes are single statements (store_message).
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

/** Runs `work` in one transaction on one client: committed when it resolves, rolled back when it throws. */
export async function withTransaction<T>(pool: Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const result = await work(client);
    await client.query('commit');
    return result;
  } catch (err) {
    await client.query('rollback').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
