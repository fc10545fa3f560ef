// The pipeline's budget (src/pipeline/budget.ts): messages at once, what they cost, who goes next.
import { describe, expect, it } from 'vitest';
import { costOf, Overloaded, WorkBudget } from '../../src/pipeline/budget.js';

const tick = () => new Promise((r) => setImmediate(r));
const MiB = 2 ** 20;

describe('costOf', () => {
  it.each([
    // bytes, charge in MiB: 256 KB + 16 × size up to about 2.7 MiB, then 256 KB + 34 MiB + 3.5 × size
    [0, 0.25],
    [64 * 1024, 1.25],
    [MiB, 16.25],
    [2 * MiB, 32.25],
    [5 * MiB, 51.75],
    [25 * MiB, 121.75],
  ])('%i bytes are charged %f MiB (the measured peak, npm run bench:memory)', (bytes, mib) => {
    expect(costOf(bytes)).toBe(mib * MiB);
  });

  it('charges a control character 4 bytes more: 25 MiB of them ~222 MiB (measured ~217 MB), not 122', () => {
    expect(costOf(25 * MiB, 25 * MiB)).toBe(221.75 * MiB);
    expect(costOf(20 * MiB, 20 * MiB)).toBe(184.25 * MiB);
    // an estimate above the size is the size
    expect(costOf(MiB, 5 * MiB)).toBe(costOf(MiB, MiB));
    expect(costOf(MiB, 0)).toBe(costOf(MiB));
  });

  it('never charges less for more bytes, and is continuous where the two parts meet', () => {
    const meet = (34 * MiB) / (16 - 3.5);
    for (const b of [meet - 1, meet, meet + 1].map(Math.floor)) expect(costOf(b + 1)).toBeGreaterThanOrEqual(costOf(b));
    expect(Math.abs(costOf(Math.ceil(meet)) - costOf(Math.floor(meet)))).toBeLessThanOrEqual(16);
  });

  it('lets a 1 GiB budget take eight 25 MiB messages at once (a flat 12× took three)', async () => {
    const budget = new WorkBudget(16, 1024 * MiB);
    for (let i = 0; i < 8; i++) await budget.acquire(costOf(25 * MiB), `n${i}`, 1000);
    await expect(budget.acquire(costOf(25 * MiB), 'n8', 20)).rejects.toBeInstanceOf(Overloaded);
  });
});

describe('WorkBudget', () => {
  it('runs at most maxMessages at once; the next waits and goes when one is released', async () => {
    const budget = new WorkBudget(2, 1e12);
    const a = await budget.acquire(1, 'n1', 1000);
    await budget.acquire(1, 'n2', 1000);
    let third = false;
    const waiting = budget.acquire(1, 'n3', 1000).then((r) => {
      third = true;
      return r;
    });
    await tick();
    expect(third).toBe(false);
    expect(budget.state).toEqual({ messages: 2, bytes: 2, waiting: 1 });
    a();
    (await waiting)();
    expect(third).toBe(true);
  });

  it('charges what processing costs, not the raw bytes; one dearer than the budget runs alone', async () => {
    const budget = new WorkBudget(10, costOf(10 * 2 ** 20));
    const big = await budget.acquire(costOf(25 * 2 ** 20), 'n1', 1000);
    await expect(budget.acquire(costOf(1000), 'n2', 50)).rejects.toBeInstanceOf(Overloaded);
    big();
    (await budget.acquire(costOf(1000), 'n2', 50))();
  });

  it('lets the network with the fewest messages in process go first', async () => {
    const budget = new WorkBudget(2, 1e12);
    const flood1 = await budget.acquire(1, 'flood', 1000);
    await budget.acquire(1, 'flood', 1000);
    const order: string[] = [];
    const queued = (network: string) =>
      budget.acquire(1, network, 1000).then((r) => {
        order.push(network);
        return r;
      });
    const f = queued('flood');
    const n = queued('normal');
    flood1();
    await n;
    expect(order).toEqual(['normal']);
    f.catch(() => {});
  });

  it('gives up after the wait, or when the caller aborts, and lets the next one in', async () => {
    const budget = new WorkBudget(1, 1e12);
    const held = await budget.acquire(1, 'n', 1000);
    await expect(budget.acquire(1, 'n', 20)).rejects.toThrow(/no processing slot within 20 ms/);
    const abort = new AbortController();
    const gone = budget.acquire(1, 'n', 10_000, abort.signal);
    abort.abort();
    await expect(gone).rejects.toBeInstanceOf(Overloaded);
    expect(budget.state.waiting).toBe(0);
    held();
    expect(budget.state.messages).toBe(0);
  });
});
