-- Group commit: several messages in one call, one transaction and one COMMIT (one WAL flush), for
-- the sessions that finish DATA at the same moment (src/db/group-commit.ts). Each message is
-- exactly what store_message_with_outbox makes of it, in order, so a later message of the batch
-- sees what an earlier one stored: a copy of it is recognised as a duplicate, the hourly cap of a
-- ticket counts it. The bytes travel as one binary parameter instead of hex text in a bytea[]:
-- p_blob holds each message's raw bytes and its attachments' contents, at the 0-based offsets and
-- lengths its entry of p_messages names: {"sha256": hex, "at": [offset, length],
-- "attachment_parts": [[offset, length], …], "ticket_messages", "unrouted", "attachments",
-- "outbox": store_message's and store_message_with_outbox's parameters}.
create function store_messages(p_blob bytea, p_messages jsonb, p_max_per_hour integer)
returns table (ord integer, raw_message_id bigint, stored integer, existing_raw_message_id bigint,
               rate_limited_ticket text)
language plpgsql as $$
declare
  v_message jsonb;
  v_ord integer := 0;
  v_parts bytea[];
  v record;
begin
  for v_message in select value from jsonb_array_elements(p_messages) loop
    v_ord := v_ord + 1;
    select coalesce(array_agg(substring(p_blob from (a.part ->> 0)::integer + 1 for (a.part ->> 1)::integer)
                              order by a.n), '{}')
      into v_parts
      from jsonb_array_elements(v_message -> 'attachment_parts') with ordinality as a(part, n);
    select s.raw_message_id, s.stored, s.existing_raw_message_id, s.rate_limited_ticket into v
      from store_message_with_outbox(
             decode(v_message ->> 'sha256', 'hex'),
             substring(p_blob from (v_message -> 'at' ->> 0)::integer + 1 for (v_message -> 'at' ->> 1)::integer),
             v_message -> 'ticket_messages', v_message -> 'unrouted', v_message -> 'attachments', v_parts,
             p_max_per_hour, v_message -> 'outbox') s;
    return query select v_ord, v.raw_message_id, v.stored, v.existing_raw_message_id, v.rate_limited_ticket;
  end loop;
end;
$$;
