// mailauth's header/body split without a loop over every byte in JavaScript. mailauth (pinned exactly
// in package.json) reads each message through MessageParser (mailauth/lib/dkim/message-parser.js),
// which finds the end of the header section by pushing each header byte into an array and slicing
// it back to four, and turns bare LFs into CRLF by visiting every byte of the message: for a 5.5 KB
// DKIM-signed reply those two loops were ~8% of the pipeline's CPU (npm run bench:steps, gmail
// analyse: processChunk 6.2%, ensureLinebreaks 0.8% of the profile). Here the two methods are
// replaced by ones that jump from LF to LF with Buffer#indexOf (native memchr) and decide exactly as
// the originals do: the same chunks handed on, the same state after each. They are replaced only
// when the pinned methods are the ones they were written against (their source's fingerprint); any
// other version keeps its own, slower, code. test/unit/mailauth-scan.test.ts fails when the pinned
// code moves, and compares both with the originals on many messages cut into chunks at random.
//
// The upstreamable change this stands for: the same two loops in mailauth/lib/dkim/message-parser.js with indexOf.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

interface MessageParserState {
  state: 'header' | 'body';
  /** The last (up to four) header bytes seen. */
  stateBytes: number[];
  /** Header bytes seen so far. */
  headerBytes: number;
  headerChunks: Buffer[];
  /** The byte before the current chunk (bare-LF detection across chunks). */
  lastByte?: number;
  emitHeaders(chunk?: Buffer): Promise<void>;
  nextChunk(chunk: Buffer): Promise<void>;
}

type ProcessChunk = (this: MessageParserState, chunk: Buffer) => Promise<void>;
type EnsureLinebreaks = (this: MessageParserState, input: Buffer) => Generator<Buffer>;

interface MessageParserPrototype {
  processChunk: ProcessChunk;
  ensureLinebreaks: EnsureLinebreaks;
}

const { MessageParser } = require('mailauth/lib/dkim/message-parser.js') as {
  MessageParser: { prototype: MessageParserPrototype };
};

/** The pinned originals, for the test to compare against. */
export const originals: Readonly<MessageParserPrototype> = {
  processChunk: MessageParser.prototype.processChunk,
  ensureLinebreaks: MessageParser.prototype.ensureLinebreaks,
};

/** sha256 of each pinned method's source, as mailauth 7.1.0 has it. */
export const PINNED_SOURCE = {
  processChunk: '3eb0ab88fc518e73',
  ensureLinebreaks: '485edc28beba0c10',
};

export const fingerprint = (fn: (...args: never[]) => unknown): string =>
  createHash('sha256').update(fn.toString()).digest('hex').slice(0, 16);

const LF = 0x0a;
const CR = 0x0d;
const CRLF = Buffer.from('\r\n');

/**
 * Where the header section ends in `chunk`: the index of the LF that ends it, or -1. `before` is the
 * last bytes seen before the chunk and `seen` how many header bytes came before it. The end is an LF
 * after an LF, after LF CR, or an LF that is the first byte (or the second, after CR) of the message:
 * MessageParser's rule, byte for byte.
 */
function headerEnd(chunk: Buffer, before: readonly number[], seen: number): number {
  const n = before.length;
  for (let i = chunk.indexOf(LF); i >= 0; i = chunk.indexOf(LF, i + 1)) {
    const b1 = i >= 1 ? chunk[i - 1] : before[n - 1];
    const b2 = i >= 2 ? chunk[i - 2] : i === 1 ? before[n - 1] : before[n - 2];
    const count = seen + i + 1;
    if (b1 === LF || (b1 === CR && b2 === LF) || count === 1 || (count === 2 && b1 === CR)) return i;
  }
  return -1;
}

/** The last four of `before` followed by chunk[0, end). */
function lastFour(before: readonly number[], chunk: Buffer, end: number): number[] {
  const out = end >= 4 ? [] : before.slice(Math.max(0, before.length - (4 - end)));
  for (let k = Math.max(0, end - 4); k < end; k++) out.push(chunk[k]!);
  return out;
}

const processChunk: ProcessChunk = async function (this: MessageParserState, chunk: Buffer) {
  if (!chunk?.length) return;
  if (this.state === 'header') {
    const i = headerEnd(chunk, this.stateBytes, this.headerBytes);
    const end = i < 0 ? chunk.length : i + 1;
    this.stateBytes = lastFour(this.stateBytes, chunk, end);
    this.headerBytes += end;
    if (i >= 0) {
      if (i === chunk.length - 1) {
        await this.emitHeaders(chunk);
        return;
      }
      await this.emitHeaders(chunk.subarray(0, i + 1));
      chunk = chunk.subarray(i + 1);
    }
  }
  if (this.state !== 'body') {
    this.headerChunks.push(chunk);
    return;
  }
  await this.nextChunk(chunk);
};

const ensureLinebreaks: EnsureLinebreaks = function* (this: MessageParserState, input: Buffer) {
  let pos = 0;
  for (let i = input.indexOf(LF); i >= 0; i = input.indexOf(LF, i + 1)) {
    const previous = i > 0 ? input[i - 1] : this.lastByte;
    if (previous === CR) continue;
    if (i > 0) this.lastByte = previous; // as the original leaves it at each of its yields
    yield i === 0 || pos === i ? Buffer.from(CRLF) : Buffer.concat([input.subarray(pos, i), CRLF]);
    pos = i + 1;
  }
  if (input.length) this.lastByte = input[input.length - 1];
  if (pos === 0) yield input;
  else if (pos < input.length) yield input.subarray(pos);
};

/** Whether the pinned methods were the ones these replace (and so were replaced). */
export const patched =
  fingerprint(originals.processChunk) === PINNED_SOURCE.processChunk &&
  fingerprint(originals.ensureLinebreaks) === PINNED_SOURCE.ensureLinebreaks;

if (patched) {
  MessageParser.prototype.processChunk = processChunk;
  MessageParser.prototype.ensureLinebreaks = ensureLinebreaks;
}

export const replacements: Readonly<MessageParserPrototype> = { processChunk, ensureLinebreaks };
