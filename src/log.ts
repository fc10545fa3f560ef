// The pino root logger. Phases take children ({ cid } per connection, { tnx } per transaction);
// every SMTP decision is one line with a stable `code` (the catalogue in src/smtp/reply.ts).
// Lines are written synchronously: a decision's line is in the kernel (the pipe, the journal, the
// file) before its reply is sent, so a `kill -9` right after a 250 cannot lose the audit line.
import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'ticket-mx' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ fd: 1, sync: true }),
  );
}
