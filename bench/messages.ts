// The messages the benches send: a Gmail-shaped, DKIM-signed staff reply (the own load), and the
// shape of what Postfix's smtp-source sends (for the in-process step bench, bench/steps.ts).
import { dkimSign } from 'mailauth';

/** A Gmail-shaped reply: multipart/alternative, the answer on top, the notification quoted. */
export function gmailReply(o: { i: number; run?: number; ticket: number; size: number }): Buffer {
  const { i, ticket, size } = o;
  const boundary = `000000000000bench${i}`;
  const head =
    `From: =?UTF-8?B?0JjQstCw0L0g0J/QtdGC0YDQvtCy?= <ivan@flamecrm.ru>\r\nTo: support+TKT-${ticket}@flamecrm.ru\r\n` +
    `Subject: Re: [TKT-${ticket}] Printer on fire\r\nDate: ${new Date().toUTCString()}\r\n` +
    `Message-ID: <bench-${process.pid}-${o.run ?? 0}-${i}@mail.flamecrm.ru>\r\nIn-Reply-To: <notify-TKT-${ticket}@flamecrm.ru>\r\n` +
    `References: <notify-TKT-${ticket}@flamecrm.ru>\r\nMIME-Version: 1.0\r\n` +
    `Content-Type: multipart/alternative; boundary="${boundary}"\r\n\r\n`;
  const quoteLine = 'Новый комментарий в заявке: принтер на третьем этаже снова печатает пустые листы.';
  const answer = 'Заменили картридж, всё печатает. Проверьте, пожалуйста.';
  const attribution = `чт, 26 нояб. 2026 г. в 10:00, FlameCRM <support+TKT-${ticket}@flamecrm.ru>:`;
  let quotedText = '';
  let quotedHtml = '';
  // fill to about `size` bytes, split between the two parts
  while (Buffer.byteLength(head + quotedText + quotedHtml) < size - 900) {
    quotedText += `> ${quoteLine}\r\n`;
    quotedHtml += `${quoteLine}<br>\r\n`;
  }
  const text = `${answer}\r\n\r\n${attribution}\r\n\r\n${quotedText}`;
  const html =
    `<div dir="ltr">${answer}</div><br><div class="gmail_quote gmail_quote_container"><div dir="ltr" class="gmail_attr">` +
    `${attribution.replace(/</g, '&lt;').replace(/>/g, '&gt;')}<br></div>\r\n<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex">\r\n${quotedHtml}</blockquote></div>\r\n`;
  return Buffer.from(
    `${head}--${boundary}\r\nContent-Type: text/plain; charset="UTF-8"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${text}\r\n` +
      `--${boundary}\r\nContent-Type: text/html; charset="UTF-8"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${html}\r\n--${boundary}--\r\n`,
  );
}

/** What `smtp-source -l SIZE` sends: four header fields (a Message-ID `<pid.session.msg@host>`) and numbered X lines. */
export function smtpSourceMessage(o: { i: number; to: string; from: string; size: number }): Buffer {
  const head =
    `From: <${o.from}>\r\nTo: <${o.to}>\r\nDate: ${new Date().toUTCString()}\r\n` +
    `Message-Id: <${process.pid.toString(16)}.0001.${String(o.i).padStart(4, '0')}@bench>\r\n\r\n`;
  let body = '';
  for (let n = 1; body.length < o.size; n++) body += `${n % 10}${'X'.repeat(78)}\r\n`;
  return Buffer.from(`${head}${body.slice(0, o.size - 2)}\r\n`);
}

export async function signed(message: Buffer, privateKey: string): Promise<Buffer> {
  const options = {
    signatureData: [{ signingDomain: 'flamecrm.ru', selector: 'mail', privateKey }],
  } as unknown as Parameters<typeof dkimSign>[1];
  const { signatures } = await dkimSign(message, options);
  return Buffer.concat([Buffer.from(signatures), message]);
}
