// One buffer that bytes are copied into as they arrive (src/mail/growing-buffer.ts): the bytes come
// out as they went in however they were cut and however it grew, in a Buffer that may be moved.
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { GrowingBuffer, hasOwnArrayBuffer } from '../../src/mail/growing-buffer.js';

const bytes = crypto.randomBytes(1024 * 1024 + 17);
/** `bytes` cut at random, as a socket or a decoder would. */
function pieces(): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = 1 + crypto.randomInt(70_000);
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

describe('GrowingBuffer', () => {
  it.each([
    ['copy (doubled from the first piece)', 2 * bytes.length, 'copy' as const],
    ['copy, up to max exactly', bytes.length, 'copy' as const],
    ['copy, past max', 100_000, 'copy' as const],
    ['in place', 2 * bytes.length, 'in-place' as const],
    ['in place, past max (moved to a larger reservation)', 100_000, 'in-place' as const],
  ])('%s: gives the bytes back as they were appended', (_name, max, grows) => {
    const b = new GrowingBuffer(max, grows);
    for (const p of pieces()) b.append(p);
    expect(b.length).toBe(bytes.length);
    const taken = b.take();
    expect(Buffer.compare(taken, bytes)).toBe(0);
    expect(hasOwnArrayBuffer(taken)).toBe(true);
    expect(b.length).toBe(0);
    expect(b.take().length).toBe(0);
  });

  it('copying, never makes more than max; in place, holds exactly what it took', () => {
    const copying = new GrowingBuffer(bytes.length);
    for (const p of pieces()) copying.append(p);
    expect(copying.take().buffer.byteLength).toBe(bytes.length);
    const inPlace = new GrowingBuffer(10 * bytes.length, 'in-place');
    for (const p of pieces()) inPlace.append(p);
    const taken = inPlace.take();
    expect(taken.buffer.byteLength).toBe(bytes.length);
    expect((taken.buffer as ArrayBuffer).resizable).toBe(true);
  });

  it('lets go of what it held on drop()', () => {
    const b = new GrowingBuffer(1000);
    b.append(Buffer.from('abc'));
    b.drop();
    b.append(Buffer.from('de'));
    expect(b.take().toString()).toBe('de');
  });
});

describe('hasOwnArrayBuffer', () => {
  it('is false for a view into Node’s pool of small Buffers or into another Buffer', () => {
    expect(hasOwnArrayBuffer(Buffer.from('a small one, from the pool'))).toBe(false);
    expect(hasOwnArrayBuffer(Buffer.allocUnsafeSlow(100).subarray(0, 50))).toBe(false);
    expect(hasOwnArrayBuffer(Buffer.allocUnsafeSlow(100))).toBe(true);
  });
});
