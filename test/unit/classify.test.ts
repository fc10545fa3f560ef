// Auto-replies, bounces, loops and our own notifications, each from real RFC 5322 text through
// mailparser so that the header shapes are the ones classifyMessage meets in the DATA phase.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import {
  classifyInput,
  classifyMessage,
  headerString,
  headerStrings,
  type NotAReply,
  type OwnAddresses,
} from '../../src/mail/classify.js';
import { parseMessage } from '../../src/mail/parse.js';

const OWN: OwnAddresses = {
  mailDomains: ['flamecrm.ru', 'Help.Example.com'],
  supportLocalPart: 'support',
  notificationSenders: ['notify@crm-mailer.example.net'],
};
const SENDER = 'ivan.petrov@example.ru';

function raw(headers: string[], body = 'Исправили, проверьте.'): Buffer {
  const has = (name: string) => headers.some((h) => h.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  const lines = [
    ...(has('From') ? [] : [`From: "Иван Петров" <${SENDER}>`]),
    'To: support+TKT-1001@flamecrm.ru',
    ...(has('Subject') ? [] : ['Subject: Re: [TKT-1001] Не приходят письма с сайта']),
    'Date: Fri, 14 Mar 2025 10:20:00 +0300',
    ...(has('Message-ID') ? [] : ['Message-ID: <CAB123@mail.gmail.com>']),
    'MIME-Version: 1.0',
    ...headers,
    ...(has('Content-Type') ? [] : ['Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit']),
  ];
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body.replace(/\r?\n/g, '\r\n')}\r\n`);
}

async function classify(
  message: Buffer,
  mailFrom: string | null = SENDER,
  own: OwnAddresses = OWN,
): Promise<NotAReply | null> {
  return classifyMessage(classifyInput(await parseMessage(message), mailFrom, own));
}

type Case = [name: string, headers: string[], expected: NotAReply['kind'] | null, reason?: string];

describe('classifyMessage: headers', () => {
  const cases: Case[] = [
    [
      'Auto-Submitted: auto-replied',
      ['Auto-Submitted: auto-replied'],
      'auto-reply',
      'Auto-Submitted: auto-replied (RFC 3834)',
    ],
    [
      'Auto-Submitted: auto-generated',
      ['Auto-Submitted: auto-generated'],
      'auto-reply',
      'Auto-Submitted: auto-generated (RFC 3834)',
    ],
    ['Auto-Submitted: auto-notified', ['Auto-Submitted: auto-notified'], 'auto-reply', 'Auto-Submitted: auto-notified'],
    [
      'Auto-Submitted with a parameter',
      ['Auto-Submitted: Auto-Replied; owner-email="boss@example.ru"'],
      'auto-reply',
      'Auto-Submitted: auto-replied (RFC 3834)',
    ],
    ['Auto-Submitted: no', ['Auto-Submitted: no'], null],
    ['Auto-Submitted: No (case)', ['Auto-Submitted: No'], null],
    ['Precedence: bulk', ['Precedence: bulk'], 'auto-reply', 'Precedence: bulk'],
    ['Precedence: junk', ['Precedence: junk'], 'auto-reply', 'Precedence: junk'],
    ['Precedence: list', ['Precedence: list'], 'auto-reply', 'Precedence: list'],
    ['Precedence: auto_reply', ['Precedence: auto_reply'], 'auto-reply', 'Precedence: auto_reply'],
    ['Precedence: BULK (case)', ['Precedence: BULK'], 'auto-reply', 'Precedence: bulk'],
    ['Precedence: first-class', ['Precedence: first-class'], null],
    ['X-Autoreply', ['X-Autoreply: yes'], 'auto-reply', 'X-Autoreply: yes'],
    ['X-Autorespond', ['X-Autorespond: Out of office'], 'auto-reply', 'X-Autorespond'],
    ['X-Autoresponder', ['X-Autoresponder: true'], 'auto-reply', 'X-Autoresponder'],
    ['X-AutoReply-From', ['X-AutoReply-From: ivan.petrov@example.ru'], 'auto-reply', 'X-AutoReply-From'],
    ['X-Mail-Autoreply', ['X-Mail-Autoreply: 1'], 'auto-reply', 'X-Mail-Autoreply'],
    ['X-Autoreply: no', ['X-Autoreply: no'], null],
    ['X-Auto-Response-Suppress alone is ordinary Exchange mail', ['X-Auto-Response-Suppress: All'], null],
    [
      'X-Auto-Response-Suppress: DR, RN, NRN, OOF, AutoReply',
      ['X-Auto-Response-Suppress: DR, RN, NRN, OOF, AutoReply'],
      null,
    ],
    [
      'Exchange inbox-rule loop',
      ['X-MS-Exchange-Inbox-Rules-Loop: ivan.petrov@example.ru'],
      'loop',
      'X-MS-Exchange-Inbox-Rules-Loop: ivan.petrov@example.ru',
    ],
    [
      'X-Loop naming support@',
      ['X-Loop: support@flamecrm.ru'],
      'loop',
      'X-Loop: support@flamecrm.ru names our own address',
    ],
    [
      'X-Loop naming a tagged address in brackets',
      ['X-Loop: <SUPPORT+TKT-1001@FLAMECRM.RU>'],
      'loop',
      'support+tkt-1001@flamecrm.ru',
    ],
    [
      'X-Loop naming a notification sender',
      ['X-Loop: notify@crm-mailer.example.net'],
      'loop',
      'notify@crm-mailer.example.net',
    ],
    [
      'X-Loop repeated, ours second',
      ['X-Loop: procmail@example.ru', 'X-Loop: support@help.example.com'],
      'loop',
      'support@help.example.com',
    ],
    ['X-Loop naming someone else', ['X-Loop: ivan.petrov@example.ru'], null],
    ['X-Loop naming a staff address at our domain', ['X-Loop: ivan@flamecrm.ru'], null],
    ['a loop outranks an auto-reply header', ['Auto-Submitted: auto-replied', 'X-Loop: support@flamecrm.ru'], 'loop'],
    [
      'List-Id (a mailing list distributed it)',
      ['List-Id: Customers <customers.lists.example.ru>'],
      'auto-reply',
      'List-Id: customers.lists.example.ru (mailing-list traffic)',
    ],
    ['List-Post', ['List-Post: <mailto:customers@lists.example.ru>'], 'auto-reply', 'List-Post:'],
    ['List-Unsubscribe alone is not a list', ['List-Unsubscribe: <mailto:unsub@example.ru>'], null],
  ];
  it.each(cases)('%s', async (_name, headers, kind, reason) => {
    const result = await classify(raw(headers));
    expect(result?.kind ?? null).toBe(kind);
    if (reason) expect(result!.reason).toContain(reason);
  });

  it('a normal Outlook reply with X-Auto-Response-Suppress and Thread-Topic is a reply', async () => {
    const outlook = raw([
      'Thread-Topic: [TKT-1001] Не приходят письма с сайта',
      'Thread-Index: AQHbkM3mXo0vYfj9lE2bWm6a1d7KjQ==',
      'X-MS-Has-Attach:',
      'X-MS-TNEF-Correlator:',
      'X-Auto-Response-Suppress: All',
      'X-MS-Exchange-Organization-SCL: -1',
      'Accept-Language: ru-RU, en-US',
      'Content-Language: ru-RU',
      'In-Reply-To: <notify-1001-7@flamecrm.ru>',
      'References: <notify-1001-7@flamecrm.ru>',
      'Message-ID: <AM0PR07MB1234ABCD@AM0PR07MB1234.eurprd07.prod.outlook.com>',
    ]);
    expect(await classify(outlook)).toBeNull();
  });
});

describe('classifyMessage: subjects', () => {
  const autoReplies: Array<[string, string]> = [
    ['Автоответ: Re: [TKT-1001] Не приходят письма', 'Автоответ'],
    ['Автоматический ответ: [TKT-1001] Не приходят письма', 'Автоматический ответ'],
    ['Auto: [TKT-1001] Mail is not arriving', 'Auto'],
    ['Automatic reply: [TKT-1001] Mail is not arriving', 'Automatic reply'],
    ['Out of Office: [TKT-1001] Mail is not arriving', 'Out of Office'],
    ['Out of office: back on Monday', 'Out of office'],
    ['Out of Office AutoReply: [TKT-1001] Printer', 'Out of Office AutoReply'],
    ['Отсутствую в офисе до 10 марта', 'Отсутствую в офисе'],
    ['Нахожусь в отпуске', 'Нахожусь в отпуске'],
    ['Autoreply: [TKT-1001]', 'Autoreply'],
    ['Auto-Reply: [TKT-1001]', 'Auto-Reply'],
    ['Abwesenheitsnotiz: [TKT-1001]', 'Abwesenheitsnotiz'],
    ['Re: Автоответ', 'Автоответ'],
    ['RE: Automatic reply: [TKT-1001]', 'Automatic reply'],
    ['Fwd: Out of Office', 'Out of Office'],
    ['Re[2]: АВТООТВЕТ', 'АВТООТВЕТ'],
    ['  re:  RE : автоответ', 'автоответ'],
    ['Réponse automatique : [TKT-1001]', 'Réponse automatique'],
    ["Absence du bureau jusqu'au 10 mars", 'Absence du bureau'],
    ['RE: Absent du bureau', 'Absent du bureau'],
    ["Message d'absence", "Message d'absence"],
    ['Respuesta automática: [TKT-1001]', 'Respuesta automática'],
    ['RV: Fuera de la oficina', 'Fuera de la oficina'],
    ['Risposta automatica: [TKT-1001]', 'Risposta automatica'],
    ['Resposta automática: [TKT-1001]', 'Resposta automática'],
    ['Automatisch antwoord: [TKT-1001]', 'Automatisch antwoord'],
    ['Odpowiedź automatyczna: [TKT-1001]', 'Odpowiedź automatyczna'],
    ['Automatická odpověď: [TKT-1001]', 'Automatická odpověď'],
    ['Otomatik yanıt: [TKT-1001]', 'Otomatik yanıt'],
    ['Automatiskt svar: [TKT-1001]', 'Automatiskt svar'],
    ['SV: Automatisk svar', 'Automatisk svar'],
    ['Automaattinen vastaus: [TKT-1001]', 'Automaattinen vastaus'],
    ['Автовідповідь: [TKT-1001]', 'Автовідповідь'],
    ['Відп: Автоматична відповідь', 'Автоматична відповідь'],
    ['Автожауап: [TKT-1001]', 'Автожауап'],
    ['自动回复: [TKT-1001]', '自动回复'],
    ['自動返信：[TKT-1001]', '自動返信'],
    ['Out of the office until Monday', 'Out of the office'],
    // the shapes the localised Outlook, Exchange, Gmail, Yandex and Mail.ru responders write
    ['Автоматический ответ: Re: [TKT-1001] Принтер', 'Автоматический ответ'],
    ['Автоответ: Re[3]: [TKT-1001] Принтер', 'Автоответ'],
    ['Нет на месте: [TKT-1001] Принтер', 'Нет на месте'],
    ['Отсутствую на рабочем месте с 3 по 7 марта', 'Отсутствую на рабочем месте'],
    ['В отпуске до понедельника', 'В отпуске'],
    ['Abwesenheitsnotiz: Re: [TKT-1001] Drucker', 'Abwesenheitsnotiz'],
    ['Automatische Antwort: AW: [TKT-1001] Drucker', 'Automatische Antwort'],
    ['Abwesend bis 10.03.', 'Abwesend'],
    ['Nicht im Büro vom 3. bis 7. März', 'Nicht im Büro'],
    ['Absent du bureau : [TKT-1001] Imprimante', 'Absent du bureau'],
    ['Absente jusqu’à lundi', 'Absente'],
    ['Fuori sede', 'Fuori sede'],
    ['Fuori sede fino al 10 marzo', 'Fuori sede'],
    ['Ausente: [TKT-1001] Impresora', 'Ausente'],
    ['Fuera de la oficina hasta el lunes', 'Fuera de la oficina'],
    ['Fora do escritório até 10/03', 'Fora do escritório'],
    ['Afwezig tot 10 maart', 'Afwezig'],
    ['Poza biurem do 10.03', 'Poza biurem'],
    ['Out of office (until 10 March)', 'Out of office'],
    ['Out-of-office: back on Monday', 'Out-of-office'],
    ['On vacation until March 10', 'On vacation'],
    ['Out of office 10.03-14.03', 'Out of office'],
    ['Out of office auto reply', 'Out of office auto reply'],
    ['[Auto-Reply] Re: [TKT-1001] Printer', 'Auto-Reply'],
    ['[Out of Office] [TKT-1001] Printer', 'Out of Office'],
    ['自动答复: [TKT-1001] 打印机', '自动答复'],
    ['자동 회신: [TKT-1001] 프린터', '자동 회신'],
    ['Automatski odgovor: [TKT-1001]', 'Automatski odgovor'],
  ];
  it.each(autoReplies)('"%s" is an auto-reply', async (subject, phrase) => {
    expect(await classify(raw([`Subject: ${subject}`]))).toEqual({
      kind: 'auto-reply',
      reason: `Subject starts with "${phrase}"`,
    });
  });

  it('decodes an encoded-word subject before matching', async () => {
    const subject = `=?UTF-8?B?${Buffer.from('Автоответ: Re: [TKT-1001]').toString('base64')}?=`;
    expect((await classify(raw([`Subject: ${subject}`])))?.kind).toBe('auto-reply');
  });

  const replies = [
    'Re: [TKT-1001] Автоответ не работает',
    'Re: [TKT-1001] Out of office calendar is wrong',
    'Automobile insurance',
    'Re: Autopilot',
    'Auto parts',
    'Re: [TKT-1001] Не приходят письма с сайта',
    'Re: [TKT-1001] Réponse automatique ne marche pas',
    'Absentee ballot',
    'Re: [TKT-1001] Absence du bureau prévue ?',
    'Ref: invoice 4411',
    // a person's subject that talks about auto-replies is not one
    'Автоответ не работает в Outlook',
    'Автоответ до сих пор не работает',
    'Re: Out of office replies are not sent',
    'Question about out-of-office settings',
    'Out of office replies go to the customer',
    'Отсутствую в списке рассылки',
    'Нет на месте кнопки «Ответить»',
    'Автоматический ответ клиенту не уходит',
    'Abwesenheitsnotiz funktioniert nicht',
    'Réponse automatique ne marche pas',
    'Fuori sede la stampante?',
    'Out of office until when?',
    'Out of Office 365 licences',
    'Re: Auto insurance',
    'Absent-minded printer',
    'Fwd: Absentee list',
    'Ausente sin aviso del técnico',
  ];
  it.each(replies)('"%s" is a reply', async (subject) => {
    expect(await classify(raw([`Subject: ${subject}`]))).toBeNull();
  });

  it('looks only at the start of a huge subject', async () => {
    const subject = `${'Re: '.repeat(50_000)}Автоответ`;
    expect(await classify(raw([`Subject: ${subject}`]))).toBeNull();
  });
});

describe('classifyMessage: null sender, reports and mail systems', () => {
  it.each([[''], [null]])('MAIL FROM:<> (%j) is a bounce', async (mailFrom) => {
    expect(await classify(raw([]), mailFrom)).toEqual({
      kind: 'bounce',
      reason: 'null sender: MAIL FROM:<> (a bounce or other automatic message)',
    });
  });

  it('a null sender that says it is an auto-reply is an auto-reply', async () => {
    expect((await classify(raw(['Auto-Submitted: auto-replied']), ''))?.kind).toBe('auto-reply');
    expect((await classify(raw(['Subject: Автоответ']), ''))?.kind).toBe('auto-reply');
  });

  const dsn = (reportType: string, extra: string[] = []) =>
    raw(
      [
        'From: Mail Delivery System <MAILER-DAEMON@mx.example.ru>',
        'Subject: Undelivered Mail Returned to Sender',
        ...extra,
        `Content-Type: multipart/report; report-type=${reportType}; boundary="RPT"`,
      ],
      [
        '--RPT',
        'Content-Type: text/plain; charset=us-ascii',
        '',
        'This is the mail system at host mx.example.ru.',
        '--RPT',
        `Content-Type: message/${reportType}`,
        '',
        'Reporting-MTA: dns; mx.example.ru',
        'Final-Recipient: rfc822; nobody@example.ru',
        'Action: failed',
        'Status: 5.1.1',
        '--RPT--',
      ].join('\n'),
    );

  it('a Postfix DSN (multipart/report, Auto-Submitted, MAILER-DAEMON, null sender) is a bounce', async () => {
    expect(await classify(dsn('delivery-status', ['Auto-Submitted: auto-replied']), '')).toEqual({
      kind: 'bounce',
      reason: 'multipart/report; report-type=delivery-status (a delivery status notification)',
    });
  });

  it('a multipart/report without a null sender is still a report', async () => {
    expect((await classify(dsn('delivery-status'), 'bounces@example.ru'))?.kind).toBe('bounce');
  });

  it('a read receipt (disposition-notification) is an auto-reply', async () => {
    const receipt = raw(
      [
        'Subject: Прочитано: [TKT-1001] Не приходят письма',
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="MDN"',
      ],
      [
        '--MDN',
        'Content-Type: text/plain',
        '',
        'Ваше сообщение прочитано.',
        '--MDN',
        'Content-Type: message/disposition-notification',
        '',
        'Final-Recipient: rfc822; ivan.petrov@example.ru',
        'Disposition: manual-action/MDN-sent-manually; displayed',
        '--MDN--',
      ].join('\n'),
    );
    const result = await classify(receipt);
    expect(result?.kind).toBe('auto-reply');
    expect(result?.reason).toContain('read receipt');
  });

  it('any other report type is an automated report', async () => {
    const arf = raw(
      ['Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"'],
      '--ARF\nContent-Type: text/plain\n\nabuse report\n--ARF--',
    );
    expect(await classify(arf)).toEqual({
      kind: 'auto-reply',
      reason: 'multipart/report; report-type=feedback-report (an automated report)',
    });
  });

  it.each([['MAILER-DAEMON@mx.example.ru'], ['postmaster@example.ru'], ['Postmaster@Example.RU']])(
    'From: %s is a bounce',
    async (from) => {
      const result = await classify(raw([`From: ${from}`, 'Subject: Delivery failure']), 'bounces@example.ru');
      expect(result?.kind).toBe('bounce');
      expect(result?.reason).toContain(from.toLowerCase());
    },
  );
});

describe('classifyMessage: our own notifications coming back', () => {
  const cases: Array<[string, string, NotAReply['kind'] | null]> = [
    ['support@ one of our domains', 'From: FlameCRM <support@flamecrm.ru>', 'own-notification'],
    ['support@ the other domain, any case', 'From: SUPPORT@help.example.com', 'own-notification'],
    ['a tagged support address', 'From: support+TKT-1001@flamecrm.ru', 'own-notification'],
    ['noreply@', 'From: "FlameCRM" <noreply@flamecrm.ru>', 'own-notification'],
    ['our bounce address (VERP)', 'From: bounces+1234.0123456789abcdef@flamecrm.ru', 'own-notification'],
    ['the bare bounces@', 'From: <bounces@flamecrm.ru>', 'own-notification'],
    ['no-reply@', 'From: No-Reply@flamecrm.ru', 'own-notification'],
    ['a configured notification sender', 'From: FlameCRM <notify@crm-mailer.example.net>', 'own-notification'],
    ['staff at our domain', 'From: Иван <ivan@flamecrm.ru>', null],
    ["support@ someone else's domain", 'From: support@example.ru', null],
    ["noreply@ someone else's domain", 'From: noreply@example.ru', null],
  ];
  it.each(cases)('%s', async (_name, from, kind) => {
    const result = await classify(raw([from]));
    expect(result?.kind ?? null).toBe(kind);
    if (kind) expect(result!.reason).toMatch(/^From: .+ is our own notification sender$/);
  });

  it('a Message-ID at a notification-only domain is ours; at a mail domain it is not (staff Exchange)', async () => {
    const withMidDomain: OwnAddresses = { ...OWN, notificationMessageIdDomains: ['notify.flamecrm.ru'] };
    expect((await classify(raw(['Message-ID: <n-1001-7@notify.flamecrm.ru>']), SENDER, withMidDomain))?.kind).toBe(
      'own-notification',
    );
    expect(await classify(raw(['Message-ID: <AB12@flamecrm.ru>']), SENDER, withMidDomain)).toBeNull();
  });
});

describe('classifyMessage: real client replies', () => {
  const dir = fileURLToPath(new URL('../../fixtures/eml/', import.meta.url));
  const files = readdirSync(dir).filter((f) => f.endsWith('.eml'));
  it('has fixtures to check', () => expect(files.length).toBeGreaterThan(20));
  it.each(files)('%s is a reply', async (file) => {
    const message = readFileSync(join(dir, file));
    const parsed = await parseMessage(message);
    expect(classifyMessage(classifyInput(parsed, parsed.from[0]?.address ?? SENDER, OWN))).toBeNull();
  });
});

describe('headerString / headerStrings', () => {
  it('reads every shape mailparser produces', async () => {
    const parsed = await simpleParser(
      raw(
        ['X-Loop: a@x', 'X-Loop: b@x', 'Content-Type: multipart/report; report-type=delivery-status; boundary=Z'],
        '--Z\nContent-Type: text/plain\n\nx\n--Z--',
      ),
    );
    const headers = parsed.headers as Map<string, unknown>;
    expect(headerString(headers, 'content-type')).toBe('multipart/report'); // structured
    expect(headerString(headers, 'from')).toBe('"Иван Петров" <ivan.petrov@example.ru>'); // address object
    expect(headerString(headers, 'date')).toBe('2025-03-14T07:20:00.000Z'); // Date
    expect(headerString(headers, 'x-loop')).toBe('a@x'); // repeated: the first
    expect(headerStrings(headers, 'x-loop')).toEqual(['a@x', 'b@x']);
    expect(headerString(headers, 'x-absent')).toBeNull();
    expect(headerStrings(headers, 'x-absent')).toEqual([]);
  });

  it('classifyInput reads From, report-type and the Message-ID domain', async () => {
    const parsed = await parseMessage(
      raw(['From: A <A@Example.RU>, Group: b@example.ru, c@example.ru;', 'Message-ID: <x1@Mail.Example.RU>']),
    );
    const input = classifyInput(parsed, '', OWN);
    expect(input.fromAddresses).toEqual(['a@example.ru', 'b@example.ru', 'c@example.ru']);
    expect(input.messageIdDomain).toBe('mail.example.ru');
    expect(input.contentType).toBe('text/plain');
    expect(input.reportType).toBeNull();
  });
});
