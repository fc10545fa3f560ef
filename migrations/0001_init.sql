-- 0001: tickets, the raw bytes of every accepted message, ticket messages, and accepted mail
-- that is not a ticket message. Never edit this file once landed; add 0002_… instead.

create sequence ticket_number_seq;

create table tickets (
  id          text primary key check (id ~ '^TKT-[0-9]{1,18}$'),
  subject     text not null,
  requester   text not null,
  status      text not null default 'open',
  created_at  timestamptz not null default now()
);

create table raw_messages (
  id           bigint generated always as identity primary key,
  sha256       bytea not null,
  size         integer not null,
  bytes        bytea not null,
  received_at  timestamptz not null default now()
);
create index raw_messages_sha256 on raw_messages (sha256);

create table ticket_messages (
  id               bigint generated always as identity primary key,
  ticket_id        text not null references tickets (id),
  raw_message_id   bigint not null references raw_messages (id),
  -- 'mid:<Message-ID>' or 'sha256:<hash of From, Date, Subject and body>'; a retry adds no row
  idempotency_key  text not null,
  author_address   text,
  author_name      text,
  author_role      text,
  subject          text,
  reply_text       text not null default '',
  full_text        text not null default '',
  removed_text     text not null default '',
  html             text,
  message_id       text,
  in_reply_to      text,
  "references"     text[] not null default '{}',
  sent_at          timestamptz,
  -- the SMTP envelope as we saw it
  client_ip        inet,
  client_hostname  text,
  helo             text,
  mail_from        text,
  rcpt_to          text[] not null,
  tls              boolean not null default false,
  tls_cipher       text,
  -- authentication verdicts (data) and the authorization decision (policy), filled by later steps
  auth_results     jsonb,
  auth_header      text,
  auth_verdict     text,
  auth_reason      text,
  received_at      timestamptz not null default now(),
  unique (ticket_id, idempotency_key)
);
create index ticket_messages_ticket on ticket_messages (ticket_id, received_at);
create index ticket_messages_raw on ticket_messages (raw_message_id);

-- Accepted but not a ticket message: postmaster/abuse mail now; auto-replies and bounces later.
create table unrouted_messages (
  id               bigint generated always as identity primary key,
  raw_message_id   bigint not null references raw_messages (id),
  recipient        text not null,
  ticket_id        text references tickets (id),
  reason           text not null,
  idempotency_key  text not null,
  from_address     text,
  subject          text,
  message_id       text,
  client_ip        inet,
  helo             text,
  mail_from        text,
  received_at      timestamptz not null default now(),
  unique (recipient, idempotency_key)
);
create index unrouted_messages_raw on unrouted_messages (raw_message_id);
