// The classes of mail other people's test suites showed us failing, each with cases of our own:
// attributions, header blocks, separators and footers in every language of the table; wrapped
// attributions; answers that must never be lost; forwards kept as data.
import { describe, expect, it } from 'vitest';
import { LANGUAGES } from '../../src/mail/reply-text/languages.js';
import { extractReply } from '../../src/mail/reply-text.js';

const ANSWER = 'Исправили, проверьте, пожалуйста.';
const ORIGINAL = 'Новый комментарий в заявке TKT-1001: не приходят письма\n\nЗдравствуйте! Письма перестали приходить.';
const QUOTED = ORIGINAL.split('\n')
  .map((l) => `> ${l}`.trimEnd())
  .join('\n');
const reply = (text: string) => extractReply({ text }).reply;

describe('the language table', () => {
  it.each([
    'ru',
    'uk',
    'en',
    'de',
    'fr',
    'es',
    'it',
    'pt',
    'pl',
    'nl',
    'sv',
    'da',
    'no',
    'fi',
    'cs',
    'tr',
    'ro',
    'hu',
    'zh',
    'ja',
    'ko',
    'ar',
    'vi',
  ])('has %s with attribution verbs, header fields, separators and footers', (code) => {
    const language = LANGUAGES.find((l) => l.code === code)!;
    expect(language, code).toBeDefined();
    expect(language.wrote.length).toBeGreaterThan(0);
    for (const field of ['from', 'date', 'to', 'subject'] as const)
      expect(language[field]?.length, field).toBeGreaterThan(0);
    expect(language.original?.length).toBeGreaterThan(0);
    expect(language.forwarded?.length).toBeGreaterThan(0);
    expect(language.footers?.length).toBeGreaterThan(0);
  });
});

// What each language's clients write above a quote (Gmail first, then Apple Mail, Outlook, Thunderbird).
const ATTRIBUTIONS: Array<[string, string]> = [
  ['en', 'On Tue, 4 Mar 2025 at 10:10, Anna Berg <anna@example.com> wrote:'],
  ['en', 'On 4 Mar 2025, at 10:10, Anna Berg <anna@example.com> wrote:'],
  ['en', 'On 3/4/25 10:10 AM, Anna Berg wrote:'],
  ['ru', 'вт, 4 мар. 2025 г. в 10:10, Анна Берг <anna@example.com>:'],
  ['ru', '4 марта 2025 г., в 10:10, Анна Берг <anna@example.com> написал(а):'],
  ['ru', 'Вторник, 4 марта 2025, 10:10 +03:00 от Анна Берг <anna@example.com>:'],
  ['ru', '04.03.2025 10:10, Анна Берг пишет:'],
  ['uk', 'вт, 4 бер. 2025 р. о 10:10 Анна Берг <anna@example.com> пише:'],
  ['uk', '4 березня 2025 р. о 10:10 Анна Берг <anna@example.com> написав(ла):'],
  ['de', 'Am Di., 4. März 2025 um 10:10 Uhr schrieb Anna Berg <anna@example.com>:'],
  ['de', 'Am 04.03.2025 um 10:10 schrieb Anna Berg:'],
  ['de', 'Anna Berg <anna@example.com> schrieb am Di., 4. März 2025, 10:10:'],
  ['fr', 'Le mar. 4 mars 2025 à 10:10, Anna Berg <anna@example.com> a écrit :'],
  ['fr', 'Le 04/03/2025 à 10:10, Anna Berg a écrit :'],
  ['es', 'El mar, 4 mar 2025 a las 10:10, Anna Berg (<anna@example.com>) escribió:'],
  ['it', 'Il giorno mar 4 mar 2025 alle ore 10:10 Anna Berg <anna@example.com> ha scritto:'],
  ['pt', 'Em ter., 4 de mar. de 2025 às 10:10, Anna Berg <anna@example.com> escreveu:'],
  ['pl', 'wt., 4 mar 2025 o 10:10 Anna Berg <anna@example.com> napisał(a):'],
  ['pl', 'W dniu 4.03.2025 o 10:10, Anna Berg pisze:'],
  ['nl', 'Op di 4 mrt 2025 om 10:10 schreef Anna Berg <anna@example.com>:'],
  ['sv', 'Den tis 4 mars 2025 kl 10:10 skrev Anna Berg <anna@example.com>:'],
  ['da', 'Den tir. 4. mar. 2025 kl. 10.10 skrev Anna Berg <anna@example.com>:'],
  ['no', 'tir. 4. mar. 2025 kl. 10:10 skrev Anna Berg <anna@example.com>:'],
  ['fi', 'ti 4.3.2025 klo 10.10 Anna Berg (anna@example.com) kirjoitti:'],
  ['cs', 'út 4. 3. 2025 v 10:10 odesílatel Anna Berg <anna@example.com> napsal:'],
  ['tr', 'Anna Berg <anna@example.com>, 4 Mar 2025 Sal, 10:10 tarihinde şunu yazdı:'],
  ['ro', 'Pe mar., 4 mar. 2025 la 10:10, Anna Berg <anna@example.com> a scris:'],
  ['hu', 'Anna Berg <anna@example.com> ezt írta (időpont: 2025. márc. 4., K, 10:10):'],
  ['zh', 'Anna Berg <anna@example.com> 于2025年3月4日周二 10:10写道：'],
  ['ja', '2025年3月4日(火) 10:10 Anna Berg <anna@example.com>:'],
  ['ko', '2025년 3월 4일 (화) 오전 10:10, Anna Berg <anna@example.com>님이 작성:'],
  ['ar', 'في الثلاثاء، 4 مارس 2025 في 10:10 ص، كتب Anna Berg <anna@example.com>:'],
  ['vi', 'Vào Th 3, 4 thg 3, 2025 vào lúc 10:10 Anna Berg <anna@example.com> đã viết:'],
];

describe('attribution lines in every language', () => {
  it.each(ATTRIBUTIONS)('%s: %s over a quote', (_code, line) => {
    const r = extractReply({ text: `${ANSWER}\n\n${line}\n${QUOTED}` });
    expect(r.reply).toBe(ANSWER);
    expect(r.removed).toContain(line);
  });

  it.each(ATTRIBUTIONS)('%s: %s over the original pasted unquoted', (_code, line) => {
    expect(reply(`${ANSWER}\n\n${line}\n\n${ORIGINAL}`)).toBe(ANSWER);
  });

  it.each([
    ['"---- Name wrote ----"', '---- Anna Berg wrote ----'],
    [
      'Zoho\'s "---- On …  wrote ----"',
      '---- On Tue, 04 Mar 2025 10:10:00 +0300 Anna Berg <anna@example.com> wrote ----',
    ],
    ['no colon', 'On Tue, 4 Mar 2025 10:10:00 +0300 Anna Berg <anna@example.com> wrote'],
    ['"sent:"', 'On 4-Mar-2025, at 10:10 AM, Anna Berg <anna@example.com> sent:'],
    ["old Gmail's date and address", '2025/3/4 Anna Berg <anna@example.com>'],
  ])('English variant: %s', (_name, line) => {
    expect(reply(`${ANSWER}\n\n${line}\n\n${QUOTED}`)).toBe(ANSWER);
  });

  it('a sentence with "wrote" and a date is not an attribution', () => {
    const text = 'As Anna wrote on 4 March, the form is fine.\nWe will check the relay at 10:10.';
    expect(reply(text)).toBe(text);
  });
});

describe('an attribution wrapped by its client is one unit', () => {
  it.each([
    ['inside the address, English Gmail', 'On Tue, 4 Mar 2025 at 10:10, Anna Berg <\nanna@example.com> wrote:'],
    ['inside the address, Russian Gmail', 'вт, 4 мар. 2025 г. в 10:10, Анна Берг <\nanna@example.com>:'],
    ['old Russian Gmail', '4 марта 2025 г. 10:10 пользователь Анна Берг <\nanna@example.com> написал:'],
    ['before the address', 'Le mar. 4 mars 2025 à 10:10, Anna Berg\n<anna@example.com> a écrit :'],
    ['before the verb', 'Il giorno mar 4 mar 2025, Anna Berg <anna@example.com>\nha scritto:'],
    ['after the verb (German)', 'Anna Berg <anna@example.com> schrieb am Di., 4.\nMärz 2025 um 10:10 Uhr:'],
    ['closing ">" on a line of its own', 'Am 04.03.2025 10:10 schrieb "Anna Berg" <anna@example.com\n>:'],
    ['address spread over four lines', 'On Tue, 4 Mar 2025 at 10:10 Anna Berg\n<\nmailto:anna@example.com\n>\nwrote:'],
  ])('%s', (_name, attribution) => {
    const r = extractReply({ text: `${ANSWER}\n\n${attribution}\n\n${QUOTED}` });
    expect(r.reply).toBe(ANSWER);
    for (const part of attribution.split('\n')) expect(r.removed).toContain(part.trim());
  });

  it('the lines above a wrapped attribution stay when they end a sentence', () => {
    const text = `First line of the answer\nand its end, see you then...\nOp di 4 mrt 2025 om 10:10 schreef "Anna" <anna@example.com> het\nvolgende geschreven:\n\n${QUOTED}`;
    expect(reply(text)).toBe('First line of the answer\nand its end, see you then...');
  });
});

// Outlook's header block over the original, as each language's Outlook writes it.
const HEADERS: Array<[string, [string, string, string, string]]> = [
  ['en', ['From', 'Sent', 'To', 'Subject']],
  ['ru', ['От', 'Отправлено', 'Кому', 'Тема']],
  ['uk', ['Від', 'Надіслано', 'Кому', 'Тема']],
  ['de', ['Von', 'Gesendet', 'An', 'Betreff']],
  ['fr', ['De ', 'Envoyé ', 'À ', 'Objet ']],
  ['es', ['De', 'Enviado', 'Para', 'Asunto']],
  ['it', ['Da', 'Inviato', 'A', 'Oggetto']],
  ['pt', ['De', 'Enviado', 'Para', 'Assunto']],
  ['pl', ['Od', 'Wysłano', 'Do', 'Temat']],
  ['nl', ['Van', 'Verzonden', 'Aan', 'Onderwerp']],
  ['sv', ['Från', 'Skickat', 'Till', 'Ämne']],
  ['da', ['Fra', 'Sendt', 'Til', 'Emne']],
  ['no', ['Fra', 'Sendt', 'Til', 'Emne']],
  ['fi', ['Lähettäjä', 'Lähetetty', 'Vastaanottaja', 'Aihe']],
  ['cs', ['Od', 'Odesláno', 'Komu', 'Předmět']],
  ['tr', ['Kimden', 'Gönderildi', 'Kime', 'Konu']],
  ['ro', ['De la', 'Trimis', 'Către', 'Subiect']],
  ['hu', ['Feladó', 'Elküldve', 'Címzett', 'Tárgy']],
  ['zh', ['发件人', '发送时间', '收件人', '主题']],
  ['ja', ['差出人', '送信日時', '宛先', '件名']],
  ['ko', ['보낸 사람', '보낸 날짜', '받는 사람', '제목']],
  ['ar', ['من', 'تم الإرسال', 'إلى', 'الموضوع']],
  ['vi', ['Từ', 'Đã gửi', 'Đến', 'Chủ đề']],
];

describe('header blocks in every language', () => {
  it.each(HEADERS)('%s', (_code, [from, sent, to, subject]) => {
    const block = `${from}: FlameCRM <notify@flamecrm.ru>\n${sent}: 4.3.2025 10:10\n${to}: Anna Berg\n${subject}: [TKT-1001]`;
    expect(reply(`${ANSWER}\n\n${block}\n\n${ORIGINAL}`)).toBe(ANSWER);
    expect(reply(`${ANSWER}\n\n________________________________\n${block}\n\n${ORIGINAL}`)).toBe(ANSWER);
  });

  it('a block that starts with Date: (web mail)', () => {
    const block =
      'Date: Tue, 4 Mar 2025 10:10:00 +0300\nFrom: notify@flamecrm.ru\nTo: anna@example.com\nSubject: [TKT-1001]';
    expect(reply(`${ANSWER}\n\n${block}\n\n${ORIGINAL}`)).toBe(ANSWER);
  });

  it('bold and indented fields, as pasted from HTML', () => {
    const block = '   *From:* FlameCRM <notify@flamecrm.ru>\n   *Sent:* Tuesday, March 4, 2025 10:10 AM\n   *To:* Anna';
    expect(reply(`${ANSWER}\n\n${block}\n\n${ORIGINAL}`)).toBe(ANSWER);
  });

  it('two lines that look like fields are text when no address says who wrote', () => {
    const text = 'Shipping details:\nFrom: Moscow\nTo: Berlin\n\nWe sent it today.';
    expect(reply(text)).toBe(text);
  });
});

const SEPARATORS = LANGUAGES.flatMap((l) => (l.original ?? []).slice(0, 1).map((s) => [l.code, s] as [string, string]));

describe('"original message" separators in every language', () => {
  it.each(SEPARATORS)('%s: -----%s-----', (_code, separator) => {
    expect(reply(`${ANSWER}\n\n-----${separator}-----\n${ORIGINAL}`)).toBe(ANSWER);
    expect(reply(`${ANSWER}\n\n-------- ${separator} --------\n${ORIGINAL}`)).toBe(ANSWER);
  });

  it('the words without dashes in a sentence are text', () => {
    const text = 'The original message was lost.\nPlease resend it.';
    expect(reply(text)).toBe(text);
  });
});

const FOOTERS: Array<[string, string]> = [
  ['en', 'Sent from my iPhone'],
  ['en', 'Sent from my Galaxy Tab S9'],
  ['en', 'Get Outlook for Android<https://aka.ms/AAb9ysg>'],
  ['en', 'Sent with Spark (https://sparkmailapp.com)'],
  ['ru', 'Отправлено из мобильной Почты Mail.ru'],
  ['ru', 'Отправлено с iPhone'],
  ['uk', 'Надіслано з iPhone'],
  ['de', 'Von meinem iPhone gesendet'],
  ['fr', 'Envoyé de mon iPhone'],
  ['es', 'Enviado desde mi iPhone'],
  ['it', 'Inviato da iPhone'],
  ['pt', 'Enviado do meu iPhone'],
  ['pl', 'Wysłane z iPhone’a'],
  ['nl', 'Verstuurd vanaf mijn iPhone'],
  ['sv', 'Skickat från min iPhone'],
  ['da', 'Sendt fra min iPhone'],
  ['no', 'Sendt fra min iPhone'],
  ['fi', 'Lähetetty iPhonesta'],
  ['cs', 'Odesláno z iPhonu'],
  ['tr', 'iPhone’umdan gönderildi'],
  ['ro', 'Trimis de pe iPhone-ul meu'],
  ['hu', 'iPhone-ról küldve'],
  ['zh', '从我的iPhone发送'],
  ['ja', 'iPhoneから送信'],
  ['ko', 'iPhone에서 보냄'],
  ['ar', 'أرسلت من الـ iPhone'],
  ['vi', 'Gửi từ iPhone của tôi'],
];

describe('device footers in every language', () => {
  it.each(FOOTERS)('%s: "%s" at the end', (_code, footer) => {
    const r = extractReply({ text: `${ANSWER}\n\n${footer}` });
    expect(r.reply).toBe(ANSWER);
    expect(r.removed).toBe(footer);
  });

  it.each(FOOTERS)('%s: "%s" above the quote', (_code, footer) => {
    expect(reply(`${ANSWER}\n\n${footer}\n\n${ATTRIBUTIONS[0]![1]}\n${QUOTED}`)).toBe(ANSWER);
  });

  it.each([
    'Sent from my laptop at home, since the office VPN was down.',
    'Sent from my iPhone, the screenshot shows the error.',
    'Отправлено с телефона, потому что ноутбук сломался, завтра пришлю логи.',
  ])('a sentence that starts like a footer is text: "%s"', (line) => {
    expect(reply(`${ANSWER}\n\n${line}`)).toBe(`${ANSWER}\n\n${line}`);
  });

  it('a footer inside the answer is where the answer ends only when the original follows it', () => {
    expect(reply(`${ANSWER}\n\nSent from my iPhone\n\n${ORIGINAL}`)).toBe(ANSWER);
  });
});

describe('the answer is never lost', () => {
  it('text on the line of an attribution stays', () => {
    expect(reply(`Works now. On Tue, 4 Mar 2025 at 10:10, Anna <anna@example.com> wrote:\n${QUOTED}`)).toBe(
      'Works now.',
    );
    expect(reply(`Works now--- On Tue, 4 Mar 2025 at 10:10, anna@example.com wrote:\n${QUOTED}`)).toBe('Works now');
  });

  it('a sentence that starts with "On" and a date stays before the attribution', () => {
    const text = `On Monday we deploy the fix. On Tue, 4 Mar 2025 at 10:10, Anna <anna@example.com> wrote:\n${QUOTED}`;
    expect(reply(text)).toBe('On Monday we deploy the fix.');
  });

  it('">>> link <<<" is decoration, not a quote', () => {
    const text = 'Visit the portal:\n>>> https://crm.flamecrm.ru/tickets <<<\nand log in.';
    expect(reply(text)).toBe(text);
  });

  it('a message that is only a quote, with nothing saying what it quotes, is shown as it is', () => {
    expect(reply('> Could you resend the invoice?')).toBe('> Could you resend the invoice?');
  });

  it('a message that is only a signature is shown as it is', () => {
    expect(reply('--\nAnna Berg')).toBe('--\nAnna Berg');
  });

  it('a quote its client wrapped without ">" goes with the quote', () => {
    const text = `${ANSWER}\n\n${ATTRIBUTIONS[0]![1]}\n> The form on the site has stopped sending anything since yesterday ev\nening, could you check?\n> Thanks`;
    expect(reply(text)).toBe(ANSWER);
  });

  it('an answer below the quote (bottom posting) is the answer', () => {
    expect(reply(`${ATTRIBUTIONS[6]![1]}\n${QUOTED}\n\n${ANSWER}`)).toBe(ANSWER);
  });
});

describe('forwarded messages are kept as data', () => {
  const BODY = 'The form has stopped working.\n\nAnna';
  const cases: Array<[string, string, { from: string; date?: string; subject?: string }]> = [
    [
      'Gmail',
      `---------- Forwarded message ---------\nFrom: Anna Berg <anna@example.com>\nDate: Tue, Mar 4, 2025 at 10:10 AM\nSubject: Form\nTo: <support@flamecrm.ru>\n\n${BODY}`,
      { from: 'Anna Berg <anna@example.com>', date: 'Tue, Mar 4, 2025 at 10:10 AM', subject: 'Form' },
    ],
    [
      'Outlook',
      `________________________________\nFrom: Anna Berg <anna@example.com>\nSent: Tuesday, March 4, 2025 10:10\nTo: support@flamecrm.ru\nSubject: Form\n\n${BODY}`,
      { from: 'Anna Berg <anna@example.com>', date: 'Tuesday, March 4, 2025 10:10', subject: 'Form' },
    ],
    [
      'Apple Mail, quoted whole',
      `Begin forwarded message:\n\n> From: Anna Berg <anna@example.com>\n> Subject: Form\n> Date: 4 March 2025 at 10:10:00 GMT+3\n> To: support@flamecrm.ru\n>\n> ${BODY.replace('\n\n', '\n>\n> ')}`,
      { from: 'Anna Berg <anna@example.com>', subject: 'Form' },
    ],
    [
      'Thunderbird',
      `-------- Forwarded Message --------\nSubject: \tForm\nDate: \tTue, 4 Mar 2025 10:10:00 +0300\nFrom: \tAnna Berg <anna@example.com>\nTo: \tsupport@flamecrm.ru\n\n${BODY}`,
      { from: 'Anna Berg <anna@example.com>', date: 'Tue, 4 Mar 2025 10:10:00 +0300', subject: 'Form' },
    ],
    [
      "Yahoo's one line",
      `----- Forwarded Message ----- From: Anna Berg <anna@example.com>To: support@flamecrm.ru <support@flamecrm.ru>Sent: Tuesday, March 4, 2025, 10:10:00 AM GMT+3Subject: Form\n${BODY}`,
      { from: 'Anna Berg <anna@example.com>', date: 'Tuesday, March 4, 2025, 10:10:00 AM GMT+3', subject: 'Form' },
    ],
    [
      'Thunderbird in Russian',
      `-------- Перенаправленное сообщение --------\nТема: \tФорма\nДата: \tTue, 4 Mar 2025 10:10:00 +0300\nОт: \tАнна Берг <anna@example.com>\nКому: \tsupport@flamecrm.ru\n\n${BODY}`,
      { from: 'Анна Берг <anna@example.com>', subject: 'Форма' },
    ],
    [
      'Mail.ru in Russian',
      `-------- Пересылаемое сообщение --------\n04.03.2025, 10:10, "Анна Берг" <anna@example.com>:\n\n${BODY}`,
      { from: '"Анна Берг" <anna@example.com>' },
    ],
    [
      'Gmail in German',
      `---------- Weitergeleitete Nachricht ---------\nVon: Anna Berg <anna@example.com>\nDate: Di., 4. März 2025 um 10:10 Uhr\nSubject: Form\nTo: <support@flamecrm.ru>\n\n${BODY}`,
      { from: 'Anna Berg <anna@example.com>', subject: 'Form' },
    ],
  ];

  it.each(cases)('%s, with a note above it', (_name, forward, fields) => {
    const r = extractReply({ text: `Please look at this one.\n\n${forward}`, subject: 'Fwd: Form' });
    expect(r.reply).toBe('Please look at this one.');
    expect(r.forwarded).toMatchObject({ ...fields, text: BODY });
  });

  it.each(cases)('%s, without a note', (_name, forward, fields) => {
    const r = extractReply({ text: forward });
    expect(r.reply).toBe('');
    expect(r.forwarded).toMatchObject({ ...fields, text: BODY });
  });

  it('an original with nothing written above it is kept as the forwarded message, not thrown away', () => {
    const r = extractReply({ text: `On Tue, 4 Mar 2025 at 10:10, Anna Berg <anna@example.com> wrote:\n\n    ${BODY}` });
    expect(r.reply).toBe('');
    expect(r.forwarded).toMatchObject({ from: 'Anna Berg <anna@example.com>', text: BODY });
  });

  it("Outlook's header block under a note is a forward when the subject says so, a quote otherwise", () => {
    const text = `Please look.\n\n________________________________\nFrom: Anna Berg <anna@example.com>\nSent: Tuesday, March 4, 2025 10:10\nTo: support@flamecrm.ru\nSubject: Form\n\n${BODY}`;
    for (const subject of ['FW: Form', 'WG: Form', 'Пересл: Form', 'TR: Form', 'RV: Form', '[TKT-1001] Fwd: Form'])
      expect(extractReply({ text, subject }).forwarded, subject).toMatchObject({ subject: 'Form', text: BODY });
    for (const subject of ['RE: Form', 'Re: [TKT-1001] Form', 'Form', null]) {
      const r = extractReply({ text, subject });
      expect(r.reply, String(subject)).toBe('Please look.');
      expect(r.forwarded, String(subject)).toBeUndefined();
    }
  });

  it('a reply has no forwarded message', () => {
    expect(extractReply({ text: `${ANSWER}\n\n${ATTRIBUTIONS[0]![1]}\n${QUOTED}` }).forwarded).toBeUndefined();
  });

  it('an HTML forward (Gmail) gives the same data', () => {
    const html = `<div dir="ltr">Please look.<br><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">---------- Forwarded message ---------<br>From: <strong class="gmail_sendername">Anna Berg</strong> <span>&lt;anna@example.com&gt;</span><br>Date: Tue, Mar 4, 2025 at 10:10 AM<br>Subject: Form<br>To: &lt;support@flamecrm.ru&gt;<br></div><br><br><div dir="ltr">The form has stopped working.</div></div></div>`;
    const r = extractReply({ html });
    expect(r).toMatchObject({ reply: 'Please look.', method: 'html' });
    expect(r.forwarded).toMatchObject({
      from: 'Anna Berg <anna@example.com>',
      subject: 'Form',
      text: 'The form has stopped working.',
    });
  });
});
