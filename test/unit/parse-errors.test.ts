// What a failure of mailparser means: the message's own shape is permanent (550 5.6.0, as
// UnparseableMessage), our own want of memory is not (it must reach the sender as a 451).
import { describe, expect, it, vi } from 'vitest';

const failure = vi.hoisted(() => ({ error: new Error('unset') }));
// a parser that fails as mailparser's MailParser does: an 'error' event, once it has the bytes
vi.mock('mailparser', async () => {
  const { Writable } = await import('node:stream');
  class MailParser extends Writable {
    override _write(_chunk: Buffer, _encoding: string, done: (err?: Error) => void) {
      done(failure.error);
    }
  }
  return { MailParser };
});

const { parseMessage, UnparseableMessage } = await import('../../src/mail/parse.js');
const raw = Buffer.from('From: a@b.ru\r\nSubject: x\r\n\r\nbody\r\n');

describe('parse errors', () => {
  it.each([
    ['a header block over the limit', new Error('Maximum header size exceeded')],
    ['nesting deeper than the call stack', new RangeError('Maximum call stack size exceeded')],
  ])('%s is the message’s own: UnparseableMessage', async (_what, error) => {
    failure.error = error;
    await expect(parseMessage(raw)).rejects.toBeInstanceOf(UnparseableMessage);
  });

  it.each([
    ['a buffer we could not allocate', new RangeError('Array buffer allocation failed')],
    ['out of memory', new Error('out of memory')],
  ])('%s is ours: the error itself, so that the sender gets 451 and retries', async (_what, error) => {
    failure.error = error;
    const rejected = await parseMessage(raw).catch((e: unknown) => e);
    expect(rejected).toBe(error);
    expect(rejected).not.toBeInstanceOf(UnparseableMessage);
  });
});
