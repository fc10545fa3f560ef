-- Reply text that can be re-derived: the forwarded message a person sent (from, date, subject,
-- to, text) beside the note above it, and the history of every reply text that `ticket-mx
-- reprocess` replaced (the previous text, what it removed, and when); ticket_messages_v1 gains
-- forwarded; store_message is 0001's with the forwarded column added. Never edit this file once
-- landed.

alter table ticket_messages add column forwarded jsonb;

create table reply_text_history (
  id                  bigint generated always as identity primary key,
  ticket_message_id   bigint not null references ticket_messages (id),
  reply_text          text not null,
  removed_text        text not null,
  forwarded           jsonb,
  replaced_at         timestamptz not null default now()
);
create index reply_text_history_message on reply_text_history (ticket_message_id, id);

-- The CRM's read contract gains the forwarded message, appended (columns are only ever added).
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
       m.forwarded
  from ticket_messages m;

-- Everything of one accepted message in one call (one round trip, one transaction): the raw
-- bytes, a row per ticket and per unrouted recipient, the attachments (metadata in p_attachments,
-- contents in p_attachment_bytes, same order), and NOTIFY for the CRM (delivered on commit).
-- Idempotent: rows whose (ticket, key) or (recipient, key) exist are skipped; when every row
-- existed, the raw copy is dropped again and the first copy's id is returned. p_max_per_hour:
-- when a ticket would get a new row although it already has that many from the last hour,
-- nothing is stored and rate_limited_ticket names it (a loop breaker).
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
