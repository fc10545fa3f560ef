// Whether a parsed message is a person's reply or something a machine sent: an auto-reply, a
// bounce, a loop, or one of our own notifications coming back. Pure; what to do with it is data.ts's.
import { BOUNCE_LOCAL_PART } from './address.js';
import type { ParsedMessage } from './parse.js';

export type NotAReply = { kind: 'auto-reply' | 'bounce' | 'loop' | 'own-notification'; reason: string };

export interface OwnAddresses {
  mailDomains: string[];
  supportLocalPart: string;
  /** Full addresses the notifications are sent from, when not noreply@/no-reply@ one of mailDomains. */
  notificationSenders?: string[];
  /**
   * Domains that only our notification generator uses in its Message-IDs. Not mailDomains by
   * default: staff on an Exchange server at our own domain write Message-IDs there too.
   */
  notificationMessageIdDomains?: string[];
}

export interface ClassifyInput {
  /** mailparser's parsed.headers: lower-case keys; strings, structured values, arrays, dates, addresses. */
  headers: Map<string, unknown>;
  subject: string | null;
  /** SMTP envelope MAIL FROM; '' or null is the null sender <>. */
  mailFrom: string | null;
  /** Top-level Content-Type value such as 'multipart/report'; taken from headers when null. */
  contentType: string | null;
  /** The report-type parameter of a multipart/report; taken from headers when not given. */
  reportType?: string | null;
  /** Parsed From addresses, lower case. */
  fromAddresses: string[];
  ownAddresses: OwnAddresses;
  /** Domain part of the Message-ID. */
  messageIdDomain?: string | null;
}

/**
 * Header values are the sender's: only this much of one is looked at, which keeps every check
 * linear and the reason short, whatever a hostile message puts there.
 */
const HEADER_SCAN_LIMIT = 1000;
const SUBJECT_SCAN_LIMIT = 200;
const REASON_VALUE_LIMIT = 80;

// Some clients (RFC 3834 aside) mark auto-replies with a header of their own; any value but a
// "no" counts. X-Auto-Response-Suppress is deliberately absent: every Outlook/Exchange message
// carries it, it asks others not to auto-reply and says nothing about this message.
const AUTOREPLY_HEADERS: Array<[key: string, name: string]> = [
  ['x-autoreply', 'X-Autoreply'],
  ['x-autorespond', 'X-Autorespond'],
  ['x-autoresponder', 'X-Autoresponder'],
  ['x-autoreply-from', 'X-AutoReply-From'],
  ['x-mail-autoreply', 'X-Mail-Autoreply'],
];
const NEGATIVE = new Set(['no', 'false', '0', 'off']);
const BULK_PRECEDENCE = new Set(['bulk', 'junk', 'list', 'auto_reply', 'auto-reply']);
const BOUNCE_LOCAL_PARTS = new Set(['mailer-daemon', 'postmaster']);
const NOREPLY_LOCAL_PARTS = new Set(['noreply', 'no-reply']);
const DELIVERY_REPORTS = new Set(['delivery-status', 'global-delivery-status']);
const READ_RECEIPTS = new Set(['disposition-notification', 'global-disposition-notification']);

// Mailing-list fields (RFC 2919, RFC 2369): a message a list distributes is not one person's reply to
// the ticket, and answering it would mail the list. List-Unsubscribe alone does not count: it marks
// bulk mail, which Precedence already catches, and some mail systems add it to people's mail too.
// mailparser gathers the List-* fields into one structured `list` header ({ id: { name, id }, post: …
// }); a header map without it (another parser) may carry them under their own names.
const LIST_HEADERS: Array<[key: 'id' | 'post', name: string]> = [
  ['id', 'List-Id'],
  ['post', 'List-Post'],
];

// The subject of an auto-reply has a machine's shape: reply and forward prefixes (any number,
// "Re[2]:" included, in the languages mail clients write them), then a phrase an auto-responder
// puts first, as Outlook, Exchange, Gmail, Yandex, Mail.ru and Apple Mail word it in the languages
// of their interfaces, then one of three endings:
//   - a colon, before the subject it answers ("Automatic reply: Re: [TKT-1]", "Out of Office AutoReply:"),
//   - the end of the subject ("Fuori sede", "Re: Автоответ"),
//   - for a phrase of absence, the date it lasts until ("Отсутствую в офисе до 10 марта",
//     "Out of the office until Monday", "Abwesend vom 3.-7. März"),
// or the phrase in brackets ("[Auto-Reply] Re: …"). A person's subject that merely begins with
// the words ("Автоответ не работает в Outlook", "Out of office replies are not sent") has none of
// these shapes. Each repetition of the prefix group must end in ":", so no input makes it backtrack.
const REPLY_PREFIX =
  '(?:re|fwd?|aw|wg|sv|vs|rv|ref|res|odp|enc|tr|yn|ynt|ответ|отв|пересл|відп|回复|答复|轉寄|回覆)' +
  '\\s*(?:\\[\\d{1,4}\\]\\s*)?[:：]\\s*';
/** "Automatic reply" as auto-responders write it; "Auto" only before a colon. */
const AUTO_REPLY_PHRASES = [
  'автоответ',
  'автоматический ответ',
  'автоматичний ответ',
  'автоматична відповідь',
  'автовідповідь',
  'автожауап',
  'аўтаматычны адказ',
  'автоматичен отговор',
  'auto(?=\\s*[:：])',
  'automatic reply',
  'auto[- ]?reply',
  'auto[- ]?response',
  'automatische antwort',
  'réponse automatique',
  'respuesta automática',
  'risposta automatica',
  'resposta automática',
  'automatisch antwoord',
  'odpowiedź automatyczna',
  'automatyczna odpowiedź',
  'automatická odpověď',
  'automatická odpoveď',
  'automatikus válasz',
  'răspuns automat',
  'automatski odgovor',
  'samodejni odgovor',
  'automātiskā atbilde',
  'automatinis atsakymas',
  'automaatne vastus',
  'otomatik yanıt',
  'otomatik cevap',
  'automatiskt svar',
  'automatisk svar',
  'automaattinen vastaus',
  'αυτόματη απάντηση',
  'תשובה אוטומטית',
  'رد تلقائي',
  'balasan otomatis',
  'trả lời tự động',
  '自动回复',
  '自动答复',
  '自動回覆',
  '自動回复',
  '自動返信',
  '自動応答',
  '자동 응답',
  '자동응답',
  '자동 회신',
];
/** "Out of office" and "I am away", which may be followed by the date they last until. */
const ABSENCE_PHRASES = [
  'отсутствую(?: в офисе| на работе| на рабочем месте)?',
  'нахожусь в отпуске',
  'в отпуске',
  'нет на месте',
  'не в офисе',
  'вне офиса',
  'поза офісом',
  'відсутн(?:ій|я)(?: в офісі)?',
  'out[- ]of[- ](?:the[- ])?office',
  'away from (?:the )?office',
  'on (?:vacation|holiday|leave)',
  'abwesenheitsnotiz',
  'abwesend',
  'nicht im büro',
  'im urlaub',
  'absence du bureau',
  'absente? du bureau',
  'absente?',
  "message d['’]absence",
  'en congés?',
  'en vacances',
  'fuera de la oficina',
  'fuera de oficina',
  'ausente',
  'de vacaciones',
  'fuori sede',
  'fuori ufficio',
  'in ferie',
  'assente',
  'ausência temporária',
  'fora do escritório',
  'de férias',
  'afwezig',
  'niet op kantoor',
  'op vakantie',
  'poza biurem',
  'na urlopie',
  'mimo kancelář',
  'na dovolené',
  'házon kívül',
  'ofis dışında',
  'frånvarande',
  'frånvaro',
  'fraværende',
  'fravær',
  'poissa(?: toimistolta)?',
  'lomalla',
  '不在通知',
  '不在',
  '外出中',
  '부재중',
];
/** Words that lead to the date an absence lasts until, or from which it starts (then a digit). */
const UNTIL_WORDS = [
  'until',
  'till',
  'through',
  'до',
  "jusqu['’](?:au|à|a)",
  'bis',
  'hasta',
  "fino (?:al|a|all['’])",
  'sino al',
  'até',
  'tot',
  'do',
  'indtil',
  'inntil',
  'til',
  'fram till',
];
const FROM_WORDS = ['from', 'с', 'з', 'du', 'vom', 'von', 'dal', 'del', 'desde', 'de', 'od', 'van', 'fra', 'från'];
const ABSENCE_DATE =
  `(?:\\s*[-–—,(]\\s*|\\s+)(?:(?:${UNTIL_WORDS.join('|')})\\s+(?![^?]*\\?\\s*$)\\S|(?:${FROM_WORDS.join('|')})\\s+\\d|` +
  '\\d{1,2}[./-]\\d)';
const PHRASE = `(?:${[...AUTO_REPLY_PHRASES, ...ABSENCE_PHRASES].join('|')})`;
const AUTO_SUBJECT = new RegExp(
  `^\\s*(?:${REPLY_PREFIX})*(?:` +
    `[[(【]\\s*(${PHRASE})\\s*[\\])】]|` +
    `(${PHRASE}(?:\\s+${PHRASE})*)\\s*(?:[:：]|[.!]?\\s*$)|` +
    `(${ABSENCE_PHRASES.join('|')})(?=${ABSENCE_DATE}))`,
  'iu',
);
const ADDRESS_SEPARATORS = /[\s<>"',;()[\]]+/;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]+/g;

export function classifyMessage(input: ClassifyInput): NotAReply | null {
  const { headers, ownAddresses: own } = input;
  const ours = ownMatcher(own);

  // Loops first: whatever else the message says, answering it would go round again.
  const rulesLoop = headerString(headers, 'x-ms-exchange-inbox-rules-loop');
  if (rulesLoop !== null)
    return {
      kind: 'loop',
      reason: `X-MS-Exchange-Inbox-Rules-Loop: ${shown(rulesLoop)} (an Exchange inbox rule answered it)`,
    };
  for (const value of headerStrings(headers, 'x-loop')) {
    const address = addressesIn(value).find(ours.isOurs);
    if (address) return { kind: 'loop', reason: `X-Loop: ${shown(address)} names our own address` };
  }

  const ownSender = input.fromAddresses.map((a) => a.toLowerCase()).find(ours.isOurs);
  if (ownSender)
    return { kind: 'own-notification', reason: `From: ${shown(ownSender)} is our own notification sender` };
  const midDomain = input.messageIdDomain?.toLowerCase() ?? null;
  if (midDomain && ours.messageIdDomains.has(midDomain)) {
    return { kind: 'own-notification', reason: `Message-ID at ${shown(midDomain)}, the domain of our notifications` };
  }

  const contentType = (input.contentType ?? headerString(headers, 'content-type') ?? '').trim().toLowerCase();
  if (contentType === 'multipart/report') {
    const reportType = (input.reportType ?? structuredParam(headers, 'content-type', 'report-type') ?? '')
      .trim()
      .toLowerCase();
    if (READ_RECEIPTS.has(reportType))
      return { kind: 'auto-reply', reason: `multipart/report; report-type=${reportType} (a read receipt)` };
    if (reportType === '' || DELIVERY_REPORTS.has(reportType)) {
      return {
        kind: 'bounce',
        reason: `multipart/report; report-type=${reportType || '(none)'} (a delivery status notification)`,
      };
    }
    return { kind: 'auto-reply', reason: `multipart/report; report-type=${shown(reportType)} (an automated report)` };
  }

  const daemon = input.fromAddresses.find((a) => BOUNCE_LOCAL_PARTS.has(localPart(a.toLowerCase())));
  if (daemon) return { kind: 'bounce', reason: `From: ${shown(daemon.toLowerCase())} (a mail system, not a person)` };

  const autoSubmitted = headerString(headers, 'auto-submitted');
  if (autoSubmitted !== null) {
    const token = firstToken(autoSubmitted);
    if (token !== '' && token !== 'no')
      return { kind: 'auto-reply', reason: `Auto-Submitted: ${shown(token)} (RFC 3834)` };
  }
  for (const [key, name] of AUTOREPLY_HEADERS) {
    const value = headerString(headers, key);
    if (value !== null && !NEGATIVE.has(firstToken(value)))
      return { kind: 'auto-reply', reason: `${name}: ${shown(value) || '(empty)'}` };
  }
  const list = listField(headers);
  if (list) return { kind: 'auto-reply', reason: `${list} (mailing-list traffic)` };
  const precedence = headerString(headers, 'precedence');
  if (precedence !== null && BULK_PRECEDENCE.has(firstToken(precedence))) {
    return { kind: 'auto-reply', reason: `Precedence: ${firstToken(precedence)}` };
  }
  const subjectMatch = input.subject ? AUTO_SUBJECT.exec(input.subject.slice(0, SUBJECT_SCAN_LIMIT)) : null;
  if (subjectMatch) {
    const phrase = subjectMatch[1] ?? subjectMatch[2] ?? subjectMatch[3];
    return { kind: 'auto-reply', reason: `Subject starts with "${phrase}"` };
  }

  if (input.mailFrom === null || input.mailFrom === '')
    return { kind: 'bounce', reason: 'null sender: MAIL FROM:<> (a bounce or other automatic message)' };
  return null;
}

/** What classifyMessage needs, read off the parsed message (parse.ts) and the SMTP envelope. */
export function classifyInput(
  parsed: Pick<ParsedMessage, 'headers' | 'subject' | 'from' | 'messageId' | 'contentType' | 'reportType'>,
  mailFrom: string | null,
  ownAddresses: OwnAddresses,
): ClassifyInput {
  const messageId = parsed.messageId ?? '';
  const at = messageId.lastIndexOf('@');
  return {
    headers: parsed.headers as Map<string, unknown>,
    subject: parsed.subject,
    mailFrom,
    contentType: parsed.contentType,
    reportType: parsed.reportType,
    fromAddresses: parsed.from.map((a) => a.address),
    ownAddresses,
    messageIdDomain:
      at < 0
        ? null
        : messageId
            .slice(at + 1)
            .replace(/>.*$/s, '')
            .trim()
            .toLowerCase() || null,
  };
}

/**
 * One header as a string, whatever shape mailparser gave it: the first of repeated values, the
 * value of a structured header, the text of an address header. null when the header is absent.
 */
export function headerString(headers: Map<string, unknown>, name: string): string | null {
  const value = headers.get(name);
  if (value === undefined || value === null) return null;
  return asString(Array.isArray(value) ? value[0] : value);
}

/** Every value of a header that may be repeated (X-Loop, Received), as strings. */
export function headerStrings(headers: Map<string, unknown>, name: string): string[] {
  const value = headers.get(name);
  if (value === undefined || value === null) return [];
  return (Array.isArray(value) ? value : [value]).map(asString).filter((s): s is string => s !== null);
}

function asString(value: unknown): string | null {
  if (typeof value === 'string') return value.slice(0, HEADER_SCAN_LIMIT).trim();
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? '' : value.toISOString();
  if (value && typeof value === 'object') {
    const o = value as { value?: unknown; text?: unknown };
    if (typeof o.text === 'string') return o.text.slice(0, HEADER_SCAN_LIMIT).trim(); // AddressObject
    if (typeof o.value === 'string') return o.value.slice(0, HEADER_SCAN_LIMIT).trim(); // StructuredHeader
  }
  return null;
}

function structuredParam(headers: Map<string, unknown>, name: string, param: string): string | null {
  const value = headers.get(name);
  const first = Array.isArray(value) ? value[0] : value;
  const params =
    first && typeof first === 'object' ? (first as { params?: Record<string, unknown> }).params : undefined;
  const p = params?.[param];
  return typeof p === 'string' ? p.slice(0, HEADER_SCAN_LIMIT) : null;
}

/** "List-Id: <value>" when the message came from a mailing list (LIST_HEADERS), else null. */
function listField(headers: Map<string, unknown>): string | null {
  const list = headers.get('list');
  for (const [key, name] of LIST_HEADERS) {
    const own = headerString(headers, `list-${key}`);
    if (own !== null) return `${name}: ${shown(own) || '(empty)'}`;
    const part = list && typeof list === 'object' ? (list as Record<string, unknown>)[key] : undefined;
    if (part && typeof part === 'object') {
      const p = part as { id?: unknown; mail?: unknown; url?: unknown; name?: unknown };
      const value = [p.id, p.mail, p.url, p.name].find((v): v is string => typeof v === 'string' && v !== '') ?? '';
      return `${name}: ${shown(value.slice(0, HEADER_SCAN_LIMIT)) || '(empty)'}`;
    }
  }
  return null;
}

/** "auto-replied; owner-email=..." → "auto-replied" */
function firstToken(value: string): string {
  const semicolon = value.indexOf(';');
  return (semicolon < 0 ? value : value.slice(0, semicolon)).trim().toLowerCase();
}

function localPart(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? address : address.slice(0, at);
}

function addressesIn(value: string): string[] {
  return value
    .split(ADDRESS_SEPARATORS)
    .map((t) => t.replace(/^mailto:/i, '').toLowerCase())
    .filter((t) => t.includes('@'));
}

interface OwnMatcher {
  isOurs: (address: string) => boolean;
  messageIdDomains: Set<string>;
}

// Built for each message: a few small sets cost under a microsecond, no more than a cache's lookup.
function ownMatcher(own: OwnAddresses): OwnMatcher {
  const domains = new Set(own.mailDomains.map((d) => d.toLowerCase()));
  const support = own.supportLocalPart.toLowerCase();
  const senders = new Set((own.notificationSenders ?? []).map((s) => s.toLowerCase()));
  return {
    isOurs: (address) => {
      if (senders.has(address)) return true;
      const at = address.lastIndexOf('@');
      if (at < 0 || !domains.has(address.slice(at + 1))) return false;
      const local = address.slice(0, at);
      return (
        local === support ||
        local.startsWith(`${support}+`) ||
        NOREPLY_LOCAL_PARTS.has(local) ||
        // our envelope sender (VERP): nothing of ours writes from it, so mail From it is mail looping back
        local === BOUNCE_LOCAL_PART ||
        local.startsWith(`${BOUNCE_LOCAL_PART}+`)
      );
    },
    messageIdDomains: new Set((own.notificationMessageIdDomains ?? []).map((d) => d.toLowerCase())),
  };
}

/** A header value fit for a stored reason: one line, short. */
function shown(value: string): string {
  const line = value.replace(CONTROL, ' ').trim();
  return line.length > REASON_VALUE_LIMIT ? `${line.slice(0, REASON_VALUE_LIMIT)}…` : line;
}
