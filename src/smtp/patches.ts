// Three narrow adjustments to smtp-server's connection class, kept in one place. smtp-server is
// pinned to an exact version in package.json; every member patched or used here is checked at load
// (a renamed internal fails the start, not a session), and each patch has a test of its own
// (test/unit/patches.test.ts).
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { fitReplyLine } from '../mail/reply-line.js';

interface ConnectionInternals {
  send(code: number, data: unknown, context?: unknown): void;
  init(): void;
  connectionReady(): void;
  close(): void;
  _setListeners(done: () => void): void;
  _getEnhancedStatusCode(code: number, context?: unknown): string;
  _onCommand(command: Buffer, callback?: () => void): void;
  _armTimeout(): void;
  _server: {
    options: PatchOptions;
    connections: Set<unknown>;
  };
  session: unknown;
  name: string;
  _closing?: boolean;
  _closed?: boolean;
  __errors?: number;
  __delayUntil?: number;
}

/** The options of ours that the patched members read (beside smtp-server's own). */
export interface PatchOptions {
  maxClients?: number;
  greetingDelayMs?: number;
  onProtocolRefusal?: (session: unknown, reply: string) => void;
  /** Refused commands after which each next command waits errorDelayMs (0: off). */
  softErrorLimit?: number;
  /** Refused commands after which the session is closed with `tooManyErrors` (0: off). */
  hardErrorLimit?: number;
  errorDelayMs?: number;
  /** The 421 line (without the code) that ends a session at the hard limit. */
  tooManyErrors?: string;
  onErrorLimit?: (session: unknown, limit: 'soft' | 'hard', errors: number) => void;
}

/** Members of SMTPConnection.prototype that the patches replace or call. */
export const PATCHED_MEMBERS = [
  'send',
  'init',
  'connectionReady',
  'close',
  '_setListeners',
  '_getEnhancedStatusCode',
  '_onCommand',
  '_armTimeout',
] as const;

/** Throws, naming what is missing, unless every member the patches rely on is a function. */
export function assertPatchable(proto: object): void {
  const missing = PATCHED_MEMBERS.filter((m) => typeof (proto as Record<string, unknown>)[m] !== 'function');
  if (missing.length)
    throw new Error(
      `smtp-server's SMTPConnection has no ${missing.join(', ')}: src/smtp/patches.ts patches the internals ` +
        'of the exact version pinned in package.json; check them against the installed one',
    );
}

const proto = SMTPConnection.prototype as unknown as ConnectionInternals & { __ticketMx?: boolean };
assertPatchable(proto);

if (!proto.__ticketMx) {
  proto.__ticketMx = true;

  // 1. smtp-server derives the enhanced status code from the reply code alone (every 550 becomes
  //    5.1.1). Our replies carry their own: when the text starts with one, send it as it is.
  //    Refusals that smtp-server decides itself (452 too many recipients, 421 command too long,
  //    500 unknown command, …) carry no code of ours: they are reported to onProtocolRefusal, so
  //    that every refusal has its log line.
  //    Every refused command (5xx, and 450/452: the client's own rate and recipient limits; not
  //    451, which is our trouble, nor 421) counts against the session's error limits (3. below).
  //    Every one-line reply is held to RFC 5321's 512 octets in printable ASCII: ours are already
  //    (src/smtp/reply.ts), smtp-server's own may quote what the client sent (501 Error: duplicate
  //    <parameter> parameter).
  const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;
  const send = proto.send;
  proto.send = function (code, data, context) {
    const options = this._server.options;
    const ours = typeof data === 'string' && ENHANCED.test(data);
    const enhanced = ours ? '' : this._getEnhancedStatusCode(code, context);
    if (typeof data === 'string') data = fitReplyLine(`${code}${enhanced ? ` ${enhanced}` : ''}`, data);
    // a connection already closing (after a 421) sends nothing more: smtp-server still answers the
    // DATA its close cut short ("450 Connection closed before the message was received in full"),
    // which no client hears and which is no refusal to log (attack run 5)
    if (this._closing || this._closed) return send.call(this, code, data, ours ? false : context);
    if (!ours && code >= 400 && options.onProtocolRefusal)
      options.onProtocolRefusal(this.session, `${code}${enhanced ? ` ${enhanced}` : ''} ${String(data ?? '')}`.trim());
    send.call(this, code, data, ours ? false : context);
    if ((code >= 500 || code === 450 || code === 452) && !this._closing) countError(this, options);
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

  // 3. Error limits per session, as Postfix's smtpd_soft_error_limit / smtpd_hard_error_limit:
  //    past the soft limit the next command waits errorDelayMs before it is processed (so a
  //    client probing RCPT after RCPT gets one answer a second), at the hard limit the session
  //    ends with 421. smtp-server's parser waits for each command's callback, so delaying the
  //    dispatch delays every later reply in order, pipelined or not.
  const onCommand = proto._onCommand;
  proto._onCommand = function (command, callback) {
    const wait = (this.__delayUntil ?? 0) - Date.now();
    if (wait <= 0) return onCommand.call(this, command, callback);
    const timer = setTimeout(() => onCommand.call(this, command, callback), wait);
    timer.unref();
  };
}

function countError(conn: ConnectionInternals, options: PatchOptions): void {
  const errors = (conn.__errors ?? 0) + 1;
  conn.__errors = errors;
  const { softErrorLimit: soft = 0, hardErrorLimit: hard = 0, errorDelayMs = 1000 } = options;
  if (hard && errors >= hard) {
    options.onErrorLimit?.(conn.session, 'hard', errors);
    conn.send(421, options.tooManyErrors ?? '4.7.0 Too many errors, closing connection');
    return;
  }
  if (soft && errors > soft) {
    if (errors === soft + 1) options.onErrorLimit?.(conn.session, 'soft', errors);
    conn.__delayUntil = Date.now() + errorDelayMs;
  }
}
