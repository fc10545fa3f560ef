// mailauth's header/body split by indexOf (src/mail/mailauth-scan.ts): the pinned methods are still the
// ones it replaces (this fails when mailauth's code moves), and the replacements hand on the same
// chunks and leave the same state as the originals, on messages of every line-ending shape cut into
// chunks at random.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { authenticate } from '../../src/mail/authenticate.js';
import { fingerprint, originals, PINNED_SOURCE, patched, replacements } from '../../src/mail/mailauth-scan.js';
import { unsignedFromExample } from '../helpers/mail-auth.js';
import { buildMessage } from '../helpers/smtp-client.js';

const require = createRequire(import.meta.url);
const { MessageParser } = require('mailauth/lib/dkim/message-parser.js');

type Methods = typeof originals;

/** What a MessageParser does with `chunks` through `methods`: every call it makes, and its state at the end. */
async function run(methods: Methods, chunks: Buffer[], linebreaks = true) {
  const calls: string[] = [];
  const parser = new MessageParser();
  parser.messageHeaders = async () =>
    calls.push(`headers ${JSON.stringify(parser.headers.original.toString('latin1'))}`);
  parser.nextChunk = async (chunk: Buffer) => calls.push(`body ${JSON.stringify(chunk.toString('latin1'))}`);
  for (const chunk of chunks) {
    // processChunk alone too: its rule for bare LFs, which ensureLinebreaks never lets through
    for (const part of linebreaks ? methods.ensureLinebreaks.call(parser, chunk) : [chunk]) {
      calls.push(`part ${JSON.stringify(part.toString('latin1'))} last ${parser.lastByte}`);
      await methods.processChunk.call(parser, part);
    }
  }
  return {
    calls,
    state: parser.state,
    stateBytes: parser.stateBytes,
    headerBytes: parser.headerBytes,
    lastByte: parser.lastByte,
    headerChunks: Buffer.concat(parser.headerChunks).toString('latin1'),
  };
}

/** A deterministic pseudo-random generator (the test is the same on every run). */
function random(seed: number) {
  let s = seed;
  return (n: number) => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s % n;
  };
}

function cut(bytes: Buffer, next: (n: number) => number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let pos = 0; pos < bytes.length; ) {
    const size = 1 + next(next(2) ? 8 : 200);
    chunks.push(bytes.subarray(pos, pos + size));
    pos += size;
  }
  return chunks;
}

describe("mailauth's header/body split", () => {
  it('replaces the pinned methods, and only those it was written against', () => {
    expect(fingerprint(originals.processChunk)).toBe(PINNED_SOURCE.processChunk);
    expect(fingerprint(originals.ensureLinebreaks)).toBe(PINNED_SOURCE.ensureLinebreaks);
    expect(patched).toBe(true);
    expect(MessageParser.prototype.processChunk).toBe(replacements.processChunk);
    expect(MessageParser.prototype.ensureLinebreaks).toBe(replacements.ensureLinebreaks);
  });

  it('hands on the same chunks and leaves the same state as the originals', async () => {
    const next = random(12345);
    const alphabet = ['\r', '\n', '\r\n', '\n\n', 'a', 'b', ':', ' ', '\t', 'Subject: x', '\u00ff'];
    const messages: Buffer[] = [
      Buffer.alloc(0),
      Buffer.from('\n'),
      Buffer.from('\r\n'),
      Buffer.from('\n\nbody'),
      Buffer.from('\r\n\r\nbody'),
      Buffer.from('A: b\r\n\r\nbody\r\n'),
      Buffer.from('A: b\n\nbody\nline\n'),
      Buffer.from('A: b\r\n'),
      Buffer.from(
        buildMessage({ from: 'ivan@example.ru', to: 'support+TKT-1@flamecrm.ru', body: 'Привет\r\n\r\nещё' }),
      ),
      Buffer.from(buildMessage({ from: 'ivan@example.ru', to: 'support+TKT-1@flamecrm.ru' }).replace(/\r\n/g, '\n')),
    ];
    for (let k = 0; k < 1500; k++) {
      const parts: string[] = [];
      for (let n = next(60); n > 0; n--) parts.push(alphabet[next(alphabet.length)]!);
      messages.push(Buffer.from(parts.join(''), 'latin1'));
    }
    let bodies = 0;
    for (const message of messages) {
      const chunks = cut(message, next);
      for (const linebreaks of [true, false]) {
        const want = await run(originals, chunks, linebreaks);
        const got = await run(replacements, chunks, linebreaks);
        expect(got, JSON.stringify(message.toString('latin1'))).toEqual(want);
        if (linebreaks && want.state === 'body') bodies++;
      }
    }
    // both kinds of message were tried: with the header section ended, and still in it
    expect(bodies).toBeGreaterThan(100);
    expect(messages.length - bodies).toBeGreaterThan(100);
  });

  it('authenticates a message through the replaced methods', async () => {
    const resolver = async (name: string) => {
      throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    };
    const result = await authenticate(unsignedFromExample(resolver));
    expect(result.fromDomain).toBe('example.ru');
    expect(result.dkim).toEqual([]);
  });
});
