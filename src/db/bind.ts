// Statements whose large binary parameters go to PostgreSQL's socket as they are: pg copies every
// parameter into one Bind message (for a 25 MB message and its decoded attachments, another 44 MB),
// and a parameter made of several buffers would have to be concatenated first (44 MB more). Here
// the Bind message is written in pieces, the large buffers by reference (the socket holds them
// until written), so a message's bytes exist once in the main thread however large they are.
// Everything else of the query (parse, describe, execute, sync, results, errors) is pg's own.
// pg is pinned: the test in test/integration/bind.test.ts compares our Bind with pg's, byte for byte.
import pg from 'pg';
import { type Db, isPool, withClient } from './pool.js';

/** One binary parameter made of several buffers, sent back to back as one value, never concatenated. */
export class Pieces {
  readonly length: number;
  constructor(readonly parts: readonly Buffer[]) {
    this.length = parts.reduce((n, p) => n + p.length, 0);
  }
}

export type Param = string | number | boolean | null | Buffer | Pieces;

/** Up to this size a binary parameter is copied into the Bind message; larger ones are written by reference. */
const BY_REFERENCE = 64 * 1024;

interface PgConnection {
  bind(config: BindConfig): void;
  _send(buffer: Buffer): boolean;
}

interface BindConfig {
  portal?: string;
  statement?: string;
  values?: Param[];
  binary?: boolean;
}

/** pg's Query with its Bind message written by writeBind. */
export class PiecewiseQuery extends pg.Query {
  prepare(connection: PgConnection): void {
    const own = Object.hasOwn(connection, 'bind');
    const bind = connection.bind;
    connection.bind = (config) => writeBind(connection, config);
    try {
      (pg.Query.prototype as unknown as { prepare(c: PgConnection): void }).prepare.call(this, connection);
    } finally {
      if (own) connection.bind = bind;
      else delete (connection as Partial<PgConnection>).bind;
    }
  }
}

/**
 * Runs a named statement whose values may hold large Buffers and Pieces (sent in binary format);
 * strings and numbers go as text, as pg sends them. On a pool, on a connection of its own.
 */
export async function queryPieces<R extends pg.QueryResultRow>(
  db: Db,
  config: { name: string; text: string; values: Param[] },
): Promise<pg.QueryResult<R>> {
  if (isPool(db))
    return withClient(db, (client, discard) =>
      queryPieces<R>(client, config).catch((err: Error & { code?: string }) => {
        if (!err.code) discard(err); // failed under us (no SQLSTATE): not given back
        throw err;
      }),
    );
  return new Promise((resolve, reject) => {
    const query = new PiecewiseQuery(config as pg.QueryConfig, (err, result) =>
      err ? reject(err) : resolve(result as unknown as pg.QueryResult<R>),
    );
    db.query(query as unknown as pg.QueryConfig);
  });
}

/**
 * The Bind message (PostgreSQL protocol, 55.7): 'B', its length, portal, statement, a format code
 * per parameter, the parameters (length-prefixed; -1 for null), and the one result format code.
 * Small parts are gathered into one buffer; large binary values are sent by reference.
 */
export function writeBind(connection: Pick<PgConnection, '_send'>, config: BindConfig): void {
  const values = config.values ?? [];
  const out: Buffer[] = [];
  let small: Buffer[] = [];
  const flushSmall = () => {
    if (small.length) out.push(small.length === 1 ? small[0]! : Buffer.concat(small));
    small = [];
  };
  const int16 = (n: number) => {
    const b = Buffer.allocUnsafe(2);
    b.writeInt16BE(n);
    small.push(b);
  };
  const int32 = (n: number) => {
    const b = Buffer.allocUnsafe(4);
    b.writeInt32BE(n);
    small.push(b);
  };
  const bytes = (b: Buffer) => {
    if (b.length <= BY_REFERENCE) return void small.push(b);
    flushSmall();
    out.push(b);
  };
  const head = Buffer.from([0x42, 0, 0, 0, 0]); // 'B' and the length, filled in below
  out.push(head);
  for (const name of [config.portal ?? '', config.statement ?? '']) small.push(Buffer.from(`${name}\0`, 'utf8'));
  int16(values.length);
  for (const v of values) int16(v instanceof Buffer || v instanceof Pieces ? 1 : 0);
  int16(values.length);
  for (const v of values) {
    if (v === null || v === undefined) {
      int32(-1);
    } else if (v instanceof Buffer) {
      int32(v.length);
      bytes(v);
    } else if (v instanceof Pieces) {
      int32(v.length);
      for (const p of v.parts) bytes(p);
    } else {
      const text = Buffer.from(String(v), 'utf8');
      int32(text.length);
      bytes(text);
    }
  }
  int16(1); // one result format code for all columns
  int16(config.binary ? 1 : 0);
  flushSmall();
  head.writeInt32BE(out.reduce((n, b) => n + b.length, 0) - 1, 1);
  for (const b of out) connection._send(b);
}
