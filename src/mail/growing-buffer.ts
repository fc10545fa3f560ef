// Bytes collected as they arrive (a message in DATA, an attachment as the parser decodes it) into
// one buffer, each piece copied in at once, rather than the pieces kept and joined at the end
// (which holds them twice). Two ways to grow, for the two cases:
// - `copy`: a Buffer doubled (a copy) when it fills. V8 counts each new one as young external
//   memory, which makes it collect the garbage Buffers (the socket's chunks) sooner: measured, the
//   better for the main thread (and better than a buffer made at once of a declared SIZE).
// - `in-place`: a resizable ArrayBuffer that reserves the most it may hold (the whole message) as
//   address space only; pages are committed as bytes are written and the unused end is given back
//   when it is taken. Never copied, and exactly its size: the better where the size is unknown
//   and the bound far above it (an attachment).

/** ArrayBuffers made here: whoever holds a Buffer taken from one holds all of it. */
const own = new WeakSet<ArrayBufferLike>();

/**
 * Whether the Buffer's ArrayBuffer is all its own (it may be moved to a worker with it): one that
 * take() gave, or one that it spans. Not a view into Node's shared pool of small Buffers.
 */
export function hasOwnArrayBuffer(b: Uint8Array): boolean {
  return b.byteOffset === 0 && (b.byteLength === b.buffer.byteLength || own.has(b.buffer));
}

export class GrowingBuffer {
  private buffer: Buffer | null = null;
  private reserved: ArrayBuffer | null = null;
  private size = 0;

  /** `max`: what it will hold at most (more may be appended, at the cost of a copy). */
  constructor(
    private max: number,
    private readonly grows: 'copy' | 'in-place' = 'copy',
  ) {}

  get length(): number {
    return this.size;
  }

  append(chunk: Uint8Array): void {
    const end = this.size + chunk.length;
    if (end > (this.buffer?.length ?? 0)) this.grow(end);
    this.buffer!.set(chunk, this.size);
    this.size = end;
  }

  /**
   * The bytes, at the start of an ArrayBuffer that nothing else uses (hasOwnArrayBuffer). Grown by
   * copying, that ArrayBuffer may be larger (what was never written to costs no memory). Empty
   * afterwards.
   */
  take(): Buffer {
    let taken: Buffer;
    if (this.reserved) {
      this.reserved.resize(this.size);
      taken = Buffer.from(this.reserved, 0, this.size);
    } else taken = this.buffer ? this.buffer.subarray(0, this.size) : Buffer.alloc(0);
    this.drop();
    return taken;
  }

  /** Lets go of everything held. */
  drop(): void {
    this.buffer = null;
    this.reserved = null;
    this.size = 0;
  }

  private grow(end: number): void {
    // the first one the size of the first piece (a small message's only one), doubled from there
    const wanted = Math.max(end, (this.buffer?.length ?? 0) * 2);
    if (this.grows === 'in-place') {
      if (!this.reserved || end > this.max) this.reserve(end > this.max ? end * 2 : this.max);
      const bytes = Math.min(wanted, this.max);
      this.reserved!.resize(bytes);
      // a view made before the resize keeps its old length: this one has the new
      this.buffer = Buffer.from(this.reserved!, 0, bytes);
      return;
    }
    const next = Buffer.allocUnsafeSlow(Math.max(end, Math.min(wanted, this.max)));
    own.add(next.buffer);
    this.buffer?.copy(next, 0, 0, this.size);
    this.buffer = next;
  }

  /** A reservation of `max` bytes, what is held so far copied into it. */
  private reserve(max: number): void {
    const reserved = new ArrayBuffer(this.size, { maxByteLength: max });
    if (this.buffer) this.buffer.copy(new Uint8Array(reserved), 0, 0, this.size);
    own.add(reserved);
    this.max = max;
    this.reserved = reserved;
  }
}
