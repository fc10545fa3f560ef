// Two narrow adjustments to smtp-server's connection class, kept in one place and pinned by tests
// (test/integration/smtp-flow.test.ts asserts exact enhanced codes, the greeting and the log line
// of a refusal smtp-server decides itself).
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

interface ConnectionInternals {
  send(code: number, data: unknown, context?: unknown): void;
  init(): void;
  connectionReady(): void;
  _setListeners(done: () => void): void;
  _getEnhancedStatusCode(code: number, context?: unknown): string;
  _server: {
    options: {
      maxClients?: number;
      greetingDelayMs?: number;
      onProtocolRefusal?: (session: unknown, reply: string) => void;
    };
    connections: Set<unknown>;
  };
  session: unknown;
  name: string;
  __ticketMx?: boolean;
}

const proto = SMTPConnection.prototype as unknown as ConnectionInternals;

if (!proto.__ticketMx) {
  proto.__ticketMx = true;

  // 1. smtp-server derives the enhanced status code from the reply code alone (every 550 becomes
  //    5.1.1). Our replies carry their own: when the text starts with one, send it as it is.
  //    Refusals that smtp-server decides itself (452 too many recipients, 421 command too long,
  //    500 unknown command, …) carry no code of ours: they are reported to onProtocolRefusal, so
  //    that every refusal has its log line.
  const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;
  const send = proto.send;
  proto.send = function (code, data, context) {
    const ours = typeof data === 'string' && ENHANCED.test(data);
    if (!ours && code >= 400 && this._server.options.onProtocolRefusal) {
      const enhanced = this._getEnhancedStatusCode(code, context);
      this._server.options.onProtocolRefusal(
        this.session,
        `${code}${enhanced ? ` ${enhanced}` : ''} ${String(data ?? '')}`.trim(),
      );
    }
    return send.call(this, code, data, ours ? false : context);
  };

  // 2. smtp-server waits a fixed 100 ms before the greeting to catch clients that talk too soon.
  //    That caps a sender opening one connection per message (as MTAs do) at 10 messages a second
  //    per connection slot; the delay is ours to choose (SMTP_GREETING_DELAY_MS). Same logic as
  //    smtp-server's own init(), with the delay taken from the options.
  proto.init = function () {
    this._setListeners(() => {
      const { maxClients, greetingDelayMs } = this._server.options;
      if (maxClients && this._server.connections.size > maxClients) {
        return this.send(421, `${this.name} Too many connected clients, try again in a moment`, false);
      }
      const timer = setTimeout(() => this.connectionReady(), greetingDelayMs ?? 100);
      timer.unref();
    });
  };
}
