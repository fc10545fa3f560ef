// GET /healthz (PostgreSQL reachable?) and GET /metrics (Prometheus) on HTTP_PORT.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Pool } from './db/pool.js';
import { ping } from './db/queries.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { withDeadline } from './smtp/deadline.js';

export interface RunningHttp {
  port: number;
  close(): Promise<void>;
}

export async function startHttpServer(opts: {
  host: string;
  port: number;
  pool: Pool;
  metrics: Metrics;
  log: Logger;
}): Promise<RunningHttp> {
  const server = http.createServer((req, res) => {
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    if (url === '/healthz') {
      withDeadline(ping(opts.pool), 2_000, 'health check').then(
        () => send(200, 'application/json', `${JSON.stringify({ status: 'ok', database: 'ok' })}\n`),
        (err: Error) =>
          send(503, 'application/json', `${JSON.stringify({ status: 'unavailable', database: err.message })}\n`),
      );
      return;
    }
    if (url === '/metrics') {
      opts.metrics.registry.metrics().then(
        (body) => send(200, opts.metrics.registry.contentType, body),
        (err: Error) => send(500, 'text/plain', err.message),
      );
      return;
    }
    send(404, 'text/plain', 'not found: try /healthz or /metrics\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
