// `ticket-mx serve`: the banner, the service, and a graceful stop on SIGINT/SIGTERM.
import path from 'node:path';
import { type Config, effectiveSettings, loadConfig, settingsHelp } from '../config.js';
import { createLogger } from '../log.js';
import { startService } from '../service.js';
import { type Command, parse } from './command.js';

export const serve: Command = {
  name: 'serve',
  summary: 'run the SMTP server (and /healthz, /metrics)',
  help: () => `Usage: ticket-mx serve

Runs the SMTP server on SMTP_HOST:SMTP_PORT (local profile 127.0.0.1:2525, production 0.0.0.0:25)
and /healthz, /metrics on HTTP_PORT, and the outbox sender (notifications through
OUTBOUND_SMTP_URL, or .eml files under DATA_DIR/outbox/ when it is unset). Applies pending
migrations first. Stops gracefully on SIGINT/SIGTERM: messages in flight are finished (committed
or refused with 451) first, notifications being sent finish or are put back.

Environment variables [default]:
${settingsHelp()}`,
  async run(args, io) {
    parse(args, {});
    const config = loadConfig();
    const log = createLogger(config.logLevel);
    io.err(banner(config));
    const service = await startService(config, log);
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
    await new Promise<void>((resolve) => {
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) {
          io.err(`ticket-mx: ${signal} again, exiting now`);
          process.exit(1);
        }
        stopping = true;
        log.info({ code: 'SERVICE_STOPPING', signal }, 'stopping: finishing messages in flight');
        service.close().then(resolve, (err: Error) => {
          log.error({ code: 'SERVICE_STOP_FAILED', err: err.message }, 'stop failed');
          resolve();
        });
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
    log.flush();
    return 0;
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
