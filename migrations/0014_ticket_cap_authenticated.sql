-- 0014: a message counts on its author's hourly count (0013) only when its author is authenticated.
-- Under AUTH_POLICY=monitor, mail whose From is not authenticated is stored (monitor records what
-- enforce would refuse), and 0013 counted it on the address it claims: sixty unsigned messages
-- "From: ivan@flamecrm.ru" from anywhere, and the real ivan's answers got 450 4.7.1 for the rest
-- of the hour, his staff notifications coalesced with them. Now a message whose verdict is not
-- AUTH_ACCEPTED counts on the unauthenticated count of the address it claims, apart from the
-- authenticated one (as src/outbox/notify.ts tells them apart: an unauthenticated staff message
-- mails nobody); strangers share their one count per ticket as before. Under enforce such mail is
-- refused, so nothing changes there. A message typed in through the API (no verdict: its author
-- is the API token's) counts on its author's count.
--
-- The index is built in this migration's transaction, as 0013's was; 0013's goes with it.
-- Never edit this file once landed.

-- whose count a message is on: its author's address (case aside, as its md5: 0013), authenticated
-- or not; or every stranger's one count
create function cap_key(p_role text, p_address text, p_verdict text) returns text
language sql immutable as $$
  select case when p_role = 'stranger' then 'stranger'
              when p_verdict <> 'AUTH_ACCEPTED' then 'unverified:' || md5(coalesce(lower(p_address), ''))
              else 'author:' || md5(coalesce(lower(p_address), '')) end
$$;

create index ticket_messages_ticket_cap on ticket_messages (ticket_id, cap_key(author_role, author_address, auth_verdict), received_at);

-- messages on this ticket on this message's count in the last hour
create function author_messages_last_hour(p_ticket_id text, p_role text, p_address text, p_verdict text)
returns bigint
language sql stable as $$
  select count(*) from ticket_messages tm
   where tm.ticket_id = p_ticket_id
     and cap_key(tm.author_role, tm.author_address, tm.auth_verdict) = cap_key(p_role, p_address, p_verdict)
     and tm.received_at > now() - interval '1 hour'
$$;

-- store_message as 0013 made it, the cap counted by cap_key
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
                                                                  author_role text, auth_verdict text)
     where not exists (select 1 from ticket_messages tm
                        where tm.ticket_id = r.ticket_id and tm.idempotency_key = r.idempotency_key)
       and earlier_copy(r.ticket_id, null, r.idempotency_key, p_bytes) is null
       and author_messages_last_hour(r.ticket_id, r.author_role, r.author_address, r.auth_verdict) >= p_max_per_hour
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

-- store_message_with_outbox as 0013 made it, the count by cap_key
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
                  and author_messages_last_hour(tm.ticket_id, tm.author_role, tm.author_address,
                                                tm.auth_verdict) > 10)));
  end if;
  return query select v.raw_message_id, v.stored, v.existing_raw_message_id, v.rate_limited_ticket;
end;
$$;

-- 0013's count, its index and its key: nothing uses them now
drop function author_messages_last_hour(text, text, text);
drop index ticket_messages_ticket_author;
drop function cap_author(text, text);
