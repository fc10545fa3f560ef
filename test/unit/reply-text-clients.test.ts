// Replies in the shapes our customers' clients write them (Yandex, Mail.ru, Outlook, The Bat!,
// 1C-Bitrix, Foxmail) and ordinary replies whose own lines look like those markers: a line that
// ends with ":" or holds a date, an address or a "wrote"-like word is cut only when it has the
// structure a client gives it. Each case is ours, written after what those clients produce.
import { describe, expect, it } from 'vitest';
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
