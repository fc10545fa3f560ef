// The pino root logger. Phases take children ({ cid } per connection, { tnx } per transaction);
// every SMTP decision is one line with a stable `code` (see src/smtp/codes.ts).
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
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
