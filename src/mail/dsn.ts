// Reading a delivery status notification (RFC 3464) from the raw bytes: the message/delivery-status
// part's per-recipient fields (Action, Status, Diagnostic-Code). mailparser folds that part into the
// text, so it is found here directly. Pure: what a report does to the outbox is the caller's.

export interface DeliveryReport {
  /** failed, delayed, delivered, relayed, expanded; null when the message carries no status part. */
  action: string | null;
  /** The enhanced status, e.g. 5.1.1. */
  status: string | null;
  /** The remote server's words, e.g. "550 5.1.1 <x@y>: Recipient address rejected: User unknown". */
  diagnostic: string | null;
  finalRecipient: string | null;
  remoteMta: string | null;
}

/** Reports are small; a status part is never searched for past this. */
const SCAN_LIMIT = 1024 * 1024;
const FIELD_LIMIT = 500;
const PART_RE = /^content-type:[ \t]*message\/(?:global-)?delivery-status\b[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*/im;

/** The first recipient's fields of the message/delivery-status part; null when there is none. */
export function readDeliveryReport(raw: Buffer): DeliveryReport | null {
  const text = raw.subarray(0, SCAN_LIMIT).toString('latin1');
  const m = PART_RE.exec(text);
  if (!m) return null;
  const rest = text.slice(m.index);
  const headEnd = /\r?\n\r?\n/.exec(rest);
  if (!headEnd) return null;
  const partHeaders = rest.slice(0, headEnd.index);
  let body = rest.slice(headEnd.index + headEnd[0].length);
  const boundary = /^--[^\r\n]*$/m.exec(body);
  if (boundary) body = body.slice(0, boundary.index);
  const encoding = /^content-transfer-encoding:[ \t]*([a-z0-9-]+)/im.exec(partHeaders)?.[1]?.toLowerCase();
  if (encoding === 'base64') body = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('latin1');
  else if (encoding === 'quoted-printable')
    body = body
      .replace(/=\r?\n/g, '')
      .replace(/=([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)));

  // per-message fields, then one group per recipient, separated by empty lines
  const groups = body
    .replace(/\r\n/g, '\n')
    .split(/\n[ \t]*\n/)
    .map(fields)
    .filter((g) => g.size);
  const recipients = groups.filter((g) => g.has('action') || g.has('final-recipient'));
  const recipient = recipients.find((g) => g.get('action')?.toLowerCase() === 'failed') ?? recipients[0];
  if (!recipient) return { action: null, status: null, diagnostic: null, finalRecipient: null, remoteMta: null };
  return {
    action: recipient.get('action')?.toLowerCase() ?? null,
    status: recipient.get('status')?.match(/^[245]\.\d{1,3}\.\d{1,3}/)?.[0] ?? null,
    diagnostic: typed(recipient.get('diagnostic-code')),
    finalRecipient: typed(recipient.get('final-recipient')),
    remoteMta: typed(recipient.get('remote-mta')),
  };
}

// An SMTP error as bounces that are not RFC 3464 quote it (qmail's "Remote host said: 550 …",
// Exim's indented "550 5.1.1 …", appliances' "Diagnostic: 550 …"): a reply code (RFC 5321 4.2: 4yz
// or 5yz, y 0–5) either with an enhanced status of its own class (RFC 3463) anywhere in a line, or
// without one where a reply stands, at the start of a line or after "said:"/"replied:"/"error:",
// and then words of a refusal. A number in a person's sentence ("call 555 0100", "room 450") is
// neither.
const ENHANCED_ERROR = /(?:^|[^\w.])([45][0-5]\d)[ -]([45]\.\d{1,3}\.\d{1,3})(?![\w.])[^\r\n]*/gm;
const BARE_ERROR =
  /(?:^[ \t>]*|(?:said|replied|reply|response|error|diagnostic[- ]code|diagnostic|answer(?:ed)?):[ \t]*)([45][0-5]\d)[ -][ \t]*([^\r\n]*)/gim;
const REFUSAL_WORDS =
  /\b(?:user|mailbox|recipient|address|account|domain|host|unknown|rejected|refused|denied|invalid|disabled|exist|found|unavailable|quota|full|blocked|relay|spam|policy|not allowed|over|limit|unrouteable|no such)/i;

/** For a bounce that is not RFC 3464 (qmail, some appliances): the first SMTP error line of its text. */
export function findSmtpError(text: string): { status: string | null; diagnostic: string } | null {
  const scanned = text.slice(0, SCAN_LIMIT);
  for (const m of scanned.matchAll(ENHANCED_ERROR)) {
    if (m[1]![0] !== m[2]![0]) continue; // 550 4.2.2 is not a reply; a class of its own each
    return { status: m[2]!, diagnostic: clean(m[0].replace(/^[^45]*/, '')) };
  }
  for (const m of scanned.matchAll(BARE_ERROR)) {
    if (!REFUSAL_WORDS.test(m[2]!)) continue;
    return { status: `${m[1]![0]}.0.0`, diagnostic: clean(`${m[1]} ${m[2]}`) };
  }
  return null;
}

function fields(group: string): Map<string, string> {
  const map = new Map<string, string>();
  const unfolded = group.replace(/\n[ \t]+/g, ' ');
  for (const line of unfolded.split('\n')) {
    const m = /^([A-Za-z][A-Za-z0-9-]*):[ \t]*(.*)$/.exec(line);
    if (m && !map.has(m[1]!.toLowerCase())) map.set(m[1]!.toLowerCase(), clean(m[2]!));
  }
  return map;
}

/** "smtp; 550 5.1.1 …" → "550 5.1.1 …"; "rfc822; a@b" → "a@b". */
function typed(value: string | undefined): string | null {
  if (!value) return null;
  const semicolon = value.indexOf(';');
  return clean(semicolon < 0 ? value : value.slice(semicolon + 1)) || null;
}

const clean = (s: string) =>
  s
    .replace(/[\u0000-\u001f\u007f]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, FIELD_LIMIT);
