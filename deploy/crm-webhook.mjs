#!/usr/bin/env node
// An example receiver of ticket-mx's webhook (README "Webhook to the CRM"): it checks the signature
// over the raw body, answers 2xx only once the event is handled, and handles each event id once.
// Run: CRM_WEBHOOK_SECRET=… PORT=3000 node deploy/crm-webhook.mjs (no dependencies).
import crypto from 'node:crypto';
import http from 'node:http';

const secret = process.env.CRM_WEBHOOK_SECRET; // the same value as ticket-mx's
const handled = new Set(); // the CRM would keep event ids in its database (a unique column)

/** The request is ticket-mx's: HMAC-SHA256 over "<timestamp>.<raw body>", and a timestamp within 5 min. */
function verify(body, timestamp, signature) {
  if (!/^\d+$/.test(timestamp ?? '') || Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false;
  const expected = crypto.createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest();
  const given = Buffer.from(/^v1=([0-9a-f]{64})$/.exec(signature ?? '')?.[1] ?? '', 'hex');
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

const server = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = Buffer.concat(chunks); // verify these bytes, not a re-serialized JSON
  if (!verify(body, req.headers['x-ticketmx-timestamp'], req.headers['x-ticketmx-signature'])) {
    res.writeHead(401).end();
    return;
  }
  const event = JSON.parse(body.toString('utf8'));
  if (!handled.has(event.id)) {
    // the CRM's work goes here: store event.message under event.ticket.id, notify the agent, …
    const { id, from, text } = event.message;
    console.log(JSON.stringify({ event: event.id, ticket: event.ticket.id, message: id, from, text }));
    handled.add(event.id);
  }
  res.writeHead(204).end(); // any 2xx: delivered; anything else or no answer in time: sent again later
});
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => console.error('crm-webhook: listening'));
