// `ticket-mx serve`: the banner, the service, and the signals. The first SIGINT/SIGTERM stops
// gracefully (also during start-up); a second one cuts the sessions, stops the embedded
// PostgreSQL and exits; a third exits at once. A start step that fails exits non-zero.
import path from 'node:path';
import { type Config, effectiveSettings, loadConfig, settingsHelp } from '../config.js';
import { createLogger } from '../log.js';
import { type Command, parse } from './command.js';

export const serve: Command = {
  name: 'serve',
  summary: 'run the SMTP server (and /healthz, /metrics, the HTTP API)',
  help: () => `Usage: ticket-mx serve

Runs the SMTP server on SMTP_HOST:SMTP_PORT (local 127.0.0.1:2525, production
0.0.0.0:25), /healthz, /metrics and, with API_TOKEN set, the HTTP API (/v1/…)
on HTTP_PORT, and the outbox sender (notifications through OUTBOUND_SMTP_URL,
or .eml files under DATA_DIR/outbox/ when it is unset); finished outbox rows
older than OUTBOX_KEEP_SENT are deleted at start and every 10 minutes. Applies
pending migrations first; without DATABASE_URL it runs and supervises an
embedded PostgreSQL under DATA_DIR. Exits non-zero when a start step fails.
SIGINT/SIGTERM stop it gracefully: idle sessions get 421 at once, messages in
DATA are finished (committed or refused with 451) first, notifications being
sent finish or are put back. A second signal stops at once (PostgreSQL
included).

Environment variables [default]:
${settingsHelp()}`,
  async run(args, io) {
    parse(args, {});
    const config = loadConfig();
    const log = createLogger(config.logLevel);
    io.err(banner(config));
    // loaded here, not with the other commands: the SMTP and HTTP servers are a second of start-up
    const { runService, StartInterrupted } = await import('../service.js');
    const run = runService(config, log);
    let signals = 0;
    let stopRequested!: () => void;
    const stop = new Promise<void>((resolve) => (stopRequested = resolve));
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals === 1) {
        log.info({ code: 'SERVICE_STOPPING', signal }, 'stopping: finishing messages in flight');
        stopRequested();
        run.close().catch(() => {}); // also interrupts a start in progress; the outcome is awaited below
        return;
      }
      if (signals === 2) {
        io.err(`ticket-mx: ${signal} again: cutting sessions, stopping PostgreSQL, exiting`);
        log.warn({ code: 'SERVICE_ABORTED', signal }, 'stopping now: sessions cut, messages in DATA not answered');
        run.abort().finally(() => {
          log.flush();
          process.exit(1);
        });
        return;
      }
      process.exit(1); // PostgreSQL already has its fast-shutdown signal and stops by itself
    };
    // `on`, not `once`: a second signal must reach the handler, not kill us by default (which
    // would leave the embedded PostgreSQL running with nobody to stop it).
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      const service = await run.started;
      io.err(
        `ticket-mx: SMTP on ${config.smtpHost}:${service.smtp.port}, ` +
          `health on http://${config.httpHost}:${service.http.port}/healthz`,
      );
      io.err(
        `ticket-mx: notifications ${
          !config.outboxSendInServe
            ? 'are queued for a separate `ticket-mx outbox run` (OUTBOX_SEND_IN_SERVE=false)'
            : config.outboundSmtpUrl
              ? `go out through ${service.sender?.targets.mail}`
              : `are written to ${path.join(config.dataDir, 'outbox')} (OUTBOUND_SMTP_URL is unset): nothing leaves the machine`
        }`,
      );
      await stop;
      await run.close().catch((err: Error) => {
        log.error({ code: 'SERVICE_STOP_FAILED', err: err.message }, 'stop failed');
        throw err;
      });
      return 0;
    } catch (err) {
      if (err instanceof StartInterrupted) {
        await run.close().catch(() => {});
        return 0; // asked to stop during start-up: stopped
      }
      throw err; // the start failed; everything it opened is closed by now: exit 1 (or 78)
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      log.flush();
    }
  },
};

/** Every effective setting, a column wide enough for the longest name, defaults marked. */
function banner(config: Config): string {
  const settings = effectiveSettings(config);
  const width = Math.max(...settings.map((s) => s.name.length)) + 2;
  const profile = `${config.profile} profile${config.profile === 'local' ? ' (DATABASE_URL unset)' : ''}`;
  return [`ticket-mx starting, ${profile}`]
    .concat(settings.map((s) => `  ${s.name.padEnd(width)}${s.value}${s.source === 'default' ? '  (default)' : ''}`))
    .join('\n');
}
