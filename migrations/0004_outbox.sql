-- 0004: the outbox — everything ticket-mx delivers (notification mail now; CRM webhooks later), written in
-- the transaction of its cause and delivered afterwards by the sender (src/outbox/sender.ts). Also:
-- ticket messages that did not come over SMTP (ticket create --message, the HTTP API), the link from
-- a notification's Message-ID to its outbox row, and the key of the VERP bounce addresses.
-- No foreign key points at tickets (0002: the CRM may replace it by a view). Never edit this file
-- once landed.

create table outbox (
  id                 bigint generated always as identity primary key,
  -- how it is delivered (src/outbox/: 'mail'); a sender only claims the kinds it knows
  kind               text not null check (kind ~ '^[a-z][a-z0-9_-]*$'),
  -- why: ticket_created, staff_reply, requester_reply, …
  event              text not null,
  -- no foreign key: the CRM may replace tickets by a view over its own table
  ticket_id          text,
  ticket_message_id  bigint references ticket_messages (id),
  -- where it goes: a mail address, a URL
  recipient          text not null,
  payload            jsonb not null default '{}',
  -- what is delivered, fixed at the first attempt so that every retry sends the same bytes
  content            bytea,
  status             text not null default 'queued'
                     check (status in ('queued', 'sending', 'sent', 'failed', 'bounced')),
  -- also the fencing token of a claim: a sender only marks the row it claimed at this count
  attempts           integer not null default 0,
  -- when queued: due then; when sending: the claim's lease ends then (a crashed sender's row is taken again)
  next_attempt_at    timestamptz not null default now(),
  -- OUTBOX_MAX_AGE counts from here; `outbox retry` sets it again
  queued_at          timestamptz not null default now(),
  created_at         timestamptz not null default now(),
  last_attempt_at    timestamptz,
  sent_at            timestamptz,
  -- the remote side's last answer (or what went wrong on our side)
  last_reply         text,
  claimed_by         text
);
-- what the senders claim; what ticket show lists; what `outbox list --status failed|bounced` finds
-- (sent rows, nearly all of them, are found newest first through the primary key)
create index outbox_due on outbox (next_attempt_at) where status in ('queued', 'sending');
create index outbox_ticket on outbox (ticket_id, id);
create index outbox_undelivered on outbox (status, id) where status in ('failed', 'bounced');

alter table notification_messages add column outbox_id bigint references outbox (id);
create index notification_messages_outbox on notification_messages (outbox_id);

-- A ticket message typed into the CLI or the CRM has no raw bytes; source says where it came from
-- (smtp, cli, api), and the CRM's read contract gains it, appended (columns are only ever added).
alter table ticket_messages alter column raw_message_id drop not null;
alter table ticket_messages add column source text not null default 'smtp';

create or replace view ticket_messages_v1 as
select m.id,
       m.ticket_id,
       m.raw_message_id,
       m.author_address,
       m.author_name,
       m.author_role,
       m.subject,
       m.reply_text,
       m.full_text,
       m.html,
       m.message_id,
       m.in_reply_to,
       m."references",
       m.sent_at,
       m.auth_verdict,
       m.auth_reason,
       coalesce(
         (select jsonb_agg(jsonb_build_object(
                   'id', a.id, 'filename', a.filename, 'content_type', a.content_type, 'size', a.size,
                   'sha256', encode(a.sha256, 'hex'), 'content_id', a.content_id, 'inline', a.inline)
                   order by a.position)
            from attachments a
           where a.raw_message_id = m.raw_message_id),
         '[]'::jsonb) as attachments,
       m.received_at,
       m.forwarded,
       m.source
  from ticket_messages m;

-- Secrets made by the database itself, shared by every instance: the MAC key of the VERP envelope
-- senders (bounces+<outbox id>.<mac>@), so that only bounces of mail we sent are accepted.
create table outbox_keys (
  name    text primary key,
  secret  text not null
);
insert into outbox_keys (name, secret)
values ('verp', encode(sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8')), 'hex'));

-- Queues deliveries: one outbox row per element of p_rows ({kind, event, ticket_id,
-- ticket_message_id, recipient, payload}); a mail's payload.messageId is also recorded in
-- notification_messages (threading replies to the bare support@ address). One NOTIFY, delivered on
-- commit, wakes the senders. Returns the new ids in the order given.
create function queue_outbox(p_rows jsonb) returns setof bigint
language plpgsql as $$
declare
  v_ids bigint[];
begin
  with rows as (
    select r.*, o.ord
      from jsonb_array_elements(p_rows) with ordinality as o(item, ord),
           jsonb_to_record(o.item) as r(kind text, event text, ticket_id text, ticket_message_id bigint,
                                        recipient text, payload jsonb)
  ), inserted as (
    insert into outbox (kind, event, ticket_id, ticket_message_id, recipient, payload)
    select rows.kind, rows.event, rows.ticket_id, rows.ticket_message_id, rows.recipient,
           coalesce(rows.payload, '{}')
      from rows order by rows.ord
    returning outbox.id, outbox.ticket_id, outbox.payload ->> 'messageId' as message_id
  ), threaded as (
    insert into notification_messages (message_id, ticket_id, outbox_id)
    select inserted.message_id, inserted.ticket_id, inserted.id
      from inserted where inserted.message_id is not null and inserted.ticket_id is not null
  )
  select array_agg(inserted.id order by inserted.id) into v_ids from inserted;
  if v_ids is not null then
    perform pg_notify('ticketmx_outbox', cardinality(v_ids)::text);
  end if;
  return query select unnest(coalesce(v_ids, '{}'::bigint[]));
end;
$$;

-- store_message (0001) and the notifications of the ticket messages it inserted, in one call and
-- one transaction. p_outbox holds queue_outbox's rows keyed by ticket_id; only those whose ticket
-- got a new message row are queued (a retry, a rate-limited or a refused message queues nothing).
create function store_message_with_outbox(
  p_sha256 bytea, p_bytes bytea, p_ticket_messages jsonb, p_unrouted jsonb,
  p_attachments jsonb, p_attachment_bytes bytea[], p_max_per_hour integer, p_outbox jsonb)
returns table (raw_message_id bigint, stored integer, existing_raw_message_id bigint, rate_limited_ticket text)
language plpgsql as $$
declare
  v record;
begin
  select s.raw_message_id, s.stored, s.existing_raw_message_id, s.rate_limited_ticket into v
    from store_message(p_sha256, p_bytes, p_ticket_messages, p_unrouted, p_attachments, p_attachment_bytes,
                       p_max_per_hour) s;
  if v.raw_message_id is not null and jsonb_array_length(p_outbox) > 0 then
    perform queue_outbox((
      select coalesce(jsonb_agg(o.item || jsonb_build_object('ticket_message_id', tm.id) order by o.ord), '[]')
        from jsonb_array_elements(p_outbox) with ordinality as o(item, ord)
        join ticket_messages tm on tm.raw_message_id = v.raw_message_id and tm.ticket_id = o.item ->> 'ticket_id'));
  end if;
  return query select v.raw_message_id, v.stored, v.existing_raw_message_id, v.rate_limited_ticket;
end;
$$;
