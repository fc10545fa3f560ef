-- A message whose rows wait on a lock (a transaction left open elsewhere that holds the same
-- ticket message key, a table lock) must not hold up the messages committed after it: group
-- commit runs one commit at a time. store_messages waits for a lock at most a second; past it,
-- the statement fails with 55P03 (lock_not_available), the batch is run again one message a
-- transaction (src/db/group-commit.ts), and only the message that waits is answered 451.
alter function store_messages(bytea, jsonb, integer) set lock_timeout = '1s';
