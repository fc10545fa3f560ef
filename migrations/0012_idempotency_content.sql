-- 0012: a message is a duplicate only when it is the same message. The key of a message with a
-- Message-ID was 'mid:<id>' alone, so whoever sent a Message-ID first owned it: a real message sent
-- under an id an attacker had learned (a quoted References line, a predictable generator) or
-- guessed was answered 250 as a retry and dropped (attack run, finding 5). From 0012 on the key is
-- 'mid:<id> sha256:<hash of From, Date, Subject and body>' (src/mail/parse.ts idempotencyKey): a
-- retry, however many trace lines relays added, has the same key; another message under the same
-- id has another key and is stored (its Message-ID kept in message_id as ever). The unique keys
-- stay (ticket_id, idempotency_key) and (recipient, idempotency_key): concurrent copies of one
-- message still meet on them, and on nothing else.
--
-- Rows stored before 0012 have the id alone. So that a retry of one of them is still recognised
-- (never stored twice), store_message also counts a row under the key's earlier form (earlier_key)
-- whose raw message has the same body as this one (earlier_copy): a retry of a message stored
-- before the upgrade is a duplicate, another message under an id squatted before it is not. No row
-- gets the earlier form any more (only a process from before 0012, during an upgrade), so that
-- check needs no lock; and it reads the earlier raw message only when such a row exists.
-- Never edit this file once landed.

-- the key a message had before 0012: 'mid:<id>' for 'mid:<id> sha256:<hex>'; null for every other key
create function earlier_key(p_key text) returns text
language sql immutable as $$
  select case when p_key ~ '^mid(-sha256)?:.* sha256:[0-9a-f]{64}$' then left(p_key, -72) end
$$;

-- what follows the header block (the first empty line), as src/mail/parse.ts contentHash takes it
create function message_body(p_bytes bytea) returns bytea
language sql immutable as $$
  select case when position('\x0d0a0d0a'::bytea in p_bytes) > 0
              then substring(p_bytes from position('\x0d0a0d0a'::bytea in p_bytes) + 4)
              when position('\x0a0a'::bytea in p_bytes) > 0
              then substring(p_bytes from position('\x0a0a'::bytea in p_bytes) + 2)
              else ''::bytea end
$$;

-- the raw message id of a row stored before 0012 for this message: its ticket (or, for unrouted
-- mail, its recipient), the earlier form of its key, the same body; null when there is none
create function earlier_copy(p_ticket_id text, p_recipient text, p_key text, p_bytes bytea) returns bigint
language plpgsql stable as $$
declare
  v_earlier text := earlier_key(p_key);
  v_raw bigint;
begin
  if v_earlier is null then
    return null;
  end if;
  if p_recipient is null then
    select tm.raw_message_id into v_raw from ticket_messages tm
     where tm.ticket_id = p_ticket_id and tm.idempotency_key = v_earlier;
  else
    select um.raw_message_id into v_raw from unrouted_messages um
     where um.recipient = p_recipient and um.idempotency_key = v_earlier;
  end if;
  if v_raw is null or (select message_body(r.bytes) from raw_messages r where r.id = v_raw)
                      is distinct from message_body(p_bytes) then
    return null;
  end if;
  return v_raw;
end;
$$;

-- store_message as 0003 made it, with an earlier_copy counted as existing wherever 0003 looks for
-- the key: the hourly cap, the inserts, the first copy's id.
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
      from jsonb_to_recordset(p_ticket_messages) as r(ticket_id text, idempotency_key text)
     where not exists (select 1 from ticket_messages tm
                        where tm.ticket_id = r.ticket_id and tm.idempotency_key = r.idempotency_key)
       and earlier_copy(r.ticket_id, null, r.idempotency_key, p_bytes) is null
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
