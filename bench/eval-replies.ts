// `npm run eval:replies -- DIR…`: scores reply extraction on corpora laid out like
// ../shared/reply-corpora (NNN.input.txt or NNN.input.html beside NNN.expected.txt), with
// email-reply-parser and planer measured in the same run. A benchmark, not a test.
import fs from 'node:fs';
import path from 'node:path';
import EmailReplyParser from 'email-reply-parser';
import planer from 'planer';
import { extractReply } from '../src/mail/reply-text.js';
import { htmlToText } from '../src/mail/sanitize.js';

interface Case {
  id: string;
  input: string;
  html: boolean;
  expected: string;
}

/** The answer, and everything the extractor keeps besides it (ticket-mx keeps a forwarded message). */
type Extractor = (c: Case) => { reply: string; kept: string };

const EXTRACTORS: Array<[string, Extractor]> = [
  [
    'ticket-mx',
    (c) => {
      const r = extractReply(c.html ? { html: c.input } : { text: c.input });
      const f = r.forwarded;
      return { reply: r.reply, kept: f ? [r.reply, f.from, f.date, f.subject, f.text].join('\n') : r.reply };
    },
  ],
  // Both libraries read text only (planer's HTML mode needs a browser DOM): they get the HTML's text.
  ['email-reply-parser 2.3.9', (c) => only(new EmailReplyParser().parseReply(c.html ? htmlToText(c.input) : c.input))],
  ['planer 1.2.0', (c) => only(planer.extractFrom(c.html ? htmlToText(c.input) : c.input, 'text/plain'))],
];

function only(reply: string) {
  return { reply, kept: reply };
}

/** The corpora's README: CRLF to LF, right-trim lines, one blank line at most in a row, trim. */
function normalise(s: string): string {
  return s
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

const words = (s: string) => s.split(/\s+/).filter(Boolean);

/** Every word of the expected answer, in order, is still in what the extractor returned. */
function keepsAllWords(expected: string[], got: string[]): boolean {
  let j = 0;
  for (const w of got) if (j < expected.length && w === expected[j]) j++;
  return j === expected.length;
}

type Verdict = 'exact' | 'leftover' | 'overcut';

/**
 * The person's own words in an expected answer: not the lines it quotes with ">" (some corpora
 * keep a quote, none wrote it), not a forwarded message (kept as data), and not a trailing "-- " signature or device footer, which the
 * corpora disagree about (see their README). Losing any other word is an over-cut.
 */
function ownWords(expected: string): string {
  const all = expected.split('\n');
  // a forwarded message is kept as data, not as the answer: its text is what must not be lost
  const forward = all.findIndex((l) => /^[-\s]*(?:forwarded message|begin forwarded message)/i.test(l));
  const lines = (forward >= 0 ? all.slice(0, forward) : all).filter((l) => !/^\s*>/.test(l));
  const delimiter = lines.findIndex((l) => /^--\s*$/.test(l));
  const body = delimiter >= 0 && lines.length - delimiter <= 6 ? lines.slice(0, delimiter) : lines;
  while (body.length && /^(?:Sent (?:from|with|via)|Envoyé de|Enviado desde|Von meinem)\b/i.test(body.at(-1)!))
    body.pop();
  return body.join('\n');
}

function judge(c: Case, got: { reply: string; kept: string }): Verdict {
  const e = normalise(c.expected);
  const g = normalise(got.reply);
  const strip = (s: string) => s.replace(/\s/g, '');
  if (c.html ? strip(e) === strip(g) : e === g) return 'exact';
  const own = ownWords(e);
  const kept = normalise(got.kept);
  const keeps = c.html ? keepsAllWords([...strip(own)], [...strip(kept)]) : keepsAllWords(words(own), words(kept));
  return keeps ? 'leftover' : 'overcut';
}

/** Lines only one side has: '-' lost from the expected answer, '+' left over in ours. */
function difference(expected: string, got: string): string {
  const e = expected.split('\n').filter((l) => l.trim());
  const g = got.split('\n').filter((l) => l.trim());
  const lost = e.filter((l) => !g.includes(l)).map((l) => `- ${l}`);
  const extra = g.filter((l) => !e.includes(l)).map((l) => `+ ${l}`);
  return [...lost, ...extra].join('\n');
}

function readCorpus(dir: string): Case[] {
  const cases: Case[] = [];
  for (const f of fs.readdirSync(dir).sort()) {
    const m = /^(.+)\.input\.(txt|html)$/.exec(f);
    if (!m) continue;
    const expected = path.join(dir, `${m[1]}.expected.txt`);
    if (!fs.existsSync(expected)) continue;
    cases.push({
      id: m[1]!,
      input: fs.readFileSync(path.join(dir, f), 'utf8'),
      html: m[2] === 'html',
      expected: fs.readFileSync(expected, 'utf8'),
    });
  }
  return cases;
}

const args = process.argv.slice(2);
const verbose = args.includes('--failures');
const dirs = args.filter((a) => !a.startsWith('--'));
if (!dirs.length) {
  console.error('Usage: npm run eval:replies -- [--failures] DIR…  (a corpus, or a folder of corpora)');
  process.exit(2);
}
const corpora = dirs.flatMap((d) => {
  const own = readCorpus(d);
  if (own.length) return [{ name: path.basename(path.resolve(d)), cases: own }];
  return fs
    .readdirSync(d)
    .sort()
    .map((sub) => ({
      name: sub,
      cases: fs.statSync(path.join(d, sub)).isDirectory() ? readCorpus(path.join(d, sub)) : [],
    }))
    .filter((c) => c.cases.length);
});

const totals = new Map<string, { sets: Record<string, { exact: number; overcut: number; n: number }> }>();
const rows: string[] = [];
console.log(`| corpus | cases | ${EXTRACTORS.map(([n]) => `${n} exact (over-cut)`).join(' | ')} |`);
console.log(`| --- | ---: | ${EXTRACTORS.map(() => '---:').join(' | ')} |`);
const summary = {
  reply: new Map<string, [number, number, number]>(),
  forward: new Map<string, [number, number, number]>(),
};
for (const corpus of corpora) {
  const cells: string[] = [];
  const kind = /forward/i.test(corpus.name) ? 'forward' : 'reply';
  for (const [name, extract] of EXTRACTORS) {
    let exact = 0;
    let overcut = 0;
    for (const c of corpus.cases) {
      let got: { reply: string; kept: string };
      try {
        got = extract(c);
      } catch (err) {
        got = only(`<threw ${(err as Error).message}>`);
      }
      const v = judge(c, got);
      if (v === 'exact') exact++;
      if (v === 'overcut') overcut++;
      if (verbose && name === 'ticket-mx' && v !== 'exact')
        rows.push(`### ${corpus.name}/${c.id} ${v}\n${difference(normalise(c.expected), normalise(got.reply))}`);
    }
    const t = summary[kind].get(name) ?? [0, 0, 0];
    summary[kind].set(name, [t[0] + exact, t[1] + overcut, t[2] + corpus.cases.length]);
    cells.push(`${exact} (${overcut})`);
  }
  console.log(`| ${corpus.name} | ${corpus.cases.length} | ${cells.join(' | ')} |`);
}
for (const [kind, m] of Object.entries(summary)) {
  if (!m.size) continue;
  const cells = [...m.values()].map(([e, o, n]) => `**${e} (${o})** ${((100 * e) / n).toFixed(1)}%`);
  const n = [...m.values()][0]![2];
  console.log(`| all ${kind} sets | ${n} | ${cells.join(' | ')} |`);
}
void totals;
if (verbose) console.log(`\n${rows.join('\n')}`);
