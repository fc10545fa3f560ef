-- deploy/crm-view.sql: ticket-mx reads the CRM's own tickets instead of its own table.
--
-- ticket-mx reads tickets through one relation, ticketmx.tickets, with the columns
--   id text ('TKT-<digits>': the reply address support+TKT-12345@), subject text, requester text
--   (the customer's address: may write to the ticket), status text, created_at timestamptz.
-- This file replaces ticket-mx's table by a view of those columns over a Prisma-style CRM table:
--
--   enum TicketStatus { OPEN PENDING SOLVED CLOSED }
--   model SupportTicket {
--     id            String       @id @default(cuid())       // the CRM's key: not what mail carries
--     number        Int          @unique @default(autoincrement())  // shown to people as TKT-12345
--     title         String
--     customerEmail String
--     status        TicketStatus @default(OPEN)
--     createdAt     DateTime     @default(now())
--     updatedAt     DateTime     @updatedAt
--     deletedAt     DateTime?                               // soft delete
--   }
--
-- Adapt the names to your CRM, then, after `ticket-mx migrate` has created the schema:
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f deploy/crm-view.sql
-- and set TICKET_CLOSED_STATUSES=CLOSED (the CRM's statuses that take no more mail; SOLVED still
-- does, so a customer's "it is broken again" reaches the ticket). A ticket the CRM closes is then
-- refused at RCPT with 550 5.1.1, and so is one it deletes or soft-deletes (it leaves the view).
-- With DATABASE_SCHEMA other than ticketmx, replace ticketmx below.
--
-- ticket-mx's role needs, on the CRM's table: select; insert and update only for `ticket-mx
-- ticket create` / `ticket close` (the triggers below run with its rights):
--   grant select, insert, update on public."SupportTicket" to ticketmx;

begin;

-- ticket-mx's own tickets table goes (0002 dropped the foreign keys that pointed at it). Tickets
-- already in it would be lost: move them into the CRM first.
do $$
begin
  if to_regclass('ticketmx.tickets') is null then
    raise exception 'ticketmx.tickets does not exist: run ticket-mx migrate first';
  end if;
  if (select relkind from pg_class where oid = 'ticketmx.tickets'::regclass) = 'r' then
    if exists (select 1 from ticketmx.tickets) then
      raise exception 'ticketmx.tickets holds tickets of its own: move them into the CRM first';
    end if;
    drop table ticketmx.tickets;
  else
    drop view ticketmx.tickets; -- installed before: this file may be run again
  end if;
end;
$$;

create view ticketmx.tickets as
select 'TKT-' || t."number"::text as id,
       t."title" as subject,
       t."customerEmail" as requester,
       t."status"::text as status,
       t."createdAt" at time zone 'UTC' as created_at, -- Prisma stores DateTime as UTC without zone
       t."id" as crm_id
  from public."SupportTicket" t
 where t."deletedAt" is null;

-- Every RCPT looks a ticket up by id: without this index, by reading the whole CRM table. Add it
-- to the CRM's own migrations (Prisma: a migration with this SQL), or `prisma migrate` reports drift.
create index if not exists "SupportTicket_ticketmx_id_idx" on public."SupportTicket" (('TKT-' || "number"::text));

-- Writes through the view, for `ticket-mx ticket create` and `ticket close`: the CRM numbers its
-- tickets and owns their key; ticket-mx only ever sets subject and requester (create) or status (close).
create or replace function ticketmx.crm_tickets_write() returns trigger language plpgsql as $$
declare
  v_row public."SupportTicket";
begin
  if tg_op = 'INSERT' then
    if new.id is not null then
      raise exception 'the CRM numbers its tickets: create this ticket without an id';
    end if;
    insert into public."SupportTicket" ("id", "title", "customerEmail", "status", "createdAt", "updatedAt")
    values ('c' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 24), -- cuid-shaped; any unique text does
            new.subject, new.requester, coalesce(upper(new.status), 'OPEN')::public."TicketStatus",
            now() at time zone 'UTC', now() at time zone 'UTC')
    returning * into v_row;
  else
    update public."SupportTicket"
       set "status" = upper(new.status)::public."TicketStatus", "updatedAt" = now() at time zone 'UTC'
     where "id" = old.crm_id
    returning * into v_row;
  end if;
  new.id := 'TKT-' || v_row."number"::text;
  new.subject := v_row."title";
  new.requester := v_row."customerEmail";
  new.status := v_row."status"::text;
  new.created_at := v_row."createdAt" at time zone 'UTC';
  new.crm_id := v_row."id";
  return new;
end;
$$;

create trigger crm_tickets_write instead of insert or update on ticketmx.tickets
  for each row execute function ticketmx.crm_tickets_write();

commit;
