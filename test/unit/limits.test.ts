// Per-client limits: IPv4 per address, IPv6 per /64, a fixed one-minute window, the shares of the buffer.
import { describe, expect, it } from 'vitest';
import {
  type BufferClaim,
  BufferedBytes,
  bufferLimits,
  clientKey,
  networkKey,
  PerIpLimits,
} from '../../src/smtp/limits.js';

describe('clientKey', () => {
  it.each([
    ['192.0.2.7', '192.0.2.7'],
    ['::ffff:192.0.2.7', '192.0.2.7'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::9', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002:ffff::1', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
  ])('%s → %s', (ip, key) => {
    expect(clientKey(ip)).toBe(key);
  });
});

describe('networkKey', () => {
  it.each([
    ['192.0.2.7', '192.0.2.0/24'],
    ['::ffff:192.0.2.7', '192.0.2.0/24'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1::/48'],
    ['2001:0db8:0001:ffff::1', '2001:db8:1::/48'],
    ['2001:db8::1', '2001:db8:0::/48'],
  ])('%s → %s', (ip, key) => {
    expect(networkKey(ip)).toBe(key);
  });
});

describe('PerIpLimits', () => {
  it('counts the addresses of one IPv6 /64 together', () => {
    const limits = new PerIpLimits(2, 0);
    expect(limits.openConnection('2001:db8:1:2::1')).toBeNull();
    expect(limits.openConnection('2001:db8:1:2::2')).toBeNull();
    expect(limits.openConnection('2001:db8:1:2::3')).toBe('ip');
    expect(limits.openConnection('2001:db8:1:3::1')).toBeNull();
    limits.closeConnection('2001:db8:1:2::1');
    expect(limits.openConnection('2001:db8:1:2::3')).toBeNull();
  });

  it('limits a network (IPv4 /24, IPv6 /48) however many addresses it uses', () => {
    const limits = new PerIpLimits(0, 0, Date.now, { maxPerNetwork: 3, maxClients: 0, reserved: 0 });
    expect(['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4'].map((ip) => limits.openConnection(ip))).toEqual([
      null,
      null,
      null,
      'network',
    ]);
    expect(limits.openConnection('192.0.3.1')).toBeNull();
    expect(
      ['2001:db8:1:1::1', '2001:db8:1:2::1', '2001:db8:1:3::1', '2001:db8:1:4::1'].map((ip) =>
        limits.openConnection(ip),
      ),
    ).toEqual([null, null, null, 'network']);
    limits.closeConnection('192.0.2.2');
    expect(limits.openConnection('192.0.2.9')).toBeNull();
  });

  it('keeps the last SMTP_RESERVED_CLIENTS for networks with no connection open', () => {
    const limits = new PerIpLimits(0, 0, Date.now, { maxPerNetwork: 0, maxClients: 10, reserved: 3 });
    for (let i = 1; i <= 7; i++) expect(limits.openConnection(`192.0.2.${i}`)).toBeNull();
    expect(limits.nearlyFull).toBe(true);
    expect(limits.openConnection('192.0.2.8')).toBe('reserved');
    expect(limits.openConnection('198.51.100.1')).toBeNull(); // a network not yet connected
    expect(limits.openConnection('198.51.100.2')).toBe('reserved');
    limits.closeConnection('192.0.2.1');
    limits.closeConnection('192.0.2.2');
    expect(limits.nearlyFull).toBe(false);
    expect(limits.openConnection('192.0.2.8')).toBeNull();
    expect(limits.total).toBe(7);
  });

  it('starts a new window each minute', () => {
    let now = 0;
    const limits = new PerIpLimits(0, 2, () => now);
    expect([1, 2, 3].map(() => limits.startTransaction('192.0.2.1'))).toEqual([true, true, false]);
    expect(limits.startTransaction('192.0.2.2')).toBe(true);
    now += 60_000;
    expect(limits.startTransaction('192.0.2.1')).toBe(true);
  });
});

describe('bufferLimits', () => {
  it('gives a client a quarter, a network half, and keeps the last quarter', () => {
    expect(bufferLimits(512 * 2 ** 20, 25 * 2 ** 20)).toEqual({
      total: 512 * 2 ** 20,
      client: 128 * 2 ** 20,
      network: 256 * 2 ** 20,
      reserved: 128 * 2 ** 20,
    });
  });

  it('never makes a share smaller than the largest message (a 451 on every retry)', () => {
    expect(bufferLimits(1000, 1000)).toEqual({ total: 1000, client: 1000, network: 1000, reserved: 250 });
    expect(bufferLimits(3000, 1000)).toMatchObject({ client: 1000, network: 1500 });
  });
});

describe('BufferedBytes', () => {
  // 1000 bytes in all: a client 250, a network 500, the last 250 for networks holding nothing
  const buffer = () => new BufferedBytes(bufferLimits(1000, 100));
  const fill = (claim: BufferClaim, bytes: number) => {
    for (let left = bytes; left > 0; left -= 50) {
      const verdict = claim.take(Math.min(50, left));
      if (verdict) {
        claim.release(); // as DATA does: nothing more of a refused message is kept
        return verdict;
      }
    }
    return null;
  };

  it('stops one address at its share, whatever number of messages it spreads its bytes over', () => {
    const b = buffer();
    const hog = Array.from({ length: 22 }, () => b.claim('192.0.2.1'));
    const verdicts = hog.map((c) => fill(c, 100));
    expect(verdicts.filter((v) => v === null)).toHaveLength(2);
    expect(verdicts[2]).toEqual({ refused: 'client', held: 250, limit: 250, key: '192.0.2.1' });
    expect(b.heldBy('192.0.2.1')).toEqual({ client: 200, network: 200 });
    expect(b.bytes).toBe(200);
    // another address of the same network, and another network, are still served
    expect(fill(b.claim('192.0.2.2'), 100)).toBeNull();
    expect(fill(b.claim('198.51.100.1'), 100)).toBeNull();
    expect(b.bytes).toBe(400);
  });

  it('counts an IPv6 /64 as one client however its addresses rotate, and a /48 as one network', () => {
    const b = buffer();
    const rotated = ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:ffff::3'].map((ip) => fill(b.claim(ip), 100));
    expect(rotated.map((v) => v?.refused ?? null)).toEqual([null, null, 'client']);
    const subnets = ['2001:db8:1:3::1', '2001:db8:1:4::1', '2001:db8:1:5::1', '2001:db8:1:6::1'].map((ip) =>
      fill(b.claim(ip), 100),
    );
    expect(subnets.map((v) => v?.refused ?? null)).toEqual([null, null, null, 'network']);
    expect(b.heldBy('2001:db8:1:9::1')).toEqual({ client: 0, network: 500 });
    expect(fill(b.claim('2001:db8:2::1'), 100)).toBeNull(); // another /48
  });

  it('stops many addresses of one /24 at the network share', () => {
    const b = buffer();
    const verdicts = Array.from({ length: 10 }, (_, i) => fill(b.claim(`192.0.2.${i + 1}`), 100));
    expect(verdicts.filter((v) => v === null)).toHaveLength(5);
    expect(verdicts.find((v) => v)).toMatchObject({ refused: 'network', held: 500, limit: 500, key: '192.0.2.0/24' });
    expect(fill(b.claim('192.0.3.1'), 100)).toBeNull();
  });

  it('keeps the last quarter for messages whose network held nothing when they began', () => {
    const b = buffer();
    for (const ip of ['192.0.2.1', '192.0.2.2', '192.0.2.3']) fill(b.claim(ip), 250);
    expect(b.bytes).toBe(500);
    const second = ['198.51.100.1', '198.51.100.2', '198.51.100.3'].map((ip) => fill(b.claim(ip), 100));
    // the first message of 198.51.100.0/24 may go on into the reserve; the next two stop at 750
    expect(second.map((v) => v?.refused ?? null)).toEqual([null, null, 'reserved']);
    expect(b.bytes).toBe(700);
    expect(second[2]).toMatchObject({ held: 750, limit: 750 });
    // a network holding nothing gets the reserve, up to the whole
    const fresh = ['203.0.113.1', '203.0.114.1', '203.0.115.1', '203.0.116.1'].map((ip) => fill(b.claim(ip), 100));
    expect(fresh.map((v) => v?.refused ?? null)).toEqual([null, null, null, 'full']);
    expect(fresh[3]).toMatchObject({ held: 1000, limit: 1000 });
    expect(b.bytes).toBe(1000);
  });

  it('decides the reserve at the first byte: many messages started at once do not all get it', () => {
    const b = buffer();
    for (const ip of ['192.0.2.1', '192.0.2.2', '192.0.2.3']) fill(b.claim(ip), 250);
    fill(b.claim('198.51.100.1'), 200);
    const [c1, c2] = [b.claim('203.0.113.1'), b.claim('203.0.113.2')]; // both opened before any byte came
    expect(c1.take(50)).toBeNull();
    expect(c2.take(50)).toMatchObject({ refused: 'reserved' });
    expect(c1.mayUseReserve).toBe(true);
    expect(c2.mayUseReserve).toBe(false);
    // an empty chunk decides nothing
    const c3 = b.claim('203.0.120.1');
    expect(c3.take(0)).toBeNull();
    expect(b.claim('203.0.120.2').take(50)).toBeNull();
    expect(c3.take(50)).toMatchObject({ refused: 'reserved' });
  });

  it('gives everything back on release, once; a refused chunk counts nothing', () => {
    const b = buffer();
    const claim = b.claim('192.0.2.1');
    expect(fill(claim, 200)).toBeNull();
    expect(claim.take(100)).toMatchObject({ refused: 'client', held: 200 });
    expect(claim.held).toBe(200);
    claim.release();
    claim.release();
    expect(b.bytes).toBe(0);
    expect(b.heldBy('192.0.2.1')).toEqual({ client: 0, network: 0 });
    expect(fill(b.claim('192.0.2.1'), 250)).toBeNull();
  });

  it('keeps the count the metrics gauge reads', () => {
    const gauge = { bytes: 0 };
    const b = new BufferedBytes(bufferLimits(1000, 100), gauge);
    const claim = b.claim('192.0.2.1');
    claim.take(70);
    expect(gauge.bytes).toBe(70);
    claim.release();
    expect(gauge.bytes).toBe(0);
  });
});
