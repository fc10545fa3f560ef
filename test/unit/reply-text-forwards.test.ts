// Forward and reply separators as Apple Mail, Thunderbird, Yahoo and Gmail write them in their
// translations, and the header block a client puts under a dashed line. Every case is ours: the
// separators are the clients' own strings, the messages around them made up.
import { describe, expect, it } from 'vitest';
import { extractReply } from '../../src/mail/reply-text.js';

const NOTE = 'Посмотрите, пожалуйста, это письмо.';
const BODY = 'Форма заявки перестала работать.\n\nАнна';

/** Apple Mail's "Begin forwarded message:" in its translations, with the header names it writes below. */
const APPLE: Array<[string, string, [string, string, string, string]]> = [
  ['en', 'Begin forwarded message:', ['From', 'Subject', 'Date', 'To']],
  ['ru', 'Начало переадресованного сообщения:', ['От', 'Тема', 'Дата', 'Кому']],
  ['fr', 'Début du message réexpédié :', ['De', 'Objet', 'Date', 'À']],
  ['de', 'Anfang der weitergeleiteten Nachricht:', ['Von', 'Betreff', 'Datum', 'An']],
  ['de', 'Anfang der weitergeleiteten E-Mail:', ['Von', 'Betreff', 'Datum', 'An']],
  ['es', 'Inicio del mensaje reenviado:', ['De', 'Asunto', 'Fecha', 'Para']],
  ['it', 'Inizio messaggio inoltrato:', ['Da', 'Oggetto', 'Data', 'A']],
  ['pt', 'Início da mensagem encaminhada:', ['De', 'Assunto', 'Data', 'Para']],
  ['pt', 'Início da mensagem reencaminhada:', ['De', 'Assunto', 'Data', 'Para']],
  ['nl', 'Begin doorgestuurd bericht:', ['Van', 'Onderwerp', 'Datum', 'Aan']],
  ['sv', 'Vidarebefordrat mejl:', ['Från', 'Ämne', 'Datum', 'Till']],
  ['da', 'Start på videresendt besked:', ['Fra', 'Emne', 'Dato', 'Til']],
  ['fi', 'Välitetty viesti alkaa:', ['Lähettäjä', 'Aihe', 'Päivämäärä', 'Vastaanottaja']],
  ['pl', 'Początek przekazywanej wiadomości:', ['Od', 'Temat', 'Data', 'Do']],
  ['cs', 'Začátek přeposlané zprávy:', ['Od', 'Předmět', 'Datum', 'Komu']],
  ['hr', 'Započni proslijeđenu poruku:', ['Šalje', 'Predmet', 'Datum', 'Prima']],
  ['hu', 'Továbbított levél kezdete:', ['Feladó', 'Tárgy', 'Dátum', 'Címzett']],
  ['ro', 'Începe mesajul redirecționat:', ['Expeditorul', 'Subiectul', 'Dată', 'Destinatarul']],
  ['tr', 'İleti başlangıcı:', ['Kimden', 'Konu', 'Tarih', 'Kime']],
  ['ca', 'Inici del missatge reenviat:', ['De', 'Assumpte', 'Data', 'Per a']],
  ['el', 'Έναρξη προωθημένου μηνύματος:', ['Από', 'Θέμα', 'Ημερομηνία', 'Προς']],
  ['he', 'תחילת הודעה שהועברה:', ['מאת', 'נושא', 'תאריך', 'אל']],
  ['vi', 'Bắt đầu thư được chuyển tiếp:', ['Từ', 'Chủ đề', 'Ngày', 'Tới']],
  ['id', 'Awal pesan yang diteruskan:', ['Dari', 'Subjek', 'Tanggal', 'Kepada']],
  ['zh', '开始转发的邮件：', ['发件人', '主题', '日期', '收件人']],
];

const appleBlock = (separator: string, [from, subject, date, to]: [string, string, string, string]) =>
  `${separator}\n\n${from}: Anna Berg <anna@example.com>\n${subject}: Форма\n${date}: 4.3.2025 10:10:00 GMT+3\n${to}: support@flamecrm.ru\n\n${BODY}`;
const quote = (text: string) =>
  text
    .split('\n')
    .map((l) => `> ${l}`.trimEnd())
    .join('\n');

describe("Apple Mail's forward in its translations", () => {
  it.each(APPLE)('%s: %s, quoted whole under a note', (_code, separator, names) => {
    const r = extractReply({ text: `${NOTE}\n\n${quote(appleBlock(separator, names))}` });
    expect(r.reply).toBe(NOTE);
    expect(r.forwarded).toMatchObject({ from: 'Anna Berg <anna@example.com>', subject: 'Форма', text: BODY });
  });

  it.each(APPLE)('%s: %s, unquoted, without a note', (_code, separator, names) => {
    const r = extractReply({ text: appleBlock(separator, names) });
    expect(r.reply).toBe('');
    expect(r.forwarded).toMatchObject({ from: 'Anna Berg <anna@example.com>', subject: 'Форма', text: BODY });
  });

  it('the phrase inside a sentence of the person is text', () => {
    for (const text of [
      'Début du message réexpédié : je ne le trouve pas.\nMerci',
      'Välitetty viesti alkaa olla vanha, lähetän uuden.\nKiitos',
      'Начало переадресованного сообщения: его не видно.\nСпасибо',
    ])
      expect(extractReply({ text }).reply).toBe(text);
  });

  it("the phrase alone with a colon over the person's text is text: nothing like a header follows", () => {
    const text = 'Begin forwarded message:\n\nplease forward the invoice to the accountant.\n\nThanks';
    expect(extractReply({ text }).reply).toBe(text);
  });
});

/** Thunderbird's "-------- Forwarded Message --------" and Gmail's "---------- Forwarded message ---------". */
const DASHED: Array<[string, string]> = [
  ['Thunderbird en', '-------- Forwarded Message --------'],
  ['Thunderbird ru', '-------- Пересылаемое сообщение --------'],
  ['Thunderbird fr', '-------- Message transféré --------'],
  ['Thunderbird de', '-------- Weitergeleitete Nachricht --------'],
  ['Thunderbird tr', '-------- İletilen İleti --------'],
  ['Thunderbird zh', '-------- 转发的消息 --------'],
  ['Thunderbird sk, with the English kept', '-------- Preposlaná správa --- Forwarded Message --------'],
  ['Thunderbird sl', '-------- Posredovano sporočilo --------'],
  ['Gmail pl', '---------- Wiadomość przesłana dalej ---------'],
  ['Gmail ja', '---------- メッセージを転送 ---------'],
  ['Gmail vi', '---------- Thư đã chuyển tiếp ---------'],
  ['Gmail id', '---------- Pesan yang diteruskan ---------'],
  ['Yahoo ru', '----- Пересланное сообщение -----'],
  ['Yahoo uk', '----- Перенаправлене повідомлення -----'],
  ['Yahoo fr', '----- Message transmis -----'],
  ['WP and Onet pl', '--- Treść przekazanej wiadomości ---'],
  ['Outlook bg', '-----Оригинално съобщение-----'],
  ['Outlook sr', '-----Originalna poruka-----'],
  ['Outlook lt', '-----Pradinis laiškas-----'],
  ['Outlook id', '-----Pesan Asli-----'],
  ['Outlook th', '-----ข้อความต้นฉบับ-----'],
];

describe('dashed separators in their translations', () => {
  it.each(DASHED)('%s: %s', (_name, separator) => {
    const forward = `${separator}\nFrom: Anna Berg <anna@example.com>\nDate: 04.03.2025 10:10\nSubject: Форма\n\n${BODY}`;
    const r = extractReply({ text: `${NOTE}\n\n${forward}`, subject: 'Fwd: Форма' });
    expect(r.reply).toBe(NOTE);
    expect(r.forwarded).toMatchObject({ from: 'Anna Berg <anna@example.com>', subject: 'Форма', text: BODY });
  });

  it("Yahoo's one line of fields after its translated separator", () => {
    const text = `${NOTE}\n\n----- Message transmis ----- De : Anna Berg <anna@example.com>À : support@flamecrm.ruEnvoyé : mardi 4 mars 2025, 10:10:00 UTC+3Objet : Форма\n${BODY}`;
    const r = extractReply({ text });
    expect(r.reply).toBe(NOTE);
    expect(r.forwarded).toMatchObject({ from: 'Anna Berg <anna@example.com>', subject: 'Форма', text: BODY });
  });

  it('a separator phrase followed by a sentence on its line is text', () => {
    const text = '-------- Пересылаемое сообщение -------- потерялось, пришлите ещё раз.\nСпасибо';
    expect(extractReply({ text }).reply).toBe(text);
  });
});

describe("Yahoo's attributions in their translations", () => {
  it.each([
    ['ru', 'вторник, 4 марта 2025 г., 10:10:00 GMT+3, Анна Берг <anna@example.com> написал(-а):'],
    ['uk', 'вівторок, 4 березня 2025 р., 10:10:00 GMT+3, Анна Берг <anna@example.com> написав(-ла):'],
    ['pl', 'wt., 4 mar 2025 o 10:10 Anna Berg <anna@example.com> napisał(-a):'],
    ['de', 'Am Dienstag, 4. März 2025, 10:10:00 MEZ hat Anna Berg <anna@example.com> Folgendes geschrieben:'],
    ['id', 'Pada tanggal Sel, 4 Mar 2025 pukul 10.10 Anna Berg <anna@example.com> menulis:'],
  ])('%s: %s over a quote and over the original unquoted', (_code, line) => {
    expect(extractReply({ text: `${NOTE}\n\n${line}\n${quote(BODY)}` }).reply).toBe(NOTE);
    expect(extractReply({ text: `${NOTE}\n\n${line}\n\n${BODY}` }).reply).toBe(NOTE);
  });

  it('"Folgendes geschrieben" in a sentence of the person is text', () => {
    const text = 'Ich habe Ihnen gestern Folgendes geschrieben:\ndas Formular geht nicht.\nDanke';
    expect(extractReply({ text }).reply).toBe(text);
  });
});

describe('header lines in a row under a rule', () => {
  it.each([
    [
      'Yandex',
      '-------- Пересылаемое сообщение --------',
      'Кому: support@flamecrm.ru\nТема: Форма\nОт: Анна Берг\nДата: 04.03.2025, 10:10',
    ],
    ['a bare rule, To and Subject only', '----------------', 'Кому: support@flamecrm.ru;\nТема: Форма'],
    [
      'a bare rule, From without an address, a time',
      '----------------',
      'От: Анна Берг\nТема: Форма\nДата: 04.03.2025, 10:10',
    ],
    [
      'a label the table does not know',
      '-------- Skickat vidare --------',
      'Från: Anna Berg <anna@example.com>\nÄmne: Форма',
    ],
    [
      'a rule, one blank line, then the fields',
      '________________________________\n',
      'Тема: Форма\nОт: anna@example.com',
    ],
  ])('%s: a forward without a note', (_name, rule, fields) => {
    const r = extractReply({ text: `${rule}\n${fields}\n\n${BODY}` });
    expect(r.reply).toBe('');
    expect(r.forwarded).toMatchObject({ subject: 'Форма', text: BODY });
  });

  it('under a note, the block and what follows are cut', () => {
    const r = extractReply({ text: `${NOTE}\n\n----------------\nКому: support@flamecrm.ru\nТема: Форма\n\n${BODY}` });
    expect(r.reply).toBe(NOTE);
    expect(r.removed).toContain(BODY);
  });

  it.each([
    ['one field line under a rule', `${NOTE}\n\n----------------\nТема: Форма\n\n${BODY}`],
    ['two field lines without a rule', `${NOTE}\n\nКому: бухгалтерия\nТема: счёт за март\n\nПришлите до пятницы.`],
    ['a rule, then a line of text, then field lines', `${NOTE}\n----------------\nИтоги:\nТема: Форма\nКому: всем`],
    ['fields two blank lines under the rule', `${NOTE}\n----------------\n\n\nТема: Форма\nКому: support@flamecrm.ru`],
    ['the same field twice', `${NOTE}\n----------------\nТема: Форма\nТема: Счёт`],
    ['a route under a rule', 'Рейс:\n----------------\nFrom: Moscow\nTo: Berlin\nDate: 12 March\n\nСпасибо'],
    ['a route without a rule', 'Маршрут:\nFrom: Moscow\nTo: Berlin\nDate: 12 March\n\nСпасибо'],
    // under a plain rule, a Subject and a Date without a time are a form the person fills in
    [
      'a ruled form with a subject and a date',
      'Добрый день!\n----------\nТема: возврат\nДата: 12.03\nСумма: 1500 руб.\nСпасибо!',
    ],
    [
      'a ruled form with a sender named, no address',
      'Добрый день!\n----------\nОт: Иван\nТема: возврат\nДата: 12.03\nСумма: 1500 руб.\nСпасибо!',
    ],
    ['a bare rule, From and Subject, no address', `${NOTE}\n----------------\nОт: Анна Берг\nТема: Форма\n\n${BODY}`],
  ])("%s is the person's text", (_name, text) => {
    expect(extractReply({ text }).reply).toBe(text);
  });

  it('HTML: the block under a rule in divs', () => {
    const html = `<div>${NOTE}</div><div>----------------</div><div>Кому: support@flamecrm.ru</div><div>Тема: Форма</div><div><br></div><div>Форма заявки перестала работать.</div>`;
    const r = extractReply({ html });
    expect(r.reply).toBe(NOTE);
    expect(r.removed).toContain('Форма заявки перестала работать.');
  });
});

describe('an attribution whose address a client rendered from a link', () => {
  const QUOTE = quote(BODY);
  it.each([
    ['on its own lines', 'On Tue, 4 Mar 2025 at 10:10 Anna Berg\n<\nmailto:Anna Berg <anna@example.com>\n> wrote:'],
    ['after a blank line', 'On Tue, 4 Mar 2025 at 10:10 Anna Berg\n\n<\nmailto:Anna Berg <anna@example.com>\n> wrote:'],
  ])('%s is one attribution', (_name, attribution) => {
    const r = extractReply({ text: `${NOTE}\n\n${attribution}\n${QUOTE}` });
    expect(r.reply).toBe(NOTE);
    expect(r.removed).toContain('mailto:Anna Berg');
    expect(extractReply({ text: `${NOTE}\n\n${attribution}\n${BODY}` }).reply).toBe(NOTE);
  });

  it.each([
    [
      'markup pasted after a blank line',
      'On Tue, 4 Mar 2025 at 10:10 the page showed\n\n<\ndiv class="error">\nand nothing else.',
    ],
    [
      'a sentence, a blank line, an address',
      'Write to Anna Berg.\n\n<\nmailto:Anna Berg <anna@example.com>\nshe answers fast.',
    ],
    [
      'two blank lines before the address',
      'On Tue, 4 Mar 2025 at 10:10 Anna Berg\n\n\n<\nmailto:Anna Berg <anna@example.com>\nis who to ask.',
    ],
  ])("%s is the person's", (_name, text) => {
    expect(extractReply({ text }).reply).toBe(text);
  });
});

describe('the remaining shapes of a quote', () => {
  const ATTRIBUTION = 'On Tue, 4 Mar 2025 at 10:10, Anna Berg <anna@example.com> wrote:';

  it('"| " lines under an attribution are its quote', () => {
    const r = extractReply({ text: `${NOTE}\n\n${ATTRIBUTION}\n\n| Форма не работает.\n|\n| Анна\n|` });
    expect(r.reply).toBe(NOTE);
    expect(r.removed).toContain('| Форма не работает.');
  });

  it('an answer below the "| " quote stays', () => {
    const text = `${ATTRIBUTION}\n| Форма не работает?\n\nРаботает, проверили.`;
    expect(extractReply({ text }).reply).toBe('Работает, проверили.');
  });

  it('a table of "| " rows without an attribution is the person\'s', () => {
    const text = `${NOTE}\n\n| Заявка | Статус |\n| TKT-1001 | открыта |`;
    expect(extractReply({ text }).reply).toBe(text);
  });

  it('the rest of a link the client wrapped out of a quote line goes with the quote', () => {
    const text = `${NOTE}\n\n${ATTRIBUTION}\n\n> Заявка открыта (https://flamecrm.ru/t?id=1001&\nkey=5e2f_a)\n>\n> Анна`;
    const r = extractReply({ text });
    expect(r.reply).toBe(NOTE);
    expect(r.removed).toContain('key=5e2f_a)');
  });

  it('a one-word answer under a quoted link stays', () => {
    const text = `${ATTRIBUTION}\n> Проверьте https://flamecrm.ru/t/1001\nГотово.\n> И эту?\nТоже.`;
    expect(extractReply({ text }).reply).toBe('Готово.\n\nТоже.');
  });

  it('"ᐧ", a tracking image\'s text, at the end goes; inside the text it stays', () => {
    expect(extractReply({ text: `${NOTE}\n\nᐧ` })).toMatchObject({ reply: NOTE, removed: 'ᐧ' });
    const text = `${NOTE}\nᐧ\nСпасибо`;
    expect(extractReply({ text }).reply).toBe(text);
  });
});
