-- 0013: a ticket's hourly cap (TICKET_MAX_MESSAGES_PER_HOUR) counts each author apart. It counted
-- every message of the ticket, whoever wrote it: the requester (any customer) sent 60 messages and
-- every staff answer by mail got 450 4.7.1 for the rest of the hour (attack run 4, finding F-med-1).
-- The cap is there to break a loop of auto-responders, and a loop is one author answering the
-- other: counted per (ticket, author address as stored, case aside), one author's flood stops that
-- author only. Staff have the same cap (a staff-side auto-responder loops too). Strangers (role
-- 'stranger': a third party AUTH_POLICY=monitor let in) share one count per ticket: their address
-- is whatever they wrote, and one per message must not buy a cap each. A message without an
-- author address counts with the others that have none.
--
-- And the notifications: a message of an author who already had TICKET_NOTIFY_PER_AUTHOR_PER_HOUR
-- (10, below) messages on this ticket in the last hour is stored, and its webhook queued, but its
-- mail to staff (payload audience 'staff') is not: at most 10 staff notifications an hour per
-- ticket and author, not 60. A staff answer's mail to the requester is always queued.
--
-- In a group commit (store_messages, 0011) the messages are stored one after another in one
-- transaction: each count sees the batch's earlier rows, as if each message were alone.
-- Never edit this file once landed.

-- whose count a message is on: its author's address (case aside), or every stranger's one count;
-- the address as its md5, so that the index below holds 32 bytes of it whatever its length (a From
-- of 9 KB made the index row too large for a btree, and the message's insert failed on every retry)
create function cap_author(p_role text, p_address text) returns text
language sql immutable as $$
  select case when p_role = 'stranger' then 'stranger' else 'author:' || md5(coalesce(lower(p_address), '')) end
$$;

create index ticket_messages_ticket_author on ticket_messages (ticket_id, cap_author(author_role, author_address), received_at);

-- messages on this ticket on this author's count in the last hour
create function author_messages_last_hour(p_ticket_id text, p_role text, p_address text) returns bigint
language sql stable as $$
  select count(*) from ticket_messages tm
   where tm.ticket_id = p_ticket_id and cap_author(tm.author_role, tm.author_address) = cap_author(p_role, p_address)
     and tm.received_at > now() - interval '1 hour'
$$;

-- store_message as 0012 made it, with the cap counted per author
create or replace function store_message(
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
      from jsonb_to_recordset(p_ticket_messages) as r(ticket_id text, idempotency_key text, author_address text,
                                                                  author_role text)
     where not exists (select 1 from ticket_messages tm
                        where tm.ticket_id = r.ticket_id and tm.idempotency_key = r.idempotency_key)
       and earlier_copy(r.ticket_id, null, r.idempotency_key, p_bytes) is null
       and author_messages_last_hour(r.ticket_id, r.author_role, r.author_address) >= p_max_per_hour
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
      auth_header text, auth_verdict text, auth_reason text, forwarded jsonb)
  ), inserted as (
    insert into ticket_messages (
      ticket_id, raw_message_id, idempotency_key, author_address, author_name, author_role, subject,
      reply_text, full_text, removed_text, html, message_id, in_reply_to, "references", sent_at, client_ip,
      client_hostname, helo, mail_from, rcpt_to, tls, tls_cipher, auth_results, auth_header, auth_verdict,
      auth_reason, forwarded)
    select ticket_id, v_raw, idempotency_key, author_address, author_name, author_role, subject,
      coalesce(reply_text, ''), coalesce(full_text, ''), coalesce(removed_text, ''), html, message_id,
      in_reply_to, coalesce("references", '{}'), sent_at, client_ip, client_hostname, helo, mail_from,
      rcpt_to, coalesce(tls, false), tls_cipher, auth_results, auth_header, auth_verdict, auth_reason,
      nullif(forwarded, 'null'::jsonb)
    from rows
    where earlier_copy(ticket_id, null, idempotency_key, p_bytes) is null
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
    where earlier_copy(null, recipient, idempotency_key, p_bytes) is null
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
          order by um.id limit 1),
        (select min(earlier_copy(r.ticket_id, null, r.idempotency_key, p_bytes))
           from jsonb_to_recordset(p_ticket_messages) as r(ticket_id text, idempotency_key text)),
        (select min(earlier_copy(null, r.recipient, r.idempotency_key, p_bytes))
           from jsonb_to_recordset(p_unrouted) as r(recipient text, idempotency_key text))), null::text;
    return;
  end if;

  insert into attachments (raw_message_id, position, filename, content_type, size, sha256, content_id, inline, bytes)
  select v_raw, a.ord::integer, a.filename, a.content_type, length(p_attachment_bytes[a.ord]),
         decode(a.sha256, 'hex'), a.content_id, coalesce(a.inline, false), p_attachment_bytes[a.ord]
    from rows from (jsonb_to_recordset(p_attachments)
                      as (filename text, content_type text, sha256 text, content_id text, inline boolean))
         with ordinality as a(filename, content_type, sha256, content_id, inline, ord);

  return query select v_raw, v_tickets + v_unrouted, null::bigint, null::text;
end;
$$;

-- store_message_with_outbox as 0004 made it, without the staff mail of an author past the tenth
-- message on the ticket in the last hour (the message itself is already counted: > 10)
create or replace function store_message_with_outbox(
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
        join ticket_messages tm on tm.raw_message_id = v.raw_message_id and tm.ticket_id = o.item ->> 'ticket_id'
       where not (o.item ->> 'kind' = 'mail' and o.item -> 'payload' ->> 'audience' = 'staff'
                  and author_messages_last_hour(tm.ticket_id, tm.author_role, tm.author_address) > 10)));
  end if;
  return query select v.raw_message_id, v.stored, v.existing_raw_message_id, v.rate_limited_ticket;
end;
$$;
