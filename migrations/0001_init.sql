-- 0001: tickets, the raw bytes of every accepted message, ticket messages, accepted mail that is
-- not a ticket message, attachments, the Message-IDs of our notifications (threading), and
-- store_message. Never edit this file once landed; add 0002_… instead.

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

-- Accepted but not a ticket message: postmaster/abuse mail, auto-replies, bounces, loops.
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

create table notification_messages (
  message_id  text primary key,            -- as sent, with angle brackets: <notify-…@flamecrm.ru>
  ticket_id   text not null references tickets (id),
  sent_at     timestamptz not null default now()
);
create index notification_messages_ticket on notification_messages (ticket_id);

create table attachments (
  id              bigint generated always as identity primary key,
  raw_message_id  bigint not null references raw_messages (id),
  position        integer not null,
  filename        text,
  content_type    text not null,
  size            integer not null,
  sha256          bytea not null,
  content_id      text,
  inline          boolean not null default false,
  bytes           bytea not null,
  unique (raw_message_id, position)
);

-- Everything of one accepted message in one call (one round trip, one transaction): the raw
-- bytes, a row per ticket and per unrouted recipient, the attachments (metadata in p_attachments,
-- contents in p_attachment_bytes, same order), and NOTIFY for the CRM (delivered on commit).
-- Idempotent: rows whose (ticket, key) or (recipient, key) exist are skipped; when every row
-- existed, the raw copy is dropped again and the first copy's id is returned. p_max_per_hour:
-- when a ticket would get a new row although it already has that many from the last hour,
-- nothing is stored and rate_limited_ticket names it (a loop breaker).
create function store_message(
  p_sha256 bytea, p_bytes bytea, p_ticket_messages jsonb, p_unrouted jsonb,
  p_attachments jsonb, p_attachment_bytes bytea[], p_max_per_hour integer)
returns table (raw_message_id bigint, stored integer, existing_raw_message_id bigint, rate_limited_ticket text)
language plpgsql as $$
declare
  v_raw bigint;
  v_tickets integer;
  v_unrouted integer;
  v_limited text;
begin
  if p_max_per_hour > 0 then
    select r.ticket_id into v_limited
      from jsonb_to_recordset(p_ticket_messages) as r(ticket_id text, idempotency_key text)
     where not exists (select 1 from ticket_messages tm where tm.ticket_id = r.ticket_id and tm.idempotency_key = r.idempotency_key)
       and (select count(*) from ticket_messages tm
             where tm.ticket_id = r.ticket_id and tm.received_at > now() - interval '1 hour') >= p_max_per_hour
     limit 1;
    if v_limited is not null then
      return query select null::bigint, 0, null::bigint, v_limited;
      return;
    end if;
  end if;

  insert into raw_messages (sha256, size, bytes) values (p_sha256, length(p_bytes), p_bytes) returning id into v_raw;

  with rows as (
    select * from jsonb_to_recordset(p_ticket_messages) as r(
      ticket_id text, idempotency_key text, author_address text, author_name text, author_role text,
      subject text, reply_text text, full_text text, removed_text text, html text, message_id text,
      in_reply_to text, "references" text[], sent_at timestamptz, client_ip inet, client_hostname text,
      helo text, mail_from text, rcpt_to text[], tls boolean, tls_cipher text, auth_results jsonb,
      auth_header text, auth_verdict text, auth_reason text)
  ), inserted as (
    insert into ticket_messages (
      ticket_id, raw_message_id, idempotency_key, author_address, author_name, author_role, subject,
      reply_text, full_text, removed_text, html, message_id, in_reply_to, "references", sent_at, client_ip,
      client_hostname, helo, mail_from, rcpt_to, tls, tls_cipher, auth_results, auth_header, auth_verdict,
      auth_reason)
    select ticket_id, v_raw, idempotency_key, author_address, author_name, author_role, subject,
      coalesce(reply_text, ''), coalesce(full_text, ''), coalesce(removed_text, ''), html, message_id,
      in_reply_to, coalesce("references", '{}'), sent_at, client_ip, client_hostname, helo, mail_from,
      rcpt_to, coalesce(tls, false), tls_cipher, auth_results, auth_header, auth_verdict, auth_reason
    from rows
    on conflict (ticket_id, idempotency_key) do nothing
    returning id, ticket_id
  )
  select count(pg_notify('ticket_message', json_build_object('ticket', ticket_id, 'id', id)::text))
    into v_tickets from inserted;

  with rows as (
    select * from jsonb_to_recordset(p_unrouted) as r(
      recipient text, ticket_id text, reason text, idempotency_key text, from_address text, subject text,
      message_id text, client_ip inet, helo text, mail_from text)
  ), inserted as (
    insert into unrouted_messages (raw_message_id, recipient, ticket_id, reason, idempotency_key,
      from_address, subject, message_id, client_ip, helo, mail_from)
    select v_raw, recipient, ticket_id, reason, idempotency_key, from_address, subject, message_id,
      client_ip, helo, mail_from
    from rows
    on conflict (recipient, idempotency_key) do nothing
    returning id
  )
  select count(*) into v_unrouted from inserted;

  if v_tickets + v_unrouted = 0 then
    delete from raw_messages where id = v_raw;
    return query
      select null::bigint, 0, coalesce(
        (select tm.raw_message_id from ticket_messages tm
           join jsonb_to_recordset(p_ticket_messages) as r(ticket_id text, idempotency_key text)
             on tm.ticket_id = r.ticket_id and tm.idempotency_key = r.idempotency_key
          order by tm.id limit 1),
        (select um.raw_message_id from unrouted_messages um
           join jsonb_to_recordset(p_unrouted) as r(recipient text, idempotency_key text)
             on um.recipient = r.recipient and um.idempotency_key = r.idempotency_key
          order by um.id limit 1)), null::text;
    return;
  end if;

  insert into attachments (raw_message_id, position, filename, content_type, size, sha256, content_id, inline, bytes)
  select v_raw, a.ord::integer, a.filename, a.content_type, length(p_attachment_bytes[a.ord]),
         decode(a.sha256, 'hex'), a.content_id, coalesce(a.inline, false), p_attachment_bytes[a.ord]
    from rows from (jsonb_to_recordset(p_attachments) as (filename text, content_type text, sha256 text, content_id text, inline boolean))
         with ordinality as a(filename, content_type, sha256, content_id, inline, ord);

  return query select v_raw, v_tickets + v_unrouted, null::bigint, null::text;
end;
$$;
