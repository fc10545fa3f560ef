-- 0009: finished outbox rows may be deleted (OUTBOX_KEEP_SENT, src/outbox/prune.ts). What later mail
-- needs of a notification stays in notification_messages: its ticket and Message-ID already, now its
-- recipient too, so that the threading of a later notification to them (loadNotificationContext in
-- src/db/outbox.ts) and replies to the bare support@ address never read the outbox. outbox_id stays
-- as a plain number, without the foreign key: it orders a ticket's notifications and names the row
-- while it exists. Never edit this file once landed.

alter table notification_messages add column recipient text;
update notification_messages n set recipient = o.recipient from outbox o where o.id = n.outbox_id;
alter table notification_messages drop constraint notification_messages_outbox_id_fkey;
-- a notification queued through the outbox carries its recipient (rows from before 0004 have neither)
alter table notification_messages
  add constraint notification_messages_recipient check (outbox_id is null or recipient is not null);
-- what a recipient has been sent of a ticket, newest first
create index notification_messages_thread on notification_messages (ticket_id, recipient, outbox_id);

-- The prune's walk: finished rows, oldest first, aged from their last attempt (sent, or the attempt
-- that failed; a bounce marks a row that was sent). The expression and the predicate are the
-- prune's own (pruneOutbox in src/db/outbox.ts).
create index outbox_finished on outbox ((coalesce(sent_at, last_attempt_at, created_at)))
  where status in ('sent', 'failed', 'bounced');

-- queue_outbox (0004) as it was, its notification_messages rows now with their recipient.
create or replace function queue_outbox(p_rows jsonb) returns setof bigint
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
    returning outbox.id, outbox.ticket_id, outbox.recipient, outbox.payload ->> 'messageId' as message_id
  ), threaded as (
    insert into notification_messages (message_id, ticket_id, outbox_id, recipient)
    select inserted.message_id, inserted.ticket_id, inserted.id, inserted.recipient
      from inserted where inserted.message_id is not null and inserted.ticket_id is not null
  )
  select array_agg(inserted.id order by inserted.id) into v_ids from inserted;
  if v_ids is not null then
    perform pg_notify('ticketmx_outbox', cardinality(v_ids)::text);
  end if;
  return query select unnest(coalesce(v_ids, '{}'::bigint[]));
end;
$$;
