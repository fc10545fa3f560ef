// Malformed messages through mailparser and every pure step the DATA phase runs on a message:
// each finishes inside the hang guard, none throws, and what could be decoded is as recorded below.
import { type ParsedMail, simpleParser } from 'mailparser';
import { afterAll, describe, expect, it } from 'vitest';
import { attachmentRows, checkAttachmentLimits } from '../../src/mail/attachments.js';
import { classifyInput, classifyMessage } from '../../src/mail/classify.js';
import { parseMessage } from '../../src/mail/parse.js';
import { extractReply } from '../../src/mail/reply-text.js';
import { htmlToText, sanitizeHtml } from '../../src/mail/sanitize.js';
import { HEADERLESS_KINDS, MALFORMED_KINDS, type MalformedKind, malformedMessages } from '../helpers/malformed.js';

// The options src/mail/parse.ts gives mailparser (its collector is simpleParser's: parse.test.ts); keep them in step.
const PARSER_OPTIONS = {
  maxHtmlLengthToParse: 2 * 1024 * 1024,
  skipTextToHtml: true,
  skipTextLinks: true,
  skipImageLinks: true,
  keepCidLinks: true,
};
const OWN = { mailDomains: ['flamecrm.ru'], supportLocalPart: 'support' };
const HANG_GUARD_MS = 10_000;
const SLOW_MS = 500;

/**
 * What mailparser makes of each kind, observed: 'usable' when some text, HTML text or attachment
 * came out; 'nothing' when none did; 'rejected' when simpleParser itself refuses the message.
 */
const EXPECTED: Record<MalformedKind, 'usable' | 'nothing' | 'rejected'> = {
  'missing-boundary': 'nothing', // multipart without a boundary: the body is dropped
  'boundary-never-closed': 'usable',
  'boundary-mismatch': 'nothing', // no part found, the preamble is not text
  'invalid-base64': 'usable', // invalid characters are skipped
  'broken-quoted-printable': 'usable', // "=ZZ" is kept as written
  'unknown-charset': 'usable', // decoded as if UTF-8
  'invalid-charset': 'usable',
  'huge-header-line': 'usable',
  'many-header-lines': 'usable',
  'oversized-header-block': 'rejected', // over maxHeadSize (1 MB)
  'too-many-parts': 'rejected', // over maxChildNodes (1000)
  'deep-multipart': 'usable',
  'deep-html': 'usable', // mailparser gives no text (textConversionError); htmlToText's linear strip does
  'raw-utf8-headers': 'usable',
  'raw-cp1251-headers': 'usable', // the body; the 8-bit header words become U+FFFD
  'nul-bytes': 'usable', // NUL survives into parsed.text
  'absurd-line': 'usable',
  'long-whitespace-line': 'usable',
  'no-separator': 'nothing', // the body lines are read as (broken) headers
  'only-headers': 'nothing',
  empty: 'nothing',
  'no-headers': 'usable', // all body, no From
  'mixed-line-endings': 'usable',
  'truncated-base64-attachment': 'usable',
  'binary-garbage': 'nothing', // one endless header line
};

// More variations or another seed for a longer run: MALFORMED_VARIATIONS=20 MALFORMED_SEED=7 npx vitest run …
const VARIATIONS = Number(process.env.MALFORMED_VARIATIONS ?? 2);
const SEED = Number(process.env.MALFORMED_SEED ?? 2026);
const messages = malformedMessages(MALFORMED_KINDS.length * VARIATIONS, SEED);

interface Observation {
  kind: MalformedKind;
  outcome: 'usable' | 'nothing' | 'rejected';
  from: boolean;
  /** NUL in the decoded text or subject: PostgreSQL text refuses it. */
  nul: boolean;
  textConversionError: boolean;
  ms: Record<string, number>;
}
const observations: Observation[] = [];

/**
 * Runs one step against the hang guard. The race ends a step that waits; a step that keeps the
 * event loop busy cannot be interrupted, so its duration is checked once it returns.
 */
async function guarded<T>(
  name: string,
  step: string,
  work: () => T | Promise<T>,
  ms: Record<string, number>,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const started = performance.now();
  try {
    return await Promise.race([
      Promise.resolve().then(work),
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${name}: ${step} still running after ${HANG_GUARD_MS} ms`)),
          HANG_GUARD_MS,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    ms[step] = Math.round(performance.now() - started);
    expect(ms[step], `${name}: ${step} took ${ms[step]} ms`).toBeLessThan(HANG_GUARD_MS);
  }
}

function kindOf(name: string): MalformedKind {
  return name.slice(0, name.indexOf('#')) as MalformedKind;
}

const NON_BLANK = /[^\s\u0000]/;

describe('malformed messages', () => {
  it('cover every kind, each under 6 MB, all but the headerless ones starting with From: and To:', () => {
    expect(new Set(messages.map((m) => kindOf(m.name)))).toEqual(new Set(MALFORMED_KINDS));
    for (const m of messages) {
      expect(m.bytes.length, m.name).toBeLessThan(6 * 1024 * 1024);
      if (HEADERLESS_KINDS.has(kindOf(m.name))) continue;
      const start = m.bytes.subarray(0, 200).toString('latin1');
      expect(start, m.name).toMatch(/^From: .+(?:\r\n|\n|\r|\n\r|\r\r\n)To: support\+TKT-1001@flamecrm\.ru/);
    }
  });

  it('are the same for the same seed and differ for another', () => {
    const again = malformedMessages(MALFORMED_KINDS.length, SEED);
    const other = malformedMessages(MALFORMED_KINDS.length, SEED + 1);
    expect(again.every((m, i) => m.bytes.equals(messages[i]!.bytes))).toBe(true);
    expect(other.some((m, i) => !m.bytes.equals(messages[i]!.bytes))).toBe(true);
  });

  it.each(messages.map((m) => [m.name, m.bytes] as const))(
    '%s: parses or is refused, and every step finishes',
    async (name, bytes) => {
      const kind = kindOf(name);
      const ms: Record<string, number> = {};
      let parsed: ParsedMail | null = null;
      try {
        parsed = await guarded(name, 'parse', () => simpleParser(bytes, PARSER_OPTIONS), ms);
      } catch (err) {
        if ((err as Error).message.includes('still running')) throw err;
        expect(err, name).toBeInstanceOf(Error);
        expect(EXPECTED[kind], `${name} was rejected: ${(err as Error).message}`).toBe('rejected');
        observations.push({ kind, outcome: 'rejected', from: false, nul: false, textConversionError: false, ms });
        return;
      }

      const html = typeof parsed.html === 'string' ? parsed.html : null;
      const text = parsed.text ?? '';
      const verdict = await guarded(
        name,
        'classify',
        async () => classifyMessage(classifyInput(await parseMessage(bytes), 'sender@example.ru', OWN)),
        ms,
      );
      expect(
        verdict === null || ['auto-reply', 'bounce', 'loop', 'own-notification'].includes(verdict.kind),
        name,
      ).toBe(true);

      const clean = await guarded(name, 'sanitize', () => (html === null ? '' : sanitizeHtml(html, text || null)), ms);
      expect(clean, name).not.toMatch(/<script|\u0000/i);
      const htmlText = await guarded(name, 'htmlToText', () => (html === null ? '' : htmlToText(html)), ms);
      expect(htmlText, name).not.toContain('\u0000');

      const rows = await guarded(name, 'attachments', () => attachmentRows(parsed.attachments, html), ms);
      for (const row of rows) {
        expect(row.size, name).toBe(row.content.length);
        expect(row.filename ?? '', name).not.toMatch(/[\u0000-\u001f/\\]/);
      }
      checkAttachmentLimits(rows, { maxCount: 100, maxTotalBytes: 25 * 1024 * 1024 });

      const reply = await guarded(name, 'extractReply', () => extractReply({ text, html }), ms);
      expect(typeof reply.reply, name).toBe('string');

      const usable =
        NON_BLANK.test(text) || NON_BLANK.test(htmlText) || (html !== null && /<img/i.test(html)) || rows.length > 0;
      const outcome = usable ? 'usable' : 'nothing';
      const nul = text.includes('\u0000') || (parsed.subject ?? '').includes('\u0000');
      observations.push({
        kind,
        outcome,
        from: !!parsed.from?.value.some((a) => a.address),
        nul,
        textConversionError: !!parsed.textConversionError,
        ms,
      });
      expect(outcome, name).toBe(EXPECTED[kind]);
    },
  );

  // A run of blanks inside a line once made the line trim quadratic (50,000 spaces: 2 s; 1 MB:
  // hours, with the whole server blocked). 400,000 would take over a minute if it came back.
  it('extractReply finishes on a line with a long run of blanks that does not end it', () => {
    const line = `answer${' '.repeat(400_000)}x`;
    const r = extractReply({ text: `${line}\n\n> quoted`, html: null });
    expect(r.reply.startsWith('answer')).toBe(true);
    expect(r.removed).toContain('quoted');
  });

  afterAll(() => {
    // The record asked for by the DATA phase: what each kind decodes to, and which steps are slow.
    const lines = MALFORMED_KINDS.map((kind) => {
      const seen = observations.filter((o) => o.kind === kind);
      const slowest: Record<string, number> = {};
      for (const o of seen)
        for (const [step, t] of Object.entries(o.ms)) slowest[step] = Math.max(slowest[step] ?? 0, t);
      const slow = Object.entries(slowest)
        .filter(([, t]) => t >= SLOW_MS)
        .map(([step, t]) => `${step} ${t} ms`);
      const from = seen.every((o) => o.from) ? 'From' : seen.some((o) => o.from) ? 'From?' : 'no From';
      const notes = [
        seen.some((o) => o.nul) && 'NUL in text',
        seen.some((o) => o.textConversionError) && 'textConversionError',
        slow.length && `SLOW: ${slow.join(', ')}`,
      ].filter(Boolean);
      return `${kind.padEnd(28)} ${[...new Set(seen.map((o) => o.outcome))].join('/').padEnd(9)} ${from.padEnd(8)} ${notes.join('; ')}`;
    });
    console.log(`malformed kinds (${VARIATIONS} variations each):\n${lines.join('\n')}`);
  });
});
