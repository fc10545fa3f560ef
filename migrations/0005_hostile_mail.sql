-- 0005: bytes of unrouted mail
-- (postmaster/abuse mail, auto-replies, bounces: stored without any authentication) per client
-- network per day, so that one network cannot fill the database. A table rather than memory:
-- several instances share one database, and the budget is theirs together. And the refusals of
-- mail to a ticket, for `ticket show`.

create table unrouted_budget (
  network  text not null,              -- 192.0.2.0/24, 2001:db8:1::/48 (src/smtp/limits.ts networkKey)
  day      date not null default current_date,
  bytes    bigint not null default 0,
  primary key (network, day)
);
create index unrouted_budget_day on unrouted_budget (day);

-- Why mail to a ticket was refused at DATA (550 and the like): what `ticket show` prints beside
-- the messages, so that "my reply never arrived" has an answer without the logs. Nothing of the
-- message itself is kept; a ticket records at most 20 refusals an hour (queries.ts), so a flood
-- of refused mail cannot fill the table. No foreign key: `tickets` may be the CRM's view (0002).
create table refused_messages (
  id            bigint generated always as identity primary key,
  ticket_id     text not null,
  refused_at    timestamptz not null default now(),
  code          text not null,                -- the log code: DATA_AUTH_REJECTED, DATA_DUPLICATE_HEADER, …
  reply         text not null,                -- the reply sent: 550 5.7.26 Message not authenticated: …
  reason        text,                         -- the authorization finding, when there is one
  from_address  text,
  message_id    text,
  client_ip     inet
);
create index refused_messages_ticket on refused_messages (ticket_id, refused_at);
