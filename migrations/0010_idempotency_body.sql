-- 0010: what a request with an Idempotency-Key carried, so that the same key with another body is
-- refused (422 IDEMPOTENCY_KEY_REUSED) instead of answered with what the first request did: the
-- SHA-256 of the validated body, written in the transaction that acts on it. POST /v1/tickets keeps
-- it in api_requests (rows from before have none and are not checked); POST /v1/tickets/{id}/messages,
-- whose keys are per ticket, in api_answers. Never edit this file once landed.

alter table api_requests add column body_sha256 bytea;

create table api_answers (
  ticket_id        text not null,
  idempotency_key  text not null,
  body_sha256      bytea not null,
  message_id       bigint not null,
  created_at       timestamptz not null default now(),
  primary key (ticket_id, idempotency_key)
);
