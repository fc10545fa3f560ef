// Hostile messages of the shapes issue 9's attack run used, generated from a seed (same seed, same
// bytes): folded headers, <p><li> nesting, fields duplicated over a genuine DKIM signature, l=
// signatures with text appended, NUL and lone surrogates, bare line endings, unrouted floods, big
// attachments. Each comes with the recipient it attacks.
import { dkimSigned } from './mail-auth.js';
import { mulberry32 } from './random.js';
import { buildMessage } from './smtp-client.js';

export interface HostileMessage {
  shape: string;
  to: string;
  bytes: Buffer;
}

export const HOSTILE_SHAPES = [
  'folded-header',
  'p-li-nesting',
  'duplicate-field',
  'partial-signature',
  'nul-content-type',
  'lone-surrogate',
  'bare-newline',
  'unrouted-flood',
  'big-attachment',
  'many-parts',
] as const;

const SIGNED: ReadonlySet<string> = new Set([
  'p-li-nesting',
  'nul-content-type',
  'lone-surrogate',
  'big-attachment',
  'many-parts',
]);

const TEXT_PART =
  'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nThe printer works again.\r\n';

export async function hostileMessages(
  count: number,
  seed: number,
  opts: { ticket: string; staffKey: string },
): Promise<HostileMessage[]> {
  const random = mulberry32(seed);
  const pick = (min: number, max: number) => Math.floor(min + random() * (max - min + 1));
  const to = `support+${opts.ticket}@flamecrm.ru`;
  const out: HostileMessage[] = [];
  for (let i = 0; i < count; i++) {
    const shape = HOSTILE_SHAPES[i % HOSTILE_SHAPES.length]!;
    const messageId = `<fuzz-${seed}-${i}@attacker.example>`;
    const base = (o: Parameters<typeof buildMessage>[0] = {}) => buildMessage({ to, messageId, ...o });
    const withBody = (contentType: string, body: string) =>
      base().replace(TEXT_PART, `Content-Type: ${contentType}\r\n\r\n${body}`);
    const sign = (m: string, extra = {}) => dkimSigned(m, 'flamecrm.ru', 'mail', opts.staffKey, extra);
    let bytes: Buffer;
    let rcpt = to;
    switch (shape) {
      case 'folded-header':
        bytes = Buffer.from(base({ headers: [`X-Fold: a${'\r\n b'.repeat(pick(500, 100_000))}`] }));
        break;
      case 'p-li-nesting': {
        const html = `<p>Готово</p>${'<p><li>'.repeat(pick(1000, 100_000))}`;
        bytes = Buffer.from(
          random() < 0.5
            ? withBody('text/html; charset=utf-8', `${html}\r\n`)
            : withBody(
                'multipart/mixed; boundary="m"',
                `--m\r\nContent-Type: text/html; charset=utf-8\r\n\r\n${html}\r\n--m--\r\n`,
              ),
        );
        break;
      }
      case 'duplicate-field': {
        const field = [
          'Subject: Новые реквизиты',
          `Message-ID: <dup-${i}@x>`,
          'X-Ticket-ID: TKT-1',
          'Content-Type: text/html',
        ][pick(0, 3)]!;
        bytes = Buffer.concat([Buffer.from(`${field}\r\n`), await sign(base())]);
        break;
      }
      case 'partial-signature': {
        const body = 'Заменили картридж.';
        const signed = await sign(base({ body }), { maxBodyLength: Buffer.byteLength(`${body}\r\n`) });
        bytes = Buffer.concat([signed, Buffer.from(`Оплатите по новым реквизитам ${i}.\r\n`.repeat(pick(1, 50)))]);
        break;
      }
      case 'nul-content-type':
        bytes = Buffer.from(
          withBody(
            'multipart/mixed; boundary="n"',
            '--n\r\nContent-Type: text/plain\r\n\r\nвложение\r\n--n\r\n' +
              `Content-Type: application/pdf\u0000${'x'.repeat(pick(0, 20))}; name="a.pdf"\r\n` +
              'Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--n--\r\n',
          ),
          'latin1',
        );
        rcpt = random() < 0.5 ? to : 'postmaster@flamecrm.ru';
        break;
      case 'lone-surrogate':
        bytes = Buffer.from(
          random() < 0.5
            ? base({ subject: '=?utf-16be?B?2AA=?=' })
            : base({ from: '=?utf-16be?B?3AA=?= <ivan@flamecrm.ru>' }),
        );
        rcpt = random() < 0.5 ? to : 'postmaster@flamecrm.ru';
        break;
      case 'bare-newline':
        bytes = Buffer.from(base().replace('\r\nSubject:', random() < 0.5 ? '\nSubject:' : '\rSubject:'), 'latin1');
        break;
      case 'unrouted-flood':
        bytes = Buffer.from(base({ body: `${'z'.repeat(98)}\r\n`.repeat(pick(100, 30_000)) }));
        rcpt = random() < 0.5 ? 'postmaster@flamecrm.ru' : 'abuse@flamecrm.ru';
        break;
      case 'big-attachment': {
        const line = `${'QUJD'.repeat(19)}\r\n`;
        bytes = Buffer.from(
          withBody(
            'multipart/mixed; boundary="b"',
            '--b\r\nContent-Type: text/plain\r\n\r\nскан\r\n--b\r\nContent-Type: application/pdf; name="s.pdf"\r\n' +
              `Content-Transfer-Encoding: base64\r\n\r\n${line.repeat(pick(1000, 40_000))}--b--\r\n`,
          ),
        );
        break;
      }
      case 'many-parts': {
        const parts = pick(100, 2000);
        bytes = Buffer.from(
          withBody(
            'multipart/mixed; boundary="p"',
            `${Array.from({ length: parts }, (_, k) => `--p\r\nContent-Type: text/plain\r\n\r\npart ${k}\r\n`).join('')}--p--\r\n`,
          ),
        );
        break;
      }
    }
    // what must reach the expensive steps is signed by the staff domain, so that it authenticates
    // from the attacker's own server (as a replayed staff message would)
    if (SIGNED.has(shape)) bytes = await sign(bytes.toString('latin1'));
    out.push({ shape, to: rcpt, bytes });
  }
  return out;
}
