// Reply-text extraction: one table row per marker a client uses, then every real-client fixture
// in fixtures/eml against its golden reply in fixtures/expected.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { extractReply } from '../../src/mail/reply-text.js';

const NOTIFICATION = 'Новый комментарий в заявке TKT-1001: Не приходят письма с сайта';
const QUOTED = `> ${NOTIFICATION}\n>\n> Здравствуйте! Письма перестали приходить.`;

describe('extractReply from text', () => {
  const cases: Array<[string, string, string]> = [
    [
      '"On … wrote:" and > quotes',
      `Thanks, fixed.\n\nOn Fri, Mar 14, 2025 at 10:10 AM FlameCRM <notify@flamecrm.ru> wrote:\n\n${QUOTED}`,
      'Thanks, fixed.',
    ],
    [
      '"wrote:" wrapped onto the next line',
      `Thanks, fixed.\n\nOn Fri, Mar 14, 2025 at 10:10 AM FlameCRM <notify@flamecrm.ru>\nwrote:\n\n${QUOTED}`,
      'Thanks, fixed.',
    ],
    [
      'address wrapped after "<"',
      `Исправили.\n\nпт, 14 мар. 2025 г. в 10:10, FlameCRM <\nnotify@flamecrm.ru>:\n\n${QUOTED}`,
      'Исправили.',
    ],
    [
      'Gmail ru',
      `Исправили.\n\nпт, 27 янв. 2012 г. в 12:00, FlameCRM <notify@flamecrm.ru>:\n\n${QUOTED}`,
      'Исправили.',
    ],
    [
      'Gmail ru, old "пользователь … написал:"',
      `Исправили.\n\n27 января 2012 г. 12:00 пользователь FlameCRM <notify@flamecrm.ru> написал:\n${QUOTED}`,
      'Исправили.',
    ],
    ['Mail.ru', `Исправили.\n\n27 января 2012, 12:00 от FlameCRM <notify@flamecrm.ru>:\n${QUOTED}`, 'Исправили.'],
    [
      'Mail.ru with weekday and zone, quoted with ">"',
      `Исправили.\n\n>Пятница, 27 января 2012, 12:00 +03:00 от FlameCRM <notify@flamecrm.ru>:\n>\n>${NOTIFICATION}`,
      'Исправили.',
    ],
    ['Yandex', `Исправили.\n\n27.01.2012, 12:00, "FlameCRM" <notify@flamecrm.ru>:\n${QUOTED}`, 'Исправили.'],
    [
      'Thunderbird ru, answer below the quote',
      `27.01.2012 12:00, FlameCRM пишет:\n${QUOTED}\n\nИсправили.`,
      'Исправили.',
    ],
    [
      'Apple Mail ru, attribution inside the quote',
      `Исправили.\n\n> 27 янв. 2012 г., в 12:00, FlameCRM <notify@flamecrm.ru> написал(а):\n> \n> ${NOTIFICATION}`,
      'Исправили.',
    ],
    [
      'attribution over unquoted original',
      `Fixed.\n\nOn Fri, Mar 14, 2025 at 10:10 AM FlameCRM <notify@flamecrm.ru> wrote:\n\n${NOTIFICATION}\nЗдравствуйте!`,
      'Fixed.',
    ],
    [
      'Outlook From/Sent/To/Subject block',
      `Fixed.\n\nFrom: FlameCRM <notify@flamecrm.ru>\nSent: Friday, March 14, 2025 10:10 AM\nTo: Ivan Petrov <ivan@flamecrm.ru>\nSubject: [TKT-1001] Mail\n\n${NOTIFICATION}`,
      'Fixed.',
    ],
    [
      'Outlook От/Отправлено/Кому/Тема after a rule',
      `Исправили.\n\n________________________________\nОт: FlameCRM <notify@flamecrm.ru>\nОтправлено: 14 марта 2025 г. 10:10\nКому: Иван Петров <ivan@flamecrm.ru>\nТема: [TKT-1001] Письма\n\n${NOTIFICATION}`,
      'Исправили.',
    ],
    [
      '-----Original Message-----',
      `Fixed.\n\n-----Original Message-----\nFrom: FlameCRM <notify@flamecrm.ru>\nSent: Friday, March 14, 2025 10:10 AM\n\n${NOTIFICATION}`,
      'Fixed.',
    ],
    [
      '-----Исходное сообщение-----',
      `Исправили.\n\n-----Исходное сообщение-----\nОт: FlameCRM [mailto:notify@flamecrm.ru]\n\n${NOTIFICATION}`,
      'Исправили.',
    ],
    ['"-- " signature', `Исправили.\n\n-- \nИван Петров\nFlameCRM\n\n${QUOTED}`, 'Исправили.'],
    ['"--" signature without the space (Mail.ru)', 'Исправили.\n\n--\nМария Козлова', 'Исправили.'],
    ['footer and signature together', 'Исправили.\n\n--\nМария\nОтправлено из Почты Mail.ru', 'Исправили.'],
    [
      'inline answers keep the answers, drop the quotes',
      `Hi,\n\nOn Fri, Mar 14, 2025 at 10:10 AM FlameCRM <notify@flamecrm.ru> wrote:\n> ${NOTIFICATION}\n> Это у вас?\n\nYes, on our side.\n\n> Что нам делать?\nNothing.\n\n> Ответьте на это письмо.`,
      'Hi,\n\nYes, on our side.\n\nNothing.',
    ],
    [
      'a sentence before the attribution is not part of it',
      `On Monday we deployed the fix.\nOn Fri, Mar 14, 2025 at 10:10 AM FlameCRM <notify@flamecrm.ru> wrote:\n${QUOTED}`,
      'On Monday we deployed the fix.',
    ],
    [
      'nothing to strip: the whole text',
      'Исправили.\n\nПроверьте, пожалуйста.\n',
      'Исправили.\n\nПроверьте, пожалуйста.',
    ],
    ['three or more blank lines collapse to one', 'One.\n\n\n\nTwo.\n\n\nThree.', 'One.\n\nTwo.\n\n\nThree.'],
    ['CRLF line ends and trailing blank lines', 'Fixed.\r\n\r\n\r\n', 'Fixed.'],
    [
      'a long tail after "--" is text, not a signature',
      `Fixed.\n--\n${Array.from({ length: 14 }, (_, i) => `step ${i + 1}`).join('\n')}`,
      `Fixed.\n--\n${Array.from({ length: 14 }, (_, i) => `step ${i + 1}`).join('\n')}`,
    ],
    [
      'a footer-like line in the middle stays',
      'Sent from my iPhone, the screenshot shows it.\nWill check tomorrow.',
      'Sent from my iPhone, the screenshot shows it.\nWill check tomorrow.',
    ],
  ];
  it.each(cases)('%s', (_name, text, reply) => {
    const result = extractReply({ text });
    expect(result.reply).toBe(reply);
    expect(result.method).toBe('text');
  });

  const footers = [
    'Sent from my iPhone',
    'Отправлено с iPhone',
    'Отправлено с iPad',
    'Отправлено из мобильной Почты Mail.ru',
    'Отправлено из Яндекс.Почты для Android',
    'Отправлено из мобильной Яндекс.Почты',
    'Sent from Yandex Mail for mobile',
    'Get Outlook for Android<https://aka.ms/AAb9ysg>',
    'Получить Outlook для iOS',
    'Sent from my Galaxy',
  ];
  it.each(footers)('mobile footer "%s"', (footer) => {
    const result = extractReply({ text: `Исправили.\n\n${footer}\n\n${QUOTED}` });
    expect(result.reply).toBe('Исправили.');
    expect(result.removed).toContain(footer);
  });

  it('keeps what it cut in removed', () => {
    const result = extractReply({
      text: `Fixed.\n\n-- \nIvan\n\nOn Fri, Mar 14, 2025 at 10:10 AM FlameCRM <notify@flamecrm.ru> wrote:\n${QUOTED}`,
    });
    expect(result.reply).toBe('Fixed.');
    expect(result.removed).toContain('Ivan');
    expect(result.removed).toContain(NOTIFICATION);
    expect(result.removed).toContain('wrote:');
  });

  it('nothing identified: removed is empty', () => {
    expect(extractReply({ text: 'Just text.' })).toEqual({ reply: 'Just text.', removed: '', method: 'text' });
  });

  it.each([[{}], [{ text: '', html: '' }], [{ text: null, html: null }], [{ text: ' \n\n ' }]])(
    'empty input %j',
    (input) => {
      expect(extractReply(input)).toEqual({ reply: '', removed: '', method: 'none' });
    },
  );
});

describe('extractReply from HTML', () => {
  const gmailQuote = `<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex"><p>${NOTIFICATION}</p></blockquote>`;
  const cases: Array<[string, string, string]> = [
    [
      'Gmail gmail_quote_container with gmail_attr',
      `<div dir="ltr"><div>Исправили.</div><div><br></div><div>Проверьте.</div></div><br><div class="gmail_quote gmail_quote_container"><div dir="ltr" class="gmail_attr">пт, 27 янв. 2012 г. в 12:00, FlameCRM &lt;<a href="mailto:notify@flamecrm.ru">notify@flamecrm.ru</a>&gt;:<br></div>${gmailQuote}</div>`,
      'Исправили.\n\nПроверьте.',
    ],
    [
      'older Gmail: attribution as text inside div.gmail_quote',
      `<div dir="ltr">Fixed.</div><div class="gmail_extra"><br><div class="gmail_quote">On Fri, Jan 27, 2012 at 12:00 PM, FlameCRM <span dir="ltr">&lt;<a href="mailto:notify@flamecrm.ru">notify@flamecrm.ru</a>&gt;</span> wrote:<br>${gmailQuote}</div></div>`,
      'Fixed.',
    ],
    [
      'Gmail signature',
      '<div dir="ltr"><div>Fixed.</div><div><br></div><span class="gmail_signature_prefix">-- </span><br><div dir="ltr" class="gmail_signature">Ivan Petrov<div>FlameCRM</div></div></div>',
      'Fixed.',
    ],
    [
      'Gmail inline answers between split blockquotes',
      `<div dir="ltr">Hi,</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Fri, Mar 14, 2025 at 10:10 AM FlameCRM &lt;notify@flamecrm.ru&gt; wrote:<br></div>${gmailQuote}<div>Answer one.</div>${gmailQuote}<div>Answer two.</div></div>`,
      'Hi,\n\nAnswer one.\n\nAnswer two.',
    ],
    [
      'Outlook desktop border-top header',
      `<div class=WordSection1><p class=MsoNormal>Fixed.<o:p></o:p></p><p class=MsoNormal><o:p>&nbsp;</o:p></p><p class=MsoNormal>Ivan<o:p></o:p></p><div><div style='border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm'><p class=MsoNormal><b>From:</b> FlameCRM &lt;notify@flamecrm.ru&gt; <br><b>Sent:</b> Friday, March 14, 2025 10:10 AM<o:p></o:p></p></div></div><p>${NOTIFICATION}</p></div>`,
      'Fixed.\n\nIvan',
    ],
    [
      'Outlook desktop ru border-top header',
      `<p class=MsoNormal>Исправили.<o:p></o:p></p><div style='border:none;border-top:solid #B5C4DF 1.0pt;padding:3.0pt 0cm 0cm 0cm'><p class=MsoNormal><b>От:</b> FlameCRM<br><b>Отправлено:</b> 14 марта 2025 г. 10:10</p></div><p class=MsoNormal>${NOTIFICATION}</p>`,
      'Исправили.',
    ],
    [
      'Outlook on the web: appendonsend + divRplyFwdMsg',
      `<div class="elementToProof">Fixed.</div><div id="appendonsend"></div><hr style="display:inline-block;width:98%" tabindex="-1"><div id="divRplyFwdMsg" dir="ltr"><font face="Calibri, sans-serif"><b>From:</b> FlameCRM</font></div><div>${NOTIFICATION}</div>`,
      'Fixed.',
    ],
    [
      're-quoted x_divRplyFwdMsg',
      `<div>Fixed.</div><hr><div id="x_divRplyFwdMsg"><b>From:</b> FlameCRM</div><div>${NOTIFICATION}</div>`,
      'Fixed.',
    ],
    [
      'Outlook mobile signature',
      `<div dir="auto">Fixed.</div><div id="ms-outlook-mobile-signature" dir="auto">Get <a href="https://aka.ms/AAb9ysg">Outlook for Android</a></div><div id="mail-editor-reference-message-container"><div>${NOTIFICATION}</div></div>`,
      'Fixed.',
    ],
    [
      'Thunderbird moz-cite-prefix, blockquote cite, moz-signature',
      `<div class="moz-cite-prefix">27.01.2012 12:00, FlameCRM пишет:<br></div><blockquote type="cite" cite="mid:notify-TKT-1001-1@flamecrm.ru"><p>${NOTIFICATION}</p></blockquote><p>Исправили.</p><p>Проверьте.</p><div class="moz-signature">-- <br>Алексей</div>`,
      'Исправили.\n\nПроверьте.',
    ],
    [
      'Apple Mail blockquote type=cite',
      `Fixed.<div><br></div><div>Anna</div><div><br id="lineBreakAtBeginningOfMessage"><div><br><blockquote type="cite"><div>On 14 Mar 2025, at 10:10, FlameCRM &lt;notify@flamecrm.ru&gt; wrote:</div><br class="Apple-interchange-newline"><div>${NOTIFICATION}</div></blockquote></div></div>`,
      'Fixed.\n\nAnna',
    ],
    [
      'iOS footer outside the quote',
      `<div dir="ltr">Исправили.</div><div dir="ltr"><br></div><div dir="ltr">Отправлено с iPhone</div><div dir="ltr"><br><blockquote type="cite">27 янв. 2012 г., в 12:00, FlameCRM &lt;notify@flamecrm.ru&gt; написал(а):<br><br></blockquote></div><blockquote type="cite"><div dir="ltr">${NOTIFICATION}</div></blockquote>`,
      'Исправили.',
    ],
    [
      'Yandex attribution before a bare blockquote',
      `<div>Исправили.</div><div>&nbsp;</div><div>-- </div><div>Анна</div><div>&nbsp;</div><div>27.01.2012, 12:00, "FlameCRM" &lt;notify@flamecrm.ru&gt;:</div><blockquote><div>${NOTIFICATION}</div></blockquote>`,
      'Исправили.',
    ],
    [
      'Mail.ru bordered blockquote and signature widget',
      `<HTML><BODY><div>Исправили.</div><div>&nbsp;</div><div data-signature-widget="container"><div data-signature-widget="content"><div>--<br>Мария</div></div></div><div>&nbsp;</div><blockquote style="border-left:1px solid #0857A6; margin:10px; padding:0 0 0 10px;">Пятница, 27 января 2012, 12:00 +03:00 от FlameCRM &lt;notify@flamecrm.ru&gt;:<br>&nbsp;<div id=""><div class="js-helper js-readmsg-msg"><div>${NOTIFICATION}</div></div></div></blockquote></BODY></HTML>`,
      'Исправили.',
    ],
    [
      'Mail.ru mail-quote-collapse',
      `<div>Исправили.</div><div class="mail-quote-collapse"><div>27 января 2012, 12:00 от FlameCRM:</div><div>${NOTIFICATION}</div></div>`,
      'Исправили.',
    ],
    [
      'Mail.ru js-readmsg-msg without a blockquote',
      `<div>Исправили.</div><div>27 января 2012, 12:00 от FlameCRM &lt;notify@flamecrm.ru&gt;:</div><div class="js-helper js-readmsg-msg"><div>${NOTIFICATION}</div></div>`,
      'Исправили.',
    ],
    [
      "a bare indenting blockquote is the person's own text",
      '<div>See:</div><blockquote style="margin:0 0 0 40px;border:none;padding:0px"><div>step one</div></blockquote><div>Done.</div>',
      'See:\nstep one\nDone.',
    ],
    [
      'entities decoded, script/style/head dropped',
      '<html><head><title>t</title><style>p{color:red}</style></head><body><script>alert(1)</script><p>a &amp; b &lt;tag&gt; &quot;q&quot; &#8470;5 &#x2014; x&nbsp;y</p></body></html>',
      'a & b <tag> "q" №5 — x y',
    ],
    ['paragraphs leave a blank line, <br> breaks a line', '<p>one<br>two</p><p>three</p>', 'one\ntwo\n\nthree'],
    ['lists', '<ul><li>first</li><li>second</li></ul><ol><li>a</li><li>b</li></ol>', '- first\n- second\n1. a\n2. b'],
  ];
  it.each(cases)('%s', (_name, html, reply) => {
    const result = extractReply({ html, text: 'text part' });
    expect(result.reply).toBe(reply);
    expect(result.method).toBe('html');
  });

  it('removed holds the quote in text form', () => {
    const result = extractReply({
      html: `<div>Fixed.</div><div class="gmail_quote"><div class="gmail_attr">On Fri, Mar 14, 2025 at 10:10 AM FlameCRM &lt;notify@flamecrm.ru&gt; wrote:</div>${gmailQuote}</div>`,
    });
    expect(result.reply).toBe('Fixed.');
    expect(result.removed).toContain(NOTIFICATION);
    expect(result.removed).not.toMatch(/<(?:p|div|blockquote)\b/);
  });

  it('falls back to text when the HTML has no text', () => {
    const result = extractReply({
      html: '<div><img src="cid:scan"></div>',
      text: `Scan attached.\n\nOn Fri, Mar 14, 2025 at 10:10 AM FlameCRM <notify@flamecrm.ru> wrote:\n${QUOTED}`,
    });
    expect(result).toMatchObject({ reply: 'Scan attached.', method: 'text' });
  });

  it('falls back to text when only the text part shows a quote', () => {
    const result = extractReply({
      html: `<div>Fixed.</div><div class="unknown-client-quote"><div>${NOTIFICATION}</div></div>`,
      text: `Fixed.\n\n-----Original Message-----\n${NOTIFICATION}`,
    });
    expect(result).toMatchObject({ reply: 'Fixed.', method: 'text' });
  });

  it('survives hostile nesting without a stack overflow', () => {
    const deep = `${'<div>'.repeat(50_000)}deep${'</div>'.repeat(50_000)}`;
    expect(extractReply({ html: deep, text: 'deep' }).reply).toBe('deep');
    const flattened = `${'<span>'.repeat(1_500)}deep${'</span>'.repeat(1_500)}`;
    expect(extractReply({ html: flattened }).reply).toBe('deep');
  });
});

// Shapes that once took seconds to hours, synchronously, with the whole server stalled. Each is
// large enough that the old behaviour would blow the test timeout; now each takes milliseconds.
describe('extractReply on hostile input', () => {
  it.each([
    [
      'attribution-like lines full of "@."',
      { text: Array.from({ length: 60 }, () => `12:00 ${'@.'.repeat(147)}:`).join('\n'), html: null },
    ],
    ['a megabyte of unclosed tags', { text: null, html: '<a'.repeat(500_000) }],
    [
      'a megabyte of style attribute',
      { text: null, html: `<blockquote style="${'border-left:x '.repeat(80_000)}">quoted</blockquote>` },
    ],
    ['a long run of blanks inside a line', { text: `answer${' '.repeat(400_000)}x\n> quoted`, html: null }],
    ['<p><li> nested 80,000 times', { text: null, html: `${'<p><li>'.repeat(80_000)}answer` }],
    ['a long line of dashes and colons', { text: `answer\n${'-- : '.repeat(100_000)}`, html: null }],
    ['an attribution-like line repeated', { text: 'On 4 Mar 2025 Ann <a@b.cc> <\n'.repeat(20_000), html: null }],
    ['footer-like lines to the end', { text: `answer\n${'Sent from my iPhone\n'.repeat(50_000)}`, html: null }],
    ['header fields without end', { text: `answer\n${'From: a@b.cc\nTo: c\n'.repeat(30_000)}`, html: null }],
  ])('%s', (_name, input) => {
    const r = extractReply(input);
    expect(typeof r.reply).toBe('string');
  });
});

describe('extractReply on real-client fixtures', () => {
  const root = fileURLToPath(new URL('../../fixtures', import.meta.url));
  const names = readdirSync(join(root, 'eml'))
    .filter((f) => f.endsWith('.eml'))
    .map((f) => f.slice(0, -'.eml'.length))
    .sort();

  it('covers the clients, languages and shapes we promised', () => {
    expect(names.length).toBeGreaterThanOrEqual(34);
    for (const client of [
      'gmail-web',
      'gmail-android',
      'outlook-desktop',
      'outlook-web',
      'yandex',
      'mailru-web',
      'mailru-mobile',
      'thunderbird',
      'apple-mail',
      'ios-mail',
    ]) {
      expect(
        names.some((n) => n.startsWith(client)),
        client,
      ).toBe(true);
    }
    for (const part of ['-ru-', '-en-', '-text-', '-html-', 'inline'])
      expect(
        names.some((n) => n.includes(part)),
        part,
      ).toBe(true);
  });

  it('extracts every expected reply', async () => {
    const failures: string[] = [];
    for (const name of names) {
      const parsed = await simpleParser(readFileSync(join(root, 'eml', `${name}.eml`)));
      const expected = readFileSync(join(root, 'expected', `${name}.txt`), 'utf8').trim();
      const result = extractReply({ text: parsed.text, html: parsed.html || null });
      if (result.reply.trim() !== expected)
        failures.push(`${name}:\n--- got\n${result.reply}\n--- expected\n${expected}`);
      const quotesNotification = (parsed.text ?? '').includes('Новый комментарий в заявке');
      if (quotesNotification && result.removed === '') failures.push(`${name}: quote present but removed is empty`);
      if (result.reply.includes('Новый комментарий в заявке'))
        failures.push(`${name}: reply contains the quoted notification`);
    }
    const exact = names.length - new Set(failures.map((f) => f.split(':')[0])).size;
    console.log(`reply-text accuracy: ${exact}/${names.length}`);
    expect(failures).toEqual([]);
  });
});
