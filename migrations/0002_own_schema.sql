-- 0002: everything of ticket-mx in one schema of its own (DATABASE_SCHEMA, default ticketmx), so
-- that it sits beside the CRM's tables; tickets that the CRM may replace by a view over its own
-- table; and ticket_messages_v1, the read contract for the CRM.
--
-- The runner (src/db/migrate.ts) runs every migration with search_path set to our schema:
-- unqualified names here and in every later migration are ours, and current_schema() is its
-- name. Never qualify names with a schema in a migration.
--
-- Rules for later migrations, since an operator may have replaced `tickets` by a view:
--   * never alter `tickets` or point a foreign key at it; ticket-mx reads id, subject, requester,
--     status and created_at from it, and nothing else;
--   * ticket_messages_v1 only ever gains columns (appended at the end); a breaking change is a
--     ticket_messages_v2 beside it.

-- An installation from before this migration has 0001's objects in public: move them here (their
-- indexes, constraints and identity sequences move with them). A new installation made them here
-- already, so nothing moves; a CRM's own tables in public are never touched.
do $$
declare
  target text := current_schema();
  r record;
begin
  if target is null or target = 'public' then
    raise exception 'ticket-mx migrations run inside a schema of their own; search_path is %',
      current_setting('search_path');
  end if;
  for r in select * from (values
      ('sequence', 'ticket_number_seq'), ('table', 'tickets'), ('table', 'raw_messages'),
      ('table', 'ticket_messages'), ('table', 'unrouted_messages'), ('table', 'notification_messages'),
      ('table', 'attachments')) as o(kind, name)
  loop
    if to_regclass(format('public.%I', r.name)) is not null
       and to_regclass(format('%I.%I', target, r.name)) is null then
      execute format('alter %s public.%I set schema %I', r.kind, r.name, target);
    end if;
  end loop;
  if to_regprocedure('public.store_message(bytea, bytea, jsonb, jsonb, jsonb, bytea[], integer)') is not null
     and to_regprocedure(format('%I.store_message(bytea, bytea, jsonb, jsonb, jsonb, bytea[], integer)', target))
         is null then
    execute format(
      'alter function public.store_message(bytea, bytea, jsonb, jsonb, jsonb, bytea[], integer) set schema %I',
      target);
  end if;
end;
$$;

-- A foreign key cannot point at a view, and a ticket the CRM deletes must not take its mail with
-- it: ticket messages name their ticket by id. The receiver checks that the ticket exists (RCPT,
-- or DATA for the bare support@ address) before anything is stored.
alter table ticket_messages drop constraint if exists ticket_messages_ticket_id_fkey;
alter table unrouted_messages drop constraint if exists unrouted_messages_ticket_id_fkey;
alter table notification_messages drop constraint if exists notification_messages_ticket_id_fkey;

-- The read contract for the CRM (README "Reading replies from the CRM"): one row per ticket
-- message, with its attachments' metadata (not their bytes). Columns are only ever added.
create view ticket_messages_v1 as
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
       m.received_at
  from ticket_messages m;
