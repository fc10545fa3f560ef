// `ticket-mx reply-text`: the answer of a body or of a whole .eml, as the DATA path extracts it;
// `--jsonl` is the batch interface other tools use (one JSON object per line in and out; stable:
// fields are only ever added). Needs no database and no configuration.
import fs from 'node:fs';
import readline from 'node:readline';
import { replyOfRaw } from '../mail/reply-text/message.js';
import { extractReply, type ReplyText } from '../mail/reply-text.js';
import { type Command, type Out, parse, UsageError } from './command.js';

export const replyText: Command = {
  name: 'reply-text',
  summary: "print a message's answer, quotes and signature removed",
  help: `Usage: ticket-mx reply-text [--html] [--eml] [--json] [FILE]
       ticket-mx reply-text --jsonl < requests.jsonl

Prints the answer a person wrote, extracted the way incoming mail is: the
quoted original, the attribution line, the signature and device footers
removed. Reads FILE, or standard input.
  --html     the body is HTML (default: plain text)
  --eml      the input is a whole message (default for FILE ending in .eml),
             decoded like DATA
  --json     print {"reply", "removed", "method", "forwarded"?} instead of the
             answer alone
  --jsonl    batch mode: each line of standard input is one JSON object,
               {"text": "…"}, {"html": "…"}, {"text": "…", "html": "…"}
               or {"eml": "<base64>"},
             and each gets one line on standard output, in order:
               {"reply": "…", "removed": "…", "method": "html"|"text"|"none"}
             plus "forwarded": {"from", "date", "subject", "to", "text"} for a
             forwarded message, or {"error": "…"} for a line that is not such an
             object (the batch goes on; the exit code is then 1).`,
  run: (args, io) => run(args, io),
};

async function run(args: string[], io: Out): Promise<number> {
  const { values, positionals } = parse(
    args,
    { html: { type: 'boolean' }, eml: { type: 'boolean' }, json: { type: 'boolean' }, jsonl: { type: 'boolean' } },
    true,
  );
  if (positionals.length > 1) throw new UsageError('reply-text takes at most one FILE');
  if (values.jsonl) {
    if (positionals.length || values.html || values.eml || values.json)
      throw new UsageError('--jsonl reads standard input and takes no other option');
    return batch(io);
  }
  if (values.html && values.eml) throw new UsageError('--html and --eml exclude each other');
  const file = positionals[0];
  const bytes = file === undefined || file === '-' ? await readAll(process.stdin) : fs.readFileSync(file);
  const eml = values.eml || (!values.html && !!file && /\.eml$/i.test(file));
  const result = eml
    ? await replyOfRaw(bytes)
    : extractReply(values.html ? { html: bytes.toString('utf8') } : { text: bytes.toString('utf8') });
  io.out(values.json ? JSON.stringify(wire(result)) : result.reply);
  return 0;
}

/** The wire form of a result: the three fields always, forwarded when there is one. */
function wire(r: ReplyText) {
  return { reply: r.reply, removed: r.removed, method: r.method, ...(r.forwarded ? { forwarded: r.forwarded } : {}) };
}

async function batch(io: Out): Promise<number> {
  let failed = false;
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    if (!line.trim()) continue;
    try {
      io.out(JSON.stringify(wire(await answer(line))));
    } catch (err) {
      failed = true;
      io.out(JSON.stringify({ error: (err as Error).message }));
    }
  }
  return failed ? 1 : 0;
}

async function answer(line: string): Promise<ReplyText> {
  const request = JSON.parse(line) as unknown;
  if (typeof request !== 'object' || request === null || Array.isArray(request))
    throw new Error('expected an object with "text", "html" or "eml"');
  const { text, html, eml } = request as Record<string, unknown>;
  const isText = (v: unknown) => v === undefined || v === null || typeof v === 'string';
  if (typeof eml === 'string') return replyOfRaw(Buffer.from(eml, 'base64'));
  if (eml !== undefined || !isText(text) || !isText(html) || (text == null && html == null))
    throw new Error('expected "text" or "html" as strings, or "eml" as base64');
  return extractReply({ text: text as string | null, html: html as string | null });
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks);
}
