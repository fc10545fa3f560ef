-- 0011: the long texts of a ticket message (reply_text, full_text, removed_text, html) travel in
-- store_messages' binary parameter too, as UTF-8 bytes, not inside the JSON of p_messages. JSON
-- writes each control character as \u00XX, six bytes for one: a 20 MB body of \x01–\x1f became
-- 120 MB of JSON per text, and several such texts and their copies took hundreds of MB of the
-- server's memory for one message (attack run, finding 3). A ticket message of p_messages may now
-- carry "text_parts": {"full_text": [offset, length], …} (0-based, in p_blob; null: a null value);
-- each named text is read from p_blob and put in its place before store_message_with_outbox sees
-- the row. A row without text_parts (a process from before 0011 during an upgrade) is taken as it
-- is. Never edit this file once landed.
create or replace function store_messages(p_blob bytea, p_messages jsonb, p_max_per_hour integer)
returns table (ord integer, raw_message_id bigint, stored integer, existing_raw_message_id bigint,
               rate_limited_ticket text)
language plpgsql as $$
declare
  v_message jsonb;
  v_ord integer := 0;
  v_parts bytea[];
  v_ticket_messages jsonb;
  v record;
begin
  for v_message in select value from jsonb_array_elements(p_messages) loop
    v_ord := v_ord + 1;
    select coalesce(array_agg(substring(p_blob from (a.part ->> 0)::integer + 1 for (a.part ->> 1)::integer)
                              order by a.n), '{}')
      into v_parts
      from jsonb_array_elements(v_message -> 'attachment_parts') with ordinality as a(part, n);
    select coalesce(jsonb_agg(
             (tm.item - 'text_parts') || coalesce(
               (select jsonb_object_agg(t.key, case when jsonb_typeof(t.value) = 'array' then to_jsonb(convert_from(
                         substring(p_blob from (t.value ->> 0)::integer + 1 for (t.value ->> 1)::integer), 'UTF8')) end)
                  from jsonb_each(tm.item -> 'text_parts') as t(key, value)),
               '{}'::jsonb)
             order by tm.n), '[]'::jsonb)
      into v_ticket_messages
      from jsonb_array_elements(v_message -> 'ticket_messages') with ordinality as tm(item, n);
    select s.raw_message_id, s.stored, s.existing_raw_message_id, s.rate_limited_ticket into v
      from store_message_with_outbox(
             decode(v_message ->> 'sha256', 'hex'),
             substring(p_blob from (v_message -> 'at' ->> 0)::integer + 1 for (v_message -> 'at' ->> 1)::integer),
             v_ticket_messages, v_message -> 'unrouted', v_message -> 'attachments', v_parts,
             p_max_per_hour, v_message -> 'outbox') s;
    return query select v_ord, v.raw_message_id, v.stored, v.existing_raw_message_id, v.rate_limited_ticket;
  end loop;
end;
$$;
-- as 0008 set it: a replaced function keeps no SET of the old one
alter function store_messages(bytea, jsonb, integer) set lock_timeout = '1s';
