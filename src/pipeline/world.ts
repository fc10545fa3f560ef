// The world the pipeline's steps see from the main thread: DNS through the server's resolver, the
// tickets of mail to the bare support@ and the unrouted budget from the database. Used by the steps
// of a message processed inline, and to answer a worker's requests (pool.ts).
import type { Pool } from '../db/pool.js';
import { findTicket, findTicketByNotification, unroutedBytesToday } from '../db/queries.js';
import type { Resolver } from '../mail/dns.js';
import { findReferenced } from '../mail/ticket-id.js';
import type { TicketReferences } from '../mail/ticket-ref.js';
import type { PipelineWorld, SupportTickets } from './steps.js';

export async function supportTickets(db: Pool, refs: TicketReferences, guessable: boolean): Promise<SupportTickets> {
  const [header, subject, notification] = await Promise.all([
    guessable && refs.header ? findReferenced(refs.header, (id) => findTicket(db, id)) : null,
    guessable && refs.subject ? findReferenced(refs.subject, (id) => findTicket(db, id)) : null,
    findTicketByNotification(db, refs.messageIds),
  ]);
  return { header, subject, notification };
}

export function databaseWorld(db: Pool, resolver: Resolver): PipelineWorld {
  return {
    resolver,
    findSupportTickets: (refs, guessable) => supportTickets(db, refs, guessable),
    unroutedBytesToday: (network) => unroutedBytesToday(db, network),
  };
}
