// The RCPT-time ticket lookups (src/db/ticket-lookups.ts) when PostgreSQL is in trouble, against a
// real PostgreSQL and a pool set up as the service sets it (src/service.ts: waiting for a connection
// ends at half of HOOK_TIMEOUT_MS, so that the reply names the trouble, DB_UNAVAILABLE, rather
// than the deadline). A lookup queued behind a statement still waiting for a connection must not
// wait for that statement and then for its own: each RCPT answers with the precise tag, as each
// did when every lookup was its own statement (findTicket); and connections that stopped answering
// (a NAT or a failover forgot them) hold the lookups up once, for their query_timeout, not once
// each, one statement after another.
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TicketLookups } from '../../src/db/ticket-lookups.js';
import { failureTag, withDeadline } from '../../src/deadline.js';
import { createTestDatabase, insertTestTicket, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await insertTestTicket(db.pool, 'TKT-8101', 'client@example.ru');
});

afterAll(async () => {
  await db?.drop();
});

describe('ticket lookups with the pool exhausted by other work', () => {
  it('answer every lookup of a flood with DB_UNAVAILABLE within the deadline, then find tickets again', async () => {
    const hookTimeoutMs = 1_200;
    // as src/service.ts: connectTimeoutMs = min(5000, hook / 2)
    const pool = new pg.Pool({ connectionString: db.url, max: 1, connectionTimeoutMillis: hookTimeoutMs / 2 });
    try {
      const lookups = new TicketLookups(pool);
      const other = await pool.connect(); // the one connection, held by other work
      const started = performance.now();
      // more RCPTs at once than one statement takes (256), as rcpt-to.ts asks them
      const answers = await Promise.all(
        Array.from({ length: 300 }, () =>
          withDeadline(lookups.find('TKT-8101'), hookTimeoutMs, 'ticket lookup').then(
            () => 'found',
            (err: unknown) => failureTag(err),
          ),
        ),
      );
      const took = performance.now() - started;
      other.release();
      const tags: Record<string, number> = {};
      for (const t of answers) tags[t] = (tags[t] ?? 0) + 1;
      expect(tags).toEqual({ DB_UNAVAILABLE: 300 });
      expect(took).toBeLessThan(hookTimeoutMs);
      // the connection back: the next lookup finds its ticket
      expect((await withDeadline(lookups.find('TKT-8101'), hookTimeoutMs, 'ticket lookup'))?.id).toBe('TKT-8101');
    } finally {
      await pool.end();
    }
  });
});

describe('ticket lookups when the pooled connections stopped answering (a NAT or a failover forgot them)', () => {
  it('are answered again once those connections have timed out, not one statement of them after another', async () => {
    const hookTimeoutMs = 800;
    const queryTimeoutMs = 2_000; // as src/db/pool.ts: past the deadline (statement_timeout + 5 s)
    const upstream = new URL(db.url);
    // a TCP relay to PostgreSQL whose connections of the moment can be made silent, as a NAT that
    // forgot them does: nothing arrives and nothing is refused; new connections pass
    const pairs: Array<[net.Socket, net.Socket]> = [];
    const relay = net.createServer((client) => {
      const server = net.connect(Number(upstream.port || 5432), upstream.hostname);
      client.pipe(server).pipe(client);
      client.on('error', () => server.destroy());
      server.on('error', () => client.destroy());
      pairs.push([client, server]);
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    const relayed = new URL(db.url);
    relayed.hostname = '127.0.0.1';
    relayed.port = String((relay.address() as net.AddressInfo).port);
    const pool = new pg.Pool({
      connectionString: relayed.toString(),
      max: 4,
      connectionTimeoutMillis: hookTimeoutMs / 2,
      query_timeout: queryTimeoutMs,
    });
    pool.on('error', () => {});
    try {
      const lookups = new TicketLookups(pool);
      const ask = () =>
        withDeadline(lookups.find('TKT-8101'), hookTimeoutMs, 'ticket lookup').then(
          (t) => t?.id ?? 'none',
          (err: unknown) => failureTag(err),
        );
      // four idle connections in the pool
      await Promise.all(Array.from({ length: 4 }, () => pool.query('select pg_sleep(0.05)')));
      expect(pool.idleCount).toBe(4);
      for (const [client, server] of pairs) {
        client.unpipe(server);
        server.unpipe(client);
        client.pause();
        server.pause();
      }
      // RCPTs of sessions arriving one after another meanwhile: none can be answered from the silent
      // connections, and those that find no connection free wait for one (DB_UNAVAILABLE)
      const started = performance.now();
      const first: Array<Promise<string>> = [];
      for (let i = 0; i < 10; i++) {
        first.push(ask());
        await new Promise((r) => setTimeout(r, 100));
      }
      for (const tag of await Promise.all(first)) expect(['DEADLINE', 'DB_UNAVAILABLE']).toContain(tag);
      // by now every silent connection has met its query_timeout and been thrown away (each lookup
      // took one as it came): an RCPT gets its ticket on a new connection
      const recovered = queryTimeoutMs + 400 + 500;
      await new Promise((r) => setTimeout(r, Math.max(0, started + recovered - performance.now())));
      expect(await ask()).toBe('TKT-8101');
    } finally {
      for (const [client, server] of pairs) {
        client.destroy();
        server.destroy();
      }
      await pool.end();
      await new Promise((r) => relay.close(r));
    }
  }, 20_000);
});
