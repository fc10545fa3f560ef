// The PostgreSQL pool with the timeouts pg leaves unset (connect waits forever by default,
// query_timeout does not cancel server-side), and withTransaction: the one way to write.
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
  pool.on('error', (err) => options.log?.warn({ code: 'DB_IDLE_CLIENT_ERROR', err: err.message }, 'idle PostgreSQL connection failed'));
  return pool;
}

export async function withTransaction<T>(pool: Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // A checked-out client has no error listener of its own; a server crash mid-query would be fatal.
  const onError = () => {};
  client.on('error', onError);
  let broken: Error | undefined;
  try {
    await client.query('begin');
    const result = await fn(client);
    await client.query('commit');
    return result;
  } catch (err) {
    broken = err as Error;
    await client.query('rollback').catch(() => {});
    throw err;
  } finally {
    client.off('error', onError);
    // A client that failed is not trusted again: pass the error so the pool destroys it.
    client.release(broken && !isQueryError(broken) ? broken : undefined);
  }
}

/** An error PostgreSQL answered (constraint, syntax) leaves the connection usable; anything else does not. */
function isQueryError(err: Error): boolean {
  const code = (err as Error & { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !/^(08|57P)/.test(code);
}
