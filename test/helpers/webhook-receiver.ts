// The CRM's webhook endpoint in the tests: a real HTTP server on a free loopback port that records
// every request with its raw body and answers as told: a status per request, or 'hang' (no answer,
// the connection left open until the sender gives up). It can be started on a given port, so that
// a receiver that was down comes back where ticket-mx expects it. Each request records how many
// were open (unanswered, their connection not yet closed) when it arrived, itself included.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** Requests open when this one arrived, itself included. */
  open: number;
}

export interface TestReceiver {
  port: number;
  /** http://127.0.0.1:<port>/api/support/process-email */
  url: string;
  received: ReceivedRequest[];
  /** What the n-th request (0-based) gets; default 204. */
  answer: (n: number) => number | 'hang';
  /** Resolves once at least n requests have arrived. */
  waitFor(n: number, timeoutMs?: number): Promise<ReceivedRequest[]>;
  close(): Promise<void>;
}

export async function startReceiver(port = 0): Promise<TestReceiver> {
  const received: ReceivedRequest[] = [];
  const open = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    open.add(res);
    res.on('close', () => open.delete(res));
    req.on('end', () => {
      const n = received.length;
      received.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
        open: open.size,
      });
      const answer = receiver.answer(n);
      if (answer === 'hang') return;
      res.writeHead(answer, { 'content-type': 'text/plain' }).end(answer >= 300 ? `not now (${answer})` : '');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  const receiver: TestReceiver = {
    port: actual,
    url: `http://127.0.0.1:${actual}/api/support/process-email`,
    received,
    answer: () => 204,
    async waitFor(n, timeoutMs = 20_000) {
      await expect.poll(() => received.length, { timeout: timeoutMs, interval: 25 }).toBeGreaterThanOrEqual(n);
      return received;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return receiver;
}
