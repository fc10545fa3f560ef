-- 0006: the Idempotency-Key of POST /v1/tickets. A CRM that retries a create it got no answer to
-- (a timeout, a 503 while the commit may have happened) gives the same key and gets the ticket
-- the first request made, not a second ticket and a second staff notification. Written in the
-- transaction that creates the ticket. No foreign key to tickets: it may be the CRM's view.
create table api_requests (
  idempotency_key  text primary key,
  ticket_id        text not null,
  message_id       bigint,
  created_at       timestamptz not null default now()
);
