// Parsing with mailparser into the fields we store, and the idempotency key that makes a retry of
// a committed message recognisable. The header alone parses first and cheaply (its block is
// bounded before it gets here, see bytes.ts); the whole message only once it is worth it. No policy.
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import {
  type AddressObject,
  type Attachment,
  type AttachmentStream,
  MailParser,
  type ParsedMail as MailparserResult,
  type MessageText,
} from 'mailparser';
import { GrowingBuffer } from './growing-buffer.js';

export interface Mailbox {
  address: string;
  name: string;
}

/** What the header block alone says. */
export interface ParsedHeader {
  from: Mailbox[];
  subject: string | null;
  messageId: string | null;
  inReplyTo: string | null;
  references: string[];
  date: Date | null;
  headers: MailparserResult['headers'];
  /** Top-level Content-Type value, lower case (multipart/report for delivery reports). */
  contentType: string | null;
  /** Its report-type parameter, for multipart/report. */
  reportType: string | null;
}

export interface ParsedMessage extends ParsedHeader {
  /** text/plain; for a message with only HTML, '' (mailparser's own conversion is off: see below). */
  text: string;
  html: string | null;
  attachments: Attachment[];
}

const MAX_HTML_TO_PARSE = 2 * 1024 * 1024;
/**
 * mailparser is fed the bytes in pieces of this size (views, not copies): given a large message as
 * one chunk, its splitter and decoders make garbage of the whole of it at once. 64 KiB is the size
 * its first stage (mailsplit's ChunkedPassthrough) joins its input into: a piece of that size is
 * copied once, a smaller one is joined with the next. The 25 MB message of `npm run bench:memory`
 * parsed alone peaked at +84 MB in pieces of 1 MiB, +57 MB in pieces of 64 KiB.
 */
const PARSE_PIECE = 64 * 1024;
const MAX_READABLE_KEY = 200;
/**
 * MIME parts (nodes: the message itself, each multipart and each leaf) past which mailparser's
 * splitter (mailsplit's maxChildNodes, given here rather than left to its default of the same value)
 * stops: each is a node to parse and decode. It has no separate bound on nesting depth: parts nested
 * 2000 deep are 2001 parts.
 */
export const MAX_MIME_PARTS = 1000;

/** mailparser refused the bytes: the same on every retry, so the message's fault, not ours. */
export class UnparseableMessage extends Error {
  override name = 'UnparseableMessage';
}

/** More than MAX_MIME_PARTS parts: the parser stopped there, so nothing of the message is decoded. */
export class TooManyParts extends UnparseableMessage {
  override name = 'TooManyParts';
  constructor(
    message: string,
    /** Attachments the parser had given before it stopped: at least this many, perhaps more. */
    readonly attachmentsSeen: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export async function parseMessage(raw: Buffer): Promise<ParsedMessage> {
  const mail = await parse(raw);
  return {
    ...headerOf(mail),
    text: mail.text ?? '',
    html: typeof mail.html === 'string' ? mail.html : null,
    attachments: mail.attachments ?? [],
  };
}

/** The header block alone (`bodyStart` from bytes.ts `bodyOffset`): no body is decoded. */
export async function parseHeader(raw: Buffer, bodyStart: number): Promise<ParsedHeader> {
  const head = raw.subarray(0, bodyStart);
  const ended = head.length >= 2 && head[head.length - 1] === 0x0a;
  return headerOf(await parse(ended ? head : Buffer.concat([head, Buffer.from('\r\n\r\n')])));
}

const PARSER_OPTIONS = {
  maxHtmlLengthToParse: MAX_HTML_TO_PARSE,
  // mailparser hands its options to mailsplit's Splitter, which reads this one
  maxChildNodes: MAX_MIME_PARTS,
  // mailparser's own HTML-to-text for a lone text/html part guards nesting as the old html.ts
  // did (<p><li> repeated is "flat" to it, and quadratic to parse); htmlToText converts instead
  skipHtmlToText: true,
  skipTextToHtml: true,
  skipTextLinks: true,
  skipImageLinks: true,
} as const;

/** The header fields simpleParser copies onto its result, and their names there ("message-id": messageId). */
const HEADER_FIELDS = [
  'subject',
  'references',
  'date',
  'to',
  'from',
  'cc',
  'bcc',
  'message-id',
  'in-reply-to',
  'reply-to',
].map((field) => [field, field.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())] as const);
/** What a text part gives simpleParser's result. */
const TEXT_FIELDS = new Set(['text', 'html', 'textAsHtml', 'textConversionError']);

function parse(raw: Buffer): Promise<MailparserResult> {
  return collect(raw).catch((err: Error) => {
    // Our own trouble (no memory for a buffer) is temporary: the sender must retry, not bounce. A
    // RangeError of the message's own shape (a call stack too deep for its nesting) stays a 550.
    if (/allocation failed|out of memory/i.test(err.message)) throw err;
    if (err instanceof TooManyParts) throw err;
    // the message's own: e.g. a MIME part's header block over 1 MB
    throw new UnparseableMessage(err.message, { cause: err });
  });
}

/**
 * mailparser's simpleParser (3.14.2, pinned exactly in package.json: this mirrors its internals),
 * with keepCidLinks (inline images stay cid: links to their attachment rather than base64 data:
 * URIs in the HTML), but for how an attachment is kept:
 * simpleParser keeps its decoded pieces and joins them at the end, holding it twice; here each
 * piece is copied into one buffer as it is decoded (growing-buffer.ts), which reserves the
 * message's size (no decoding makes more bytes than the message has) and holds what it is. A test
 * keeps the two alike (test/unit/parse.test.ts). The message is fed in pieces of PARSE_PIECE.
 */
function collect(raw: Buffer): Promise<MailparserResult> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err: Error | null, mail?: MailparserResult) => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve(mail!);
    };
    const mail = { attachments: [] as Attachment[] } as Record<string, unknown> & { attachments: Attachment[] };
    const parser = new MailParser(PARSER_OPTIONS);
    // a non-fatal error may still be followed by the end: the first of them settles
    parser.on('error', (err: Error & { code?: string }) =>
      settle(
        // mailsplit's words for it (EMAXLEN is also its code for a part's header block over 1 MB)
        err.code === 'EMAXLEN' && /child nodes/i.test(err.message)
          ? new TooManyParts(`more than ${MAX_MIME_PARTS} MIME parts`, mail.attachments.length, { cause: err })
          : err,
      ),
    );
    parser.on('headers', (headers) => {
      mail.headers = headers;
      mail.headerLines = parser.headerLines;
      if (parser.otp) mail.otp = parser.otp;
    });
    let reading = false;
    const read = () => {
      reading = true;
      const data = parser.read() as MessageText | AttachmentStream | null;
      if (data === null) {
        reading = false;
        return;
      }
      if (data.type === 'text') {
        for (const key of Object.keys(data)) if (TEXT_FIELDS.has(key)) mail[key] = data[key as keyof MessageText];
        return read();
      }
      const attachment = data;
      mail.attachments.push(attachment as unknown as Attachment);
      const content = new GrowingBuffer(raw.length, 'in-place');
      const stream = attachment.content;
      stream.on('readable', () => {
        for (let chunk: Buffer | null = stream.read(); chunk !== null; chunk = stream.read()) content.append(chunk);
      });
      stream.on('end', () => {
        (attachment as unknown as Attachment).content = content.take();
        attachment.release!();
        read();
      });
    };
    parser.on('readable', () => {
      if (!reading) read();
    });
    parser.on('end', () => {
      const headers = mail.headers as MailparserResult['headers'] | undefined;
      for (const [field, name] of HEADER_FIELDS) if (headers?.has(field)) mail[name] = headers.get(field);
      settle(null, mail as unknown as MailparserResult);
    });
    if (raw.length <= PARSE_PIECE) parser.end(raw);
    else {
      const input = Readable.from(
        (function* () {
          for (let at = 0; at < raw.length; at += PARSE_PIECE) yield raw.subarray(at, at + PARSE_PIECE);
        })(),
        { objectMode: false },
      );
      input
        .once('error', (err) => {
          input.destroy();
          parser.destroy();
          settle(err);
        })
        .pipe(parser);
    }
  });
}

function headerOf(mail: MailparserResult): ParsedHeader {
  const contentType = mail.headers.get('content-type') as
    | { value?: string; params?: Record<string, string> }
    | undefined;
  return {
    from: mailboxes(mail.from),
    subject: mail.subject ?? null,
    messageId: mail.messageId ?? null,
    // mailparser leaves In-Reply-To as one unsplit string and References as a string or an array
    inReplyTo: mail.inReplyTo ?? null,
    references: splitIds(mail.references),
    date: storableDate(mail.date),
    headers: mail.headers,
    contentType: contentType?.value?.toLowerCase() ?? null,
    reportType: contentType?.params?.['report-type']?.toLowerCase() ?? null,
  };
}

/** The addresses of an address field as mailparser gives it (groups flattened), lower case. */
export function mailboxes(field: AddressObject | AddressObject[] | undefined): Mailbox[] {
  const objects = Array.isArray(field) ? field : field ? [field] : [];
  return objects
    .flatMap((o) => o.value)
    .flatMap((a) => (a.group ? a.group : [a]))
    .filter((a) => a.address)
    .map((a) => ({ address: a.address!.toLowerCase(), name: a.name ?? '' }));
}

export function splitIds(value: string | string[] | undefined): string[] {
  const joined = Array.isArray(value) ? value.join(' ') : (value ?? '');
  return joined.match(/<[^<>\s]+>/g) ?? [];
}

/**
 * What makes two deliveries one message, and so a retry that adds no row (the unique key of
 * ticket_messages and unrouted_messages). With a Message-ID: 'mid:<Message-ID> sha256:<content>',
 * the id and a hash of what a retry keeps identical (contentHash). The id alone let anyone who
 * learned an id before its message was sent (a quoted References line, a predictable generator)
 * send something else under it first, and the real message was answered 250 as a duplicate and
 * dropped (attack run, finding 5). Without one: 'sha256:<content>'. Keys from before migration 0012
 * were the id alone; store_message still takes one of those for a message with the same body.
 */
export function idempotencyKey(raw: Buffer, parsed: ParsedHeader): string {
  const content = contentHash(raw, parsed);
  if (!parsed.messageId) return `sha256:${content}`;
  // readable when it fits a btree key comfortably; a hostile 8 KB Message-ID would not
  const id =
    parsed.messageId.length <= MAX_READABLE_KEY
      ? `mid:${parsed.messageId}`
      : `mid-sha256:${crypto.createHash('sha256').update(parsed.messageId).digest('hex')}`;
  return `${id} sha256:${content}`;
}

/**
 * A hash of From, Date, Subject and the body: what a retry of the message keeps identical however
 * it travels, unlike the header lines relays add on the way (Received, Return-Path, Delivered-To,
 * X-Original-To, DKIM-Signature, ARC-*, Authentication-Results, and any X- line of their own).
 */
function contentHash(raw: Buffer, parsed: ParsedHeader): string {
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = crlf < 0 ? raw.indexOf('\n\n') : -1;
  const body = crlf >= 0 ? raw.subarray(crlf + 4) : lf >= 0 ? raw.subarray(lf + 2) : Buffer.alloc(0);
  const hash = crypto.createHash('sha256');
  hash.update(
    `${parsed.from.map((f) => f.address).join(',')}\n${parsed.date?.toISOString() ?? ''}\n${parsed.subject ?? ''}\n`,
  );
  hash.update(body);
  return hash.digest('hex');
}

/**
 * The Date header as PostgreSQL's timestamptz takes it from JSON, or null: a year outside 1–9999
 * ("Dec 20026", a typo) is written by toISOString as "+020026-…", which PostgreSQL refuses, and the
 * message would get 451 on every retry.
 */
export function storableDate(date: Date | undefined | null): Date | null {
  if (!date || Number.isNaN(date.getTime())) return null;
  const year = date.getUTCFullYear();
  return year >= 1 && year <= 9999 ? date : null;
}
