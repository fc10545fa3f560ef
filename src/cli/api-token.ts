// `ticket-mx api-token create`: a random bearer token for the HTTP API and the line that puts it
// in the environment. Touches no database: the token lives only in API_TOKEN.
import crypto from 'node:crypto';
import { type Command, parse } from './command.js';

/** 32 random bytes, base64url, behind a prefix that secret scanners and people recognise. */
export function newApiToken(): string {
  return `tmx_${crypto.randomBytes(32).toString('base64url')}`;
}

export const apiTokenCreate: Command = {
  name: 'api-token create',
  summary: 'print a new random API_TOKEN and its environment line',
  help: `Usage: ticket-mx api-token create

Prints a new random token (256 bits) on the first line and the line to put in
ticket-mx's environment on the second: API_TOKEN=<token>. Give the same token
to the CRM as its bearer token. Nothing is stored; to rotate, create another,
set it and restart. The HTTP API (/v1/… on HTTP_PORT) is off until API_TOKEN is
set.`,
  async run(args, io) {
    parse(args, {});
    const token = newApiToken();
    io.out(token);
    io.out(`API_TOKEN=${token}`);
    io.err(
      "ticket-mx: put the API_TOKEN line in ticket-mx's environment (e.g. deploy/ticket-mx.env) and restart; " +
        'the CRM sends the token as "Authorization: Bearer <token>"',
    );
    return 0;
  },
};
