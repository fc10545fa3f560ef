// Messages of a given size built to cost the pipeline's steps as much CPU per byte as we know how:
// issue 9's shapes (folded headers, <p><li> nesting, many parts) filled to exactly `size` bytes, and
// shapes aimed at each step's per-line work (attribution-like lines for the reply text, header-block
// lines, long lines full of verbs and addresses, deep and wide HTML, encoded words, many DKIM
// signatures). What bounds the messages the main thread may process itself (src/pipeline/inline.ts)
// is measured on these: npm run bench:steps -- --shape dear, and test/integration/inline.test.ts.
import { buildMessage } from './smtp-client.js';

export const DEAR_SHAPES = [
  'folded-header',
  'p-li-nesting',
  'deep-html',
  'wide-html',
  'many-parts',
  'colon-lines',
  'verb-lines',
  'long-verb-lines',
  'header-blocks',
  'address-lines',
  'date-lines',
  'quoted',
  'footer-lines',
  'encoded-words',
  'qp-soft-breaks',
  'short-lines',
  'empty-lines',
  'base64',
  'dkim-signatures',
  'table-cells',
  'base64-html',
  'qp-html',
  'address-list',
  'long-line',
  'flat-html',
  'flat-table',
  'html-entities',
  'ru-header-fields',
  'ru-openers',
  'base64-flat-html',
] as const;
export type DearShape = (typeof DEAR_SHAPES)[number];

/** `line` (its '#' a number, each line another) repeated until `budget` bytes are used (at least once). */
const numbered = (line: string, budget: number) => {
  let out = '';
  for (let i = 0; ; i++) {
    const next = line.replace('#', String(i));
    if (i > 0 && Buffer.byteLength(out + next) > budget) return out;
    out += next;
  }
};

/** `unit` repeated until `budget` bytes are used (at least once). */
const fill = (unit: string, budget: number) => unit.repeat(Math.max(1, Math.floor(budget / Buffer.byteLength(unit))));

/** A message from staff to `to` of about `size` bytes (never more) whose body or header is `shape`. */
export function dearMessage(shape: DearShape, size: number, to: string, i = 0): Buffer {
  const messageId = `<dear-${shape}-${size}-${i}@flamecrm.ru>`;
  const head = (contentType: string, headers: string[] = []) =>
    buildMessage({ to, messageId, headers, body: '' }).replace(
      'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n',
      `Content-Type: ${contentType}\r\n\r\n`,
    );
  const plain = (line: string) => {
    const h = head('text/plain; charset=utf-8');
    return h + fill(line, size - Buffer.byteLength(h));
  };
  const html = (unit: string, prefix = '<p>Готово</p>') => {
    const h = head('text/html; charset=utf-8');
    return `${h}${prefix}${fill(unit, size - Buffer.byteLength(h) - Buffer.byteLength(prefix) - 2)}\r\n`;
  };
  let text: string;
  switch (shape) {
    case 'folded-header': {
      // one field folded over nearly as many lines as MAX_HEADER_LINES lets through (1000 in all)
      const lines = Math.min(900, Math.floor((size - 400) / 4));
      text = buildMessage({ to, messageId, headers: [`X-Fold: a${'\r\n b'.repeat(lines)}`] });
      break;
    }
    case 'p-li-nesting':
      text = html('<p><li>');
      break;
    case 'deep-html':
      text = html('<div><blockquote class="gmail_quote"><span>');
      break;
    case 'wide-html':
      text = html('<a href="https://x.example/?a=1&amp;b=2" style="color:red;margin:0 0 0 .8ex" title="t">x</a>');
      break;
    case 'many-parts': {
      const h = head('multipart/mixed; boundary="p"');
      const part = '--p\r\nContent-Type: text/plain\r\n\r\nx\r\n';
      text = `${h}${fill(part, size - Buffer.byteLength(h) - 7)}--p--\r\n`;
      break;
    }
    case 'colon-lines':
      text = plain('Anna Berg <anna@flamecrm.ru>, 12.03.2024 10:10, schrieb am Fr. 28. Apr. 2017 um:\r\n');
      break;
    case 'verb-lines':
      text = plain('Am 04.03.2025 um 10:10 schrieb Anna Berg wrote написал kirjoitti\r\n');
      break;
    case 'long-verb-lines':
      text = plain(`${'wrote schrieb написал(а) a@b.cd 10:10 2024 '.repeat(9)}:\r\n`);
      break;
    case 'header-blocks':
      text = plain('From: Ann <a@b.cd>\r\nSent: Friday, 14 March 2025 10:10\r\nTo: x\r\n');
      break;
    case 'address-lines':
      text = plain(`${'ann.berg@flamecrm.ru <b@c.de> (d@e.fg) '.repeat(10)}\r\n`);
      break;
    case 'date-lines':
      text = plain('пт, 27 янв. 2012 г. в 12:00, 27.01.2012, 2012/4/7 Monday January\r\n');
      break;
    case 'quoted':
      text = plain('> > > quoted text On Mon, Ann wrote: >\r\n');
      break;
    case 'footer-lines':
      text = plain('Sent from my iPhone\r\n\r\nОтправлено из мобильной Почты Mail.ru\r\n\r\n');
      break;
    case 'encoded-words': {
      const word = '=?utf-8?B?0JfQsNC80LXQvdC40LvQuA==?= ';
      // one word a line: as many as the header's line limit lets through
      const subject = word
        .repeat(Math.min(900, Math.floor((size - 600) / word.length)))
        .trim()
        .replace(/ /g, '\r\n ');
      text = buildMessage({ to, messageId, subject });
      break;
    }
    case 'short-lines':
      text = plain('x\r\n');
      break;
    case 'empty-lines':
      text = plain('x\r\n\r\n\r\n\r\n');
      break;
    case 'qp-soft-breaks': {
      const h = head('text/plain; charset=utf-8').replace(
        'Content-Type: text/plain; charset=utf-8\r\n',
        'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n',
      );
      text = h + fill('=D0=97=\r\n', size - Buffer.byteLength(h));
      break;
    }
    case 'base64': {
      const h = head('multipart/mixed; boundary="b"');
      const open =
        '--b\r\nContent-Type: text/plain\r\n\r\nскан\r\n--b\r\nContent-Type: application/pdf; name="s.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n';
      text = `${h}${open}${fill(`${'QUJD'.repeat(19)}\r\n`, size - Buffer.byteLength(h + open) - 7)}--b--\r\n`;
      break;
    }
    case 'table-cells':
      // one table row of cells: one line of text as long as the message (the attack run's shape)
      text = html('<td>x', '<table><tr>');
      break;
    case 'base64-html': {
      // the same row, base64-encoded: no '<' in the bytes that arrive
      const h = head('text/html; charset=utf-8').replace(
        'Content-Type: text/html; charset=utf-8\r\n',
        'Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n',
      );
      const cells = Math.floor(((size - Buffer.byteLength(h)) * 0.74 - 11) / 5);
      const b64 = Buffer.from(`<table><tr>${'<td>x'.repeat(Math.max(1, cells))}`).toString('base64');
      text = h + b64.replace(/.{1,76}/g, '$&\r\n');
      break;
    }
    case 'qp-html': {
      // the same row, quoted-printable with every '<' encoded (=3C)
      const h = head('text/html; charset=utf-8').replace(
        'Content-Type: text/html; charset=utf-8\r\n',
        'Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n',
      );
      text = `${h}=3Ctable=3E=3Ctr=3E=\r\n${fill('=3Ctd=3Ex=\r\n', size - Buffer.byteLength(h) - 22)}`;
      break;
    }
    case 'address-list': {
      // a Cc list of four addresses a line (80 bytes), as long as the size allows (720 lines at 60 KB)
      const cc = fill('a.berg@flamecrm.ru, '.repeat(4).replace(/ $/, '\r\n '), Math.min(size - 800, 80_000));
      text = buildMessage({ to, messageId, headers: [`Cc: ${cc}z@flamecrm.ru`] });
      break;
    }
    case 'flat-html':
      // attack run 4 (F-med-2): elements one deep, so no nesting cap; 250,000 of them at 2 MB
      text = html('<b>x</b>');
      break;
    case 'flat-table':
      text = html('<tr><td>x</td></tr>', '<table>');
      break;
    case 'html-entities':
      // no '<' at all: three entities every 15 bytes for the parser to decode
      text = html('&amp;&#x41;&lt;', '');
      break;
    case 'long-line':
      text = plain(`${fill('Готово, проверьте. ', size - 800)}\r\n`);
      break;
    case 'ru-header-fields':
      // Outlook's quoted header fields in Russian, all of a block on one line (attack run 4, F-low-3)
      text = head('text/plain; charset=utf-8');
      text += numbered('От: Имя <a#@b.ru> Отправлено: 27 января 2012 г. Кому:\r\n', size - Buffer.byteLength(text));
      break;
    case 'ru-openers':
      // Gmail's Russian attribution openers without their "написал:" (attack run 4, F-low-3)
      text = head('text/plain; charset=utf-8');
      text += numbered('пт, 27 янв. 2012 г. в 12:0#, Имя Фамилия Отчество\r\n', size - Buffer.byteLength(text));
      break;
    case 'base64-flat-html': {
      // flat HTML, base64-encoded: no '<' in the bytes that arrive (attack run 4, F-low-3)
      const h = head('text/html; charset=utf-8').replace(
        'Content-Type: text/html; charset=utf-8\r\n',
        'Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n',
      );
      const units = Math.floor(((size - Buffer.byteLength(h)) * 0.74) / 8);
      text =
        h +
        Buffer.from('<b>x</b>'.repeat(Math.max(1, units)))
          .toString('base64')
          .replace(/.{1,76}/g, '$&\r\n');
      break;
    }
    case 'dkim-signatures': {
      // signatures that name keys nobody publishes: a lookup each (no key, no verification)
      const sig = (k: number) =>
        `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=flamecrm.ru; s=s${k}; h=from:to:subject; bh=${'A'.repeat(43)}=; b=${'B'.repeat(340)}`;
      const signatures: string[] = [];
      for (let k = 0; signatures.join('\r\n').length < Math.min(size - 1000, 200_000) && k < 200; k++)
        signatures.push(sig(k));
      text = buildMessage({ to, messageId, headers: signatures });
      break;
    }
  }
  return Buffer.from(text);
}
