// Replies in the shapes our customers' clients write them (Yandex, Mail.ru, Outlook, The Bat!,
// 1C-Bitrix, Foxmail) and ordinary replies whose own lines look like those markers: a line that
// ends with ":" or holds a date, an address or a "wrote"-like word is cut only when it has the
// structure a client gives it. Each case is ours, written after what those clients produce.
import { describe, expect, it } from 'vitest';
import { LANGUAGES } from '../../src/mail/reply-text/languages.js';
import { extractReply } from '../../src/mail/reply-text.js';

const QUOTED =
  '> Новый комментарий в заявке TKT-1001: не приходят письма\n>\n> Здравствуйте! Письма перестали приходить.';
const ORIGINAL = 'Новый комментарий в заявке TKT-1001: не приходят письма\n\nЗдравствуйте! Письма перестали приходить.';
const reply = (text: string) => extractReply({ text }).reply;

describe("the person's own lines are not taken for an attribution or a header block", () => {
  // Each text is the whole answer: nothing in it may be cut.
  it.each([
    ['a letter head with a colon', 'Добрый день, Иван Петрович:\n\nпроверили, всё работает.\nНапишите, если что.'],
    [
      'a date, a time and an address in a sentence',
      'Hello,\nthe meeting on 14.03.2025 at 10:10 is moved, details from ann@example.com:\nroom 5, floor 2.\nThanks',
    ],
    [
      '"wrote" and a date after it in a sentence',
      'Hi,\nhere is what Ann wrote on Friday, 14 March 2025 at 10:10:\nthe server is down again.\nPlease check.',
    ],
    [
      '"написал" and a date after it',
      'Привет,\nвот что клиент написал 14.03.2025 в 10:10:\nне работает вход.\nПроверьте',
    ],
    [
      'a sentence with a date, an address and "написал"',
      'Здравствуйте!\n\nВчера 14 марта в 10:10 Иван Петров <ivan@example.com> написал:\nвсё работает.\nСпасибо',
    ],
    [
      'a sentence that starts with a date, with an address before the colon',
      'Добрый день!\n\n14.03.2025 в 10:00 приходите, адрес у ivan@example.com:\nпереговорная 5.',
    ],
    ['an agenda with a date and a time', 'Итоги встречи 14.03.2025 10:00:\n1. Переносим релиз.\n2. Тесты.'],
    [
      'a date, a name and an address, no verb',
      'Коллеги,\nВстреча 14.03.2025 в 10:00, Анна <anna@example.com>:\nобсудим счета.',
    ],
    ['"On" and "wrote" with no date or address', 'Hi,\nOn the other hand, Ann wrote:\nwe can ship it.\nOK?'],
    [
      '"On", a weekday, "wrote" and an address in a sentence',
      'On Monday I wrote to ann@example.com about it:\nthe server is down.\nPlease check.',
    ],
    ['"said" and a date', 'As Ann said on 14 Mar 2025 at 10:10:\nwe need more time.\nOK?'],
    ['"sent" and a date', 'Hi Ann,\nI sent you the files on 14 March 2025 at 10:10:\nreport.pdf and data.csv.\nBest'],
    [
      '"wrote", a weekday and an address',
      'Hi,\nAnn wrote on Monday that the server is down, see ann@example.com:\nplease call her.',
    ],
    [
      'a typed list of who and what',
      'From: the accounting team\nTo: everyone\nSubject: invoices are late\n\nPlease send them.',
    ],
    ['a typed list with a date', 'Hi,\nFrom: me\nDate: 14.03.2025\nTo: you\n\nPlease confirm.'],
    [
      'Russian field names with no date in "Отправлено"',
      'Отправлено: вчера в 10:10\nКому: бухгалтерии\nТема: счета\nПожалуйста, проверьте.',
    ],
    [
      '"Original:" as a label',
      'Compare the two versions.\n\nOriginal:\nthe cat sat\n\nEdited:\nthe cat sat down\n\nThanks',
    ],
    ['"Forwarded:" as a label', 'Hi,\nForwarded:\n3 tickets to the billing team.\nThanks'],
    [
      '"Вы писали" with a date, the writer a pronoun',
      'Добрый день, Анна!\n\n04.03.2025 в 10:10 Вы писали:\nпроблема с формой.\nМы её исправили.',
    ],
    [
      '"From:" with an address and a sentence after it',
      'Hi,\nFrom: Ann <ann@example.com> — she is our new admin.\nTo: please add her.\nThanks',
    ],
    [
      'a memo of Тема/Кому/От with an address and no date',
      'Добрый день!\n\nТема: продление договора\nКому: юристам\nОт: Иван Петров <ivan@example.com>\n\nПрошу согласовать.',
    ],
    [
      'two fields with addresses and no date',
      'Познакомьтесь:\n\nОт: Иван Петров <ivan@example.com>\nКому: Анна Берг <anna@example.com>\n\nИван пишет Анне по договору.',
    ],
    [
      '"Исходное сообщение:" as a label',
      'Исходное сообщение:\nне приходят письма\n\nИсправленное:\nприходят с задержкой',
    ],
  ])('%s', (_name, text) => {
    const r = extractReply({ text });
    expect(r.reply).toBe(text);
    expect(r.removed).toBe('');
  });

  // A letter head above the client's own attribution and quote: the head is the answer's.
  it.each([
    ['Добрый день, Иван Петрович:', 'вт, 4 мар. 2025 г. в 10:10, FlameCRM <notify@flamecrm.ru>:'],
    ['Dear team,', 'On Tue, 4 Mar 2025 at 10:10, FlameCRM <notify@flamecrm.ru> wrote:'],
    ['Здравствуйте!', '04.03.2025, 10:10, "FlameCRM" <notify@flamecrm.ru>:'],
    ['Здравствуйте, коллеги:', 'Вторник, 4 марта 2025, 10:10 +03:00 от FlameCRM <notify@flamecrm.ru>:'],
  ])('the head "%s" above %s', (head, attribution) => {
    const answer = `${head}\n\nисправили, проверьте.`;
    expect(reply(`${answer}\n\n${attribution}\n${QUOTED}`)).toBe(answer);
    expect(reply(`${answer}\n\n${attribution}\n\n${ORIGINAL}`)).toBe(answer);
  });

  // The real shapes still cut, over the original pasted unquoted (where a wrong cut costs most).
  it.each([
    ['Gmail ru', 'вт, 4 мар. 2025 г. в 10:10, Анна Берг <anna@example.com>:'],
    ['Mail.ru', 'Вторник, 4 марта 2025, 10:10 +03:00 от Анна Берг <anna@example.com>:'],
    ['Yandex', '04.03.2025, 10:10, "Анна Берг" <anna@example.com>:'],
    ['Thunderbird ru', '04.03.2025 10:10, Анна Берг пишет:'],
    ['Apple Mail ru', '4 марта 2025 г., в 10:10, Анна Берг <anna@example.com> написал(а):'],
    ['Eudora', 'At 10:10 AM 3/4/2025, you wrote:'],
    ['Gmail no, Tuesday', 'tir. 4. mar. 2025 kl. 10:10 skrev Anna Berg <anna@example.com>:'],
    ['Outlook da', 'Anna Berg <anna@example.com> skrev følgende den 04-03-2025 10:10:'],
    ['Outlook sv', 'Den 2025-03-04 10:10 skrev "Anna Berg" <anna@example.com> följande:'],
    [
      'Gmail de, a display name with small words',
      'Anna via Support <anna@example.com> schrieb am Di., 4. März 2025, 10:10:',
    ],
    [
      'Outlook ru header block',
      'От: Анна Берг <anna@example.com>\nОтправлено: 4 марта 2025 г. 10:10\nКому: support@flamecrm.ru\nТема: Re: TKT-1001',
    ],
    [
      'Outlook en header block, no address',
      'From: Anna Berg\nSent: Tuesday, March 4, 2025 10:10 AM\nTo: Support\nSubject: RE: TKT-1001',
    ],
    [
      'two Outlook fields with an address and a date',
      'От: Анна Берг <anna@example.com>\nОтправлено: 4 марта 2025 г. 10:10',
    ],
    [
      'Apple Mail forward label',
      'Begin forwarded message:\n\nFrom: Anna Berg <anna@example.com>\nSubject: TKT-1001\nDate: 4 March 2025 at 10:10:00 GMT+3',
    ],
  ])('%s', (_name, marker) => {
    const answer = 'Исправили, проверьте, пожалуйста.';
    expect(reply(`${answer}\n\n${marker}\n\n${ORIGINAL}`)).toBe(answer);
  });
});

describe('invisible characters do not hide a marker, and stay in the text kept', () => {
  const INVISIBLE: Array<[string, string]> = [
    ['left-to-right mark', '\u200e'],
    ['right-to-left mark', '\u200f'],
    ['Arabic letter mark', '\u061c'],
    ['right-to-left embedding', '\u202b'],
    ['pop directional formatting', '\u202c'],
    ['first strong isolate', '\u2068'],
    ['pop directional isolate', '\u2069'],
    ['zero-width space', '\u200b'],
    ['zero-width non-joiner', '\u200c'],
    ['zero-width joiner', '\u200d'],
    ['word joiner', '\u2060'],
    ['byte order mark', '\ufeff'],
    ['soft hyphen', '\u00ad'],
  ];
  const shapes: Array<[string, (m: string) => string]> = [
    [
      'Gmail ru attribution',
      (m) => `${m}вт, 4 мар. 2025 г. в 10:10, ${m}Анна Берг${m} <anna@example.com>${m}:\n\n${ORIGINAL}`,
    ],
    [
      'a verb with the mark inside it',
      (m) => `On Tue, 4 Mar 2025 at 10:10, Anna <anna@example.com> wr${m}ote:\n${QUOTED}`,
    ],
    [
      'quote markers',
      (m) =>
        QUOTED.split('\n')
          .map((l) => `${m}${l}`)
          .join('\n'),
    ],
    [
      'Outlook ru header block',
      (m) =>
        `${m}От: Анна Берг <anna@example.com>\n${m}Отправлено: 4 марта 2025 г. 10:10\nКому: support@flamecrm.ru\n${m}Тема: RE: TKT-1001\n\n${ORIGINAL}`,
    ],
    [
      'a separator',
      (m) =>
        `-----${m}Исходное сообщение${m}-----\nОт: Анна Берг <anna@example.com>\nОтправлено: 4 марта 2025 г. 10:10\nТема: TKT-1001\n\n${ORIGINAL}`,
    ],
    ['a signature delimiter', (m) => `--${m} \nАнна Берг\nFlameCRM`],
    ['a device footer', (m) => `Отправлено из Почты${m} Mail.ru`],
  ];
  const cases = INVISIBLE.flatMap(([name, m]) => shapes.map(([shape, make]) => [name, shape, m, make] as const));
  it.each(cases)('%s in %s', (_name, _shape, m, make) => {
    const answer = `Испр${m}авили, про${m}верьте.`;
    const r = extractReply({ text: `${answer}\n\n${make(m)}` });
    expect(r.reply).toBe(answer);
    expect(r.removed).not.toBe('');
  });

  it('an attribution inside a line is split where it starts, marks and all', () => {
    const m = '\u200f';
    const r = extractReply({
      text: `Исправили${m}. On Tue, 4 Mar 2025 at 10:10, Anna <anna@example.com> wr${m}ote:\n${QUOTED}`,
    });
    expect(r.reply).toBe(`Исправили${m}.`);
    expect(r.removed).toContain(`wr${m}ote:`);
  });

  it('a forwarded text keeps its marks; the fields are read without them', () => {
    const m = '\u200e';
    const r = extractReply({
      text: `---------- Forwarded message ---------\nFrom: ${m}Anna Berg${m} <anna@example.com>\nDate: Tue, 4 Mar 2025 at 10:10\nSubject: Form\nTo: <support@flamecrm.ru>\n\n${m}שלום${m}, the form is broken.`,
    });
    expect(r.forwarded?.from).toBe('Anna Berg <anna@example.com>');
    expect(r.forwarded?.text).toBe(`${m}שלום${m}, the form is broken.`);
  });
});

describe('The Bat!', () => {
  const ATTRIBUTION = 'Вы писали 4 марта 2025 г., 10:10:';
  it.each([
    [
      'Russian template, initials at the margin',
      `Здравствуйте, Анна.\n\n${ATTRIBUTION}\n\nАБ> Новый комментарий в заявке TKT-1001\nАБ> Здравствуйте! Письма перестали приходить.\n\nИсправили, проверьте.`,
    ],
    [
      'initials after a space',
      `Здравствуйте, Анна.\n\n${ATTRIBUTION}\n\n АБ> Новый комментарий в заявке TKT-1001\n АБ>\n АБ> Здравствуйте! Письма перестали приходить.\n\nИсправили, проверьте.`,
    ],
    [
      'Latin initials, nested',
      `Hello Anna,\n\nTuesday, March 4, 2025, 10:10:00 AM, you wrote:\n\nAB> Ivan wrote:\nAB>> The form is broken.\nAB> Any news?\n\nИсправили, проверьте.`,
    ],
  ])('%s', (_name, text) => {
    const r = extractReply({ text });
    expect(r.reply).toMatch(/^(?:Здравствуйте, Анна\.|Hello Anna,)\n\nИсправили, проверьте\.$/);
    expect(r.removed).toMatch(/^ ?(?:АБ|AB)> /m);
    expect(r.reply).not.toContain('>');
  });

  it('answers between quoted parts stay, each quoted part goes', () => {
    const r = extractReply({
      text: `Здравствуйте, Анна.\n\n${ATTRIBUTION}\n\nАБ> Первый вопрос?\n\nОтвет первый.\n\nАБ> Второй вопрос?\n\nОтвет второй.`,
    });
    expect(r.reply).toBe('Здравствуйте, Анна.\n\nОтвет первый.\n\nОтвет второй.');
    expect(r.removed).toContain('АБ> Первый вопрос?');
    expect(r.removed).toContain(ATTRIBUTION);
  });

  it('"<date> Вы писали:" above a quote is an attribution', () => {
    const r = extractReply({
      text: 'Добрый день.\n\n04.03.2025 в 10:10 Вы писали:\n> нужен отчёт за март\n\nОтчёт готов.',
    });
    expect(r.reply).toBe('Добрый день.\n\nОтчёт готов.');
    expect(r.removed).toContain('Вы писали:');
  });

  it('"Вы писали <date>:" names no writer: above no quote it is the person\'s sentence', () => {
    const text = `Добрый день.\n\n${ATTRIBUTION}\nнужен отчёт за март.\nОтправили вчера.`;
    expect(reply(text)).toBe(text);
  });

  it.each([
    ['a capital and ">" once', 'Compare:\nA> B holds for all n.\nThe rest follows.'],
    ['a comparison on two lines, no space after ">"', 'Итог:\nА>Б по всем пунктам.\nА>В тоже.'],
  ])('not quoting: %s', (_name, text) => {
    expect(reply(text)).toBe(text);
  });
});

describe('Foxmail', () => {
  it.each([
    [
      'English',
      '------------------ Original ------------------\nFrom: "Anna Berg"<anna@example.com>;\nDate: Tue, Mar 4, 2025 10:10 AM\nTo: "support"<support@flamecrm.ru>;\nSubject: TKT-1001',
    ],
    [
      'Chinese, no-break spaces',
      '------------------\u00a0原始邮件\u00a0------------------\n发件人: "Anna Berg"<anna@example.com>;\n发送时间: 2025年3月4日(星期二) 上午10:10\n收件人: "support"<support@flamecrm.ru>;\n主题: TKT-1001',
    ],
  ])('text, %s', (_name, block) => {
    const r = extractReply({ text: `Исправили, проверьте.\n\n\n${block}\n\n${ORIGINAL}` });
    expect(r.reply).toBe('Исправили, проверьте.');
    expect(r.removed).toContain(block.split('\n')[1]!);
  });

  it('HTML', () => {
    const html = `<div>Исправили, проверьте.</div><div><br></div><div style="font-size: 12px;font-family: Arial Narrow;padding:2px 0 2px 0;">------------------&nbsp;Original&nbsp;------------------</div><div style="font-size: 12px;background:#efefef;padding:8px;"><div><b>From:</b> "Anna Berg"&lt;anna@example.com&gt;;</div><div><b>Date:</b>&nbsp;Tue, Mar 4, 2025 10:10 AM</div><div><b>To:</b>&nbsp;"support"&lt;support@flamecrm.ru&gt;;</div><div><b>Subject:</b>&nbsp;TKT-1001</div></div><div><br></div><div>Форма не работает.</div>`;
    const r = extractReply({ html });
    expect(r.method).toBe('html');
    expect(r.reply).toBe('Исправили, проверьте.');
    expect(r.removed).toContain('Форма не работает.');
  });
});

describe('a bare <blockquote> without an attribution', () => {
  it('ending the message below the answer is the original', () => {
    const r = extractReply({
      html: '<div>Исправили, проверьте.</div><blockquote><div>Форма не работает.</div><div>Помогите.</div></blockquote>',
    });
    expect(r.reply).toBe('Исправили, проверьте.');
    expect(r.removed).toBe('Форма не работает.\nПомогите.');
  });

  it.each([
    [
      'with the answer going on after it',
      '<div>См. ошибку</div><blockquote>Error 500 at /login</blockquote><div>Каждое утро.</div>',
    ],
    [
      'introduced by the answer with a colon',
      '<div>Вот лог:</div><blockquote><div>Error 500 at /login</div><div>Error 502 at /api</div></blockquote>',
    ],
    ['with nothing above it', '<blockquote><div>Отступ, сделанный кнопкой редактора.</div></blockquote>'],
  ])("%s is the person's", (_name, html) => {
    const r = extractReply({ html });
    expect(r.removed).toBe('');
  });
});

describe('1C-Bitrix and Outlook header fields as paragraphs', () => {
  it.each([
    [
      'Russian, HTML paragraphs',
      '<p>Исправили, проверьте.</p><p><b>От:</b> Анна Берг &lt;anna@example.com&gt;</p><p><b>Отправлено:</b> 4 марта 2025 г. 10:10</p><p><b>Кому:</b> support@flamecrm.ru</p><p><b>Тема:</b> TKT-1001</p><p>Форма не работает.</p>',
    ],
    [
      'English, HTML paragraphs, no address in To',
      '<p>Исправили, проверьте.</p><p>From: Anna Berg [mailto:anna@example.com]</p><p>Sent: Tuesday, March 4, 2025 10:10 AM</p><p>To: Support</p><p>Subject: TKT-1001</p><p>Форма не работает.</p>',
    ],
  ])('%s', (_name, html) => {
    const r = extractReply({ html });
    expect(r.reply).toBe('Исправили, проверьте.');
    expect(r.removed).toContain('Форма не работает.');
  });

  it('as text with blank lines between the fields', () => {
    const text = `Исправили, проверьте.\n\nОт: Анна Берг <anna@example.com>\n\nОтправлено: 4 марта 2025 г. 10:10\n\nКому: support@flamecrm.ru\n\nТема: TKT-1001\n\n${ORIGINAL}`;
    expect(reply(text)).toBe('Исправили, проверьте.');
  });

  it('fields two blank lines apart are no block', () => {
    const text = 'Исправили.\n\nОт: отдела продаж\n\n\nТема: счета\n\n\nКому: всем';
    expect(reply(text)).toBe(text);
  });
});

// Outlook's header block in each language: From, Sent, To, Subject as Outlook for Windows and
// Outlook on the web write them, over the original pasted unquoted.
const OUTLOOK: Array<[string, [string, string, string, string]]> = [
  ['en', ['From', 'Sent', 'To', 'Subject']],
  ['ru', ['От', 'Отправлено', 'Кому', 'Тема']],
  ['uk', ['Від', 'Надіслано', 'Кому', 'Тема']],
  ['be', ['Ад', 'Адпраўлена', 'Каму', 'Тэма']],
  ['kk', ['Кімнен', 'Жіберілді', 'Кімге', 'Тақырып']],
  ['kk', ['Жіберуші', 'Күні', 'Алушы', 'Тақырыбы']],
  ['uz', ['Kimdan', 'Yuborildi', 'Kimga', 'Mavzu']],
  ['uz', ['Кимдан', 'Юборилди', 'Кимга', 'Мавзу']],
  ['tt', ['Кемнән', 'Җибәрелде', 'Кемгә', 'Тема']],
  ['az', ['Kimdən', 'Göndərildi', 'Kimə', 'Mövzu']],
  ['ka', ['ვისგან', 'გაგზავნილია', 'ვის', 'თემა']],
  ['hy', ['Ումից', 'Ուղարկված է', 'Ում', 'Թեմա']],
  ['tr', ['Kimden', 'Gönderildi', 'Kime', 'Konu']],
  ['pl', ['Od', 'Wysłano', 'Do', 'Temat']],
  ['cs', ['Od', 'Odesláno', 'Komu', 'Předmět']],
  ['de', ['Von', 'Gesendet', 'An', 'Betreff']],
  ['fr', ['De', 'Envoyé', 'À', 'Objet']],
  ['es', ['De', 'Enviado', 'Para', 'Asunto']],
  ['pt', ['De', 'Enviado', 'Para', 'Assunto']],
  ['it', ['Da', 'Inviato', 'A', 'Oggetto']],
  ['zh', ['发件人', '发送时间', '收件人', '主题']],
  ['zh', ['寄件者', '寄件日期', '收件者', '主旨']],
  ['ja', ['差出人', '送信日時', '宛先', '件名']],
];

describe("Outlook's header block in every language", () => {
  const ANSWER = 'Исправили, проверьте.';
  const block = ([from, sent, to, subject]: [string, string, string, string], sender: string) =>
    `${from}: ${sender}\n${sent}: 04.03.2025 10:10\n${to}: support@flamecrm.ru\n${subject}: RE: TKT-1001`;

  it.each(OUTLOOK)('%s: %j in text', (_code, names) => {
    expect(reply(`${ANSWER}\n\n${block(names, 'Anna Berg <anna@example.com>')}\n\n${ORIGINAL}`)).toBe(ANSWER);
    // a From with a name only is a block when the Sent field holds a date
    expect(reply(`${ANSWER}\n\n${block(names, 'Anna Berg')}\n\n${ORIGINAL}`)).toBe(ANSWER);
  });

  it.each(OUTLOOK)("%s: %j under Outlook's rule in HTML", (_code, [from, sent, to, subject]) => {
    const html = `<div>${ANSWER}</div><div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm"><p><b>${from}:</b> Anna Berg<br><b>${sent}:</b> 04.03.2025 10:10<br><b>${to}:</b> Support<br><b>${subject}:</b> RE: TKT-1001</p></div><p>Форма не работает.</p>`;
    const r = extractReply({ html });
    expect(r.reply).toBe(ANSWER);
    expect(r.removed).toContain('Форма не работает.');
  });
});

describe("the rows of our customers' neighbours", () => {
  it.each(['be', 'kk', 'uz', 'tt', 'az', 'ka', 'hy'])('%s has verbs, header fields and separators', (code) => {
    const language = LANGUAGES.find((l) => l.code === code);
    expect(language, code).toBeDefined();
    expect(language!.wrote.length).toBeGreaterThan(0);
    for (const field of ['from', 'date', 'to', 'subject'] as const)
      expect(language![field]?.length, field).toBeGreaterThan(0);
    expect(language!.original?.length).toBeGreaterThan(0);
    expect(language!.forwarded?.length).toBeGreaterThan(0);
  });

  it.each([
    ['be', '4 сакавіка 2025 г. у 10:10 Анна Берг <anna@example.com> напісаў(-ла):'],
    ['kk', '2025 ж. 4 нау., сс, 10:10 Anna Berg <anna@example.com> жазды:'],
    ['uz', '2025-yil 4-mart, 10:10 Anna Berg <anna@example.com> yozdi:'],
    ['az', '4 mart 2025, 10:10 tarixində Anna Berg <anna@example.com> yazdı:'],
    ['ka', '2025 წ. 4 მარტი, 10:10 Anna Berg <anna@example.com> დაწერა:'],
    ['hy', '2025 թ. մարտի 4, 10:10 Anna Berg <anna@example.com> գրել է:'],
  ])('%s: %s over the original pasted unquoted', (_code, line) => {
    const answer = 'Исправили, проверьте.';
    expect(reply(`${answer}\n\n${line}\n\n${ORIGINAL}`)).toBe(answer);
  });

  it.each([
    ['be', '-----Зыходнае паведамленне-----'],
    ['kk', '-----Бастапқы хабар-----'],
    ['az', '-----Orijinal məktub-----'],
    ['hy', '-----Սկզբնական հաղորդագրություն-----'],
  ])('%s: %s', (_code, line) => {
    const answer = 'Исправили, проверьте.';
    expect(reply(`${answer}\n\n${line}\n${ORIGINAL}`)).toBe(answer);
  });
});

// A writer without a display name: Mail.ru writes "от" and the bare address where a name and
// "<address>" stand otherwise, Tuta "by" (Tutanota's "… 10:10 by a@b:"), in the same verbless shape.
describe('a bare address after "от", "by", "von" ends a verbless attribution', () => {
  const answer = 'Исправили, проверьте.';
  it.each([
    ['Mail.ru', 'Вторник, 4 марта 2025, 10:10 +03:00 от anna@example.com:'],
    ['Mail.ru, English', 'Tuesday, March 4, 2025 10:10 AM +03:00 from anna@example.com:'],
    ['Mail.ru, Ukrainian', 'Вівторок, 4 березня 2025, 10:10 +02:00 від anna@example.com:'],
    ['Tuta', 'Mar 4, 2025, 10:10 by anna@example.com:'],
    ['Tuta, German', '4. März 2025, 10:10 von anna@example.com:'],
  ])('%s: %s', (_name, line) => {
    expect(reply(`${answer}\n\n${line}\n${QUOTED}`)).toBe(answer);
    expect(reply(`${answer}\n\n${line}\n\n${ORIGINAL}`)).toBe(answer);
  });

  it('Mail.ru quoting its own attribution of the message before', () => {
    const text = `${answer}\n\n\nСреда, 5 марта 2025, 9:05 +03:00 от support@flamecrm.ru:\n\n>Вторник, 4 марта 2025, 10:10 +03:00 от Анна Берг <anna@example.com>:\n>>Здравствуйте!`;
    const r = extractReply({ text });
    expect(r.reply).toBe(answer);
    expect(r.removed).toContain('9:05 +03:00 от support@flamecrm.ru:');
  });

  it.each([
    [
      'a sentence that starts with its subject',
      'Письмо пришло 4 марта 2025, 10:10 от anna@example.com:\nне открывается.',
    ],
    ['a word of a sentence before "от"', 'Вторник, 4 марта, 10:10 — созвон от anna@example.com:\nобсудим счета.'],
    ['"by" in a sentence', 'Mar 4, 2025, 10:10 meeting booked by anna@example.com:\nagenda below.'],
    ['a bare address without "от"', 'Лог:\n2025-03-04 10:10:00 anna@example.com:\nlogin failed'],
    ['"от" with no time', 'Заявка от 4 марта 2025 от anna@example.com:\nне приходят письма.'],
  ])("the person's own: %s", (_name, text) => {
    expect(reply(text)).toBe(text);
  });
});

// K-9 Mail's footer names the device and the app, and asks to excuse its brevity, on one line.
describe('a footer with the app after the device, and an excuse after it', () => {
  it.each([
    ['en', 'Sent from my Android device with K-9 Mail. Please excuse my brevity.'],
    ['ru', 'Отправлено из моего Android устройства с помощью K-9 Mail. Пожалуйста, извините за краткость.'],
    ['de', 'Diese Nachricht wurde von meinem Android-Gerät mit K-9 Mail gesendet.'],
  ])('%s: %s', (_code, footer) => {
    const answer = 'Исправили, проверьте.';
    const r = extractReply({ text: `${answer}\n\n${footer}` });
    expect(r.reply).toBe(answer);
    expect(r.removed).toBe(footer);
    expect(reply(`${answer}\n\n${footer}\n\n${ORIGINAL}`)).toBe(answer);
  });

  it.each([
    'Please excuse my brevity.',
    'Sent from my laptop with the broken screen, so the logs come tomorrow.',
    'Отправлено из офиса с помощью курьера, ждите в пятницу.',
    'Diese Nachricht wurde von meinem Kollegen gesendet, nicht von mir.',
  ])('a sentence of the person\'s: "%s"', (line) => {
    const text = `Исправили, проверьте.\n\n${line}`;
    expect(reply(text)).toBe(text);
  });
});

// A client wraps a long attribution of plain text at its width (66 to 78 columns): where the half
// below is an attribution of its own, the full line above goes with it when the halves share one
// attribution's parts, the writer's address above and the date below, or the date above and the
// writer below. A line of the person's above an attribution stays.
describe('an attribution wrapped where its half below is one of its own', () => {
  const answer = 'Исправили, проверьте.';
  const NAME = 'Анна-Мария Константинопольская <anna-maria.konstantinopolskaya@example.com>';
  it.each([
    ['Gmail tr, after the address', `${NAME},\n4 Mar 2025 Sal, 10:10 tarihinde şunu yazdı:`],
    ['Gmail tr, inside the date', `${NAME}, 4 Mar\n2025 Sal, 10:10 tarihinde şunu yazdı:`],
    [
      'Gmail it, inside the name',
      'Il giorno mar 4 mar 2025 alle ore 10:10 Mehmet Ali\nYılmazoğlu-Karadeniz <mehmet.ali.yilmazoglu@example.com.tr> ha scritto:',
    ],
  ])('%s', (_name, lines) => {
    expect(reply(`${answer}\n\n${lines}\n${QUOTED}`)).toBe(answer);
    expect(reply(`${answer}\n\n${lines}\n\n${ORIGINAL}`)).toBe(answer);
  });

  it.each([
    ['a short date line', 'Созвон:\n4 марта 2025, 10:10', 'Анна <anna@example.com> написала:'],
    ['a greeting with an address', 'Dear Anna <anna@example.com>,', 'Tuesday, March 4, 2025, 10:10:00 AM, you wrote:'],
    [
      'a long sentence with a date',
      'Встреча перенесена на вторник, 4 марта 2025 г., 10:10, в большой переговорной',
      'Анна Берг <anna@example.com> написала:',
    ],
    [
      'a signature line ending with the address',
      'Анна Берг, менеджер проекта, ООО Ромашка <anna.berg.romashka@example.com>',
      '04.03.2025 10:10, Иван Петров пишет:',
    ],
    [
      'a signature line going on after the address',
      'Анна Берг, менеджер проекта <anna.berg@example.com>, тел. +7 999 123-45-67',
      '04.03.2025 10:10, Иван Петров пишет:',
    ],
  ])("the person's line above: %s", (_name, head, attribution) => {
    const r = extractReply({ text: `${head}\n${attribution}\n${QUOTED}` });
    expect(r.reply).toBe(head);
    expect(r.removed.startsWith(attribution)).toBe(true);
  });
});

// Desktop clients with attributions of their own shape: Opera Mail's Russian verb with the date
// after it, Horde's writer without a date (above a quote only), Claws Mail's date on a line of its own.
describe('Opera Mail, Horde and Claws Mail attributions', () => {
  const answer = 'Исправили, проверьте.';
  it.each([
    ['Opera Mail ru', 'Анна Берг <anna@example.com> писал(а) в своём письме Tue, 04 Mar 2025 10:10:10 +0300:'],
    ['Claws Mail', 'On Tue, 4 Mar 2025 10:10:10 +0300\nAnna Berg <anna@example.com> wrote:'],
  ])('%s over a quote and over the original', (_name, lines) => {
    expect(reply(`${answer}\n\n${lines}\n${QUOTED}`)).toBe(answer);
    expect(reply(`${answer}\n\n${lines}\n\n${ORIGINAL}`)).toBe(answer);
  });

  it.each([
    ['en', 'Quoting Anna Berg <anna@example.com>:'],
    ['de', 'Zitat von Anna Berg <anna@example.com>:'],
    ['es', 'Citando Anna Berg <anna@example.com>:'],
    ['pl', 'Cytowanie Anna Berg <anna@example.com>:'],
  ])('Horde %s: %s above a quote', (_code, line) => {
    const r = extractReply({ text: `${answer}\n\n${line}\n${QUOTED}` });
    expect(r.reply).toBe(answer);
    expect(r.removed.startsWith(line)).toBe(true);
  });

  it.each([
    ["Horde's line above no quote", 'Quoting Anna Berg <anna@example.com>:\nthe server is down.\nPlease check.'],
    ['"Quoting" in a sentence', 'Hi,\nQuoting the manual by Anna <anna@example.com>:\nrestart it.'],
    [
      '"писал(а) в своём письме" in a sentence',
      'Анна Берг <anna@example.com> писал(а) в своём письме, что сервер упал:\nпроверьте.',
    ],
  ])("the person's own: %s", (_name, text) => {
    expect(reply(text)).toBe(text);
  });

  it("a date line without a year above an attribution is the person's", () => {
    expect(reply(`Hi,\nOn Monday at 10:10\nAnna <anna@example.com> wrote:\n${QUOTED}`)).toBe('Hi,\nOn Monday at 10:10');
  });
});

// Outlook and Exchange write the text part of HTML with each link as "text<href>": a Gmail, Mail.ru or
// Yandex attribution quoted in an Outlook reply ends with "<a@b<mailto:a@b>>:".
describe('a verbless attribution whose address Outlook wrote as a link', () => {
  const answer = 'Исправили, проверьте.';
  const LINK = '<anna@example.com<mailto:anna@example.com>>:';
  it.each([
    ['Gmail ru', `вт, 4 мар. 2025 г. в 10:10, Анна Берг ${LINK}`],
    ['Mail.ru', `Вторник, 4 марта 2025, 10:10 +03:00 от Анна Берг ${LINK}`],
    ['Yandex', `04.03.2025, 10:10, "Анна Берг" ${LINK}`],
  ])('%s', (_name, line) => {
    expect(reply(`${answer}\n\n${line}\n${QUOTED}`)).toBe(answer);
    expect(reply(`${answer}\n\n${line}\n\n${ORIGINAL}`)).toBe(answer);
  });

  it("a sentence with such a link stays the person's", () => {
    const text = `Пишите 4 марта 2025 в 10:10 Анне ${LINK}\nона ответит.`;
    expect(reply(text)).toBe(text);
  });
});

// Hostile bodies: lines that every test of a marker looks at, and one line too long for any. The
// work per line is bounded (MAX_MARKER_LENGTH, the five lines an attribution may wrap over, the
// dozen of a header block), so time grows with the body: eight times the input may take at most
// LINEAR_SLACK times as long (a quadratic step would take 64 times; a linear one took up to 26 times
// on a machine with a load of 15, the short run being the one a neighbour slows), each the fastest of
// five runs, and the absolute bounds are generous for a shared machine.
describe('hostile input takes linear time', () => {
  const LINEAR_SLACK = 40;
  const fastest = (run: () => void) => {
    let best = Number.POSITIVE_INFINITY;
    for (let k = 0; k < 5; k++) {
      const started = performance.now();
      run();
      best = Math.min(best, performance.now() - started);
    }
    return best;
  };
  const colonLines = (n: number) => Array.from({ length: n }, () => '… <a@b>:').join('\n');
  const cells = (bytes: number) => {
    const out: string[] = [];
    for (let i = 0, length = 0; length < bytes; i++) {
      const cell = i % 2 ? `вт, 4 мар. 2025 г. в 10:10, Анна <a${i}@b.ru>:` : `On 4 Mar 2025 10:10 Ann <a@b> wrote:`;
      out.push(cell);
      length += cell.length + 1;
    }
    return out.join('\t');
  };

  it('2,000 lines of "… <a@b>:"', () => {
    const text = colonLines(2000);
    const started = performance.now();
    const r = extractReply({ text });
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(r.reply).toBe(text);
    const small = fastest(() => extractReply({ text }));
    const longer = colonLines(16_000);
    const large = fastest(() => extractReply({ text: longer }));
    expect(large / small).toBeLessThan(LINEAR_SLACK);
  });

  it.each([
    ['as the answer', (line: string) => `Ответ.\n${line}`],
    ['quoted with ">"', (line: string) => `Ответ.\n> ${line}`],
    ["quoted with The Bat!'s initials", (line: string) => `Ответ.\nAB> ${line}\nAB> конец`],
  ])('a single 60 KB line of tab-separated cells %s', (_name, make) => {
    const text = make(cells(60 * 1024));
    const started = performance.now();
    const r = extractReply({ text });
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(r.reply.startsWith('Ответ.')).toBe(true);
    const small = fastest(() => extractReply({ text }));
    const longer = make(cells(480 * 1024));
    const large = fastest(() => extractReply({ text: longer }));
    // a millisecond at least: below it the timer and the collector are what is measured
    expect(large / Math.max(small, 1)).toBeLessThan(LINEAR_SLACK);
  });

  it('2,000 lines of a date, a time and a bare address before the colon, no "от"', () => {
    // each line passes every cheap test of a verbless attribution, and differs from the others
    const lines = (n: number) =>
      Array.from({ length: n }, (_, i) => `04.03.2025 10:10 ${'a'.repeat(i % 60)}${i}@b.ru:`).join('\n');
    const text = lines(2000);
    const started = performance.now();
    expect(extractReply({ text }).reply).toBe(text);
    expect(performance.now() - started).toBeLessThan(2_000);
    const longer = lines(16_000);
    const small = fastest(() => extractReply({ text }));
    const large = fastest(() => extractReply({ text: longer }));
    expect(large / Math.max(small, 1)).toBeLessThan(LINEAR_SLACK);
  });

  it('2,000 header-field lines of 1.5 KB with an address each', () => {
    const fields = (n: number) =>
      Array.from({ length: n }, (_, i) => `${i % 2 ? 'To' : 'From'}: ${'a'.repeat(1500)}@b.ru`).join('\n');
    const text = `Ответ.\n${fields(2000)}`;
    const started = performance.now();
    expect(extractReply({ text }).reply.startsWith('Ответ.')).toBe(true);
    expect(performance.now() - started).toBeLessThan(2_000);
    const longer = `Ответ.\n${fields(16_000)}`;
    const small = fastest(() => extractReply({ text }));
    const large = fastest(() => extractReply({ text: longer }));
    expect(large / Math.max(small, 1)).toBeLessThan(LINEAR_SLACK);
  });

  it('a 60 KB table row of such cells in HTML', () => {
    const row = cells(60 * 1024)
      .split('\t')
      .map((c) => `<td>${c.replace(/</g, '&lt;')}</td>`)
      .join('');
    const started = performance.now();
    const r = extractReply({ html: `<p>Ответ.</p><table><tr>${row}</tr></table>` });
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(r.reply.startsWith('Ответ.')).toBe(true);
  });
});
