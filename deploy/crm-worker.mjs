// A CRM worker: every reply ticket-mx commits, read from ticketmx.ticket_messages_v1 as it lands.
// DATABASE_URL is the CRM's own; AFTER_ID the highest id it has handled. Run: node crm-worker.mjs
import pg from 'pg';

const db = new pg.Client({ connectionString: process.env.DATABASE_URL });
const handled = new Set();
const handle = async (where, value) => {
  const { rows } = await db.query(`select * from ticketmx.ticket_messages_v1 where ${where} order by id`, [value]);
  for (const m of rows.filter((m) => !handled.has(m.id))) {
    handled.add(m.id); // the CRM would upsert by m.id here: ids are unique, a message may come twice
    console.log(JSON.stringify({ id: m.id, ticket: m.ticket_id, from: m.author_address, text: m.reply_text }));
  }
};
db.on('error', (err) => {
  console.error(err);
  process.exit(1); // a lost connection loses notifications: let the supervisor restart us (we catch up)
});
db.on('notification', (n) => handle('id = $1', JSON.parse(n.payload).id).catch((err) => db.emit('error', err)));
await db.connect();
await db.query('listen ticket_message'); // NOTIFY comes on commit; listen first, then catch up
// ids are taken before commit, so one that committed late may sit below AFTER_ID: look back a little
await handle('id > $1', Math.max(0, Number(process.env.AFTER_ID ?? 0) - 1000));
console.error('crm-worker: listening');
