// Per-client limits: IPv4 per address, IPv6 per /64, a fixed one-minute window.
import { describe, expect, it } from 'vitest';
import { clientKey, PerIpLimits } from '../../src/smtp/limits.js';

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

describe('PerIpLimits', () => {
  it('counts the addresses of one IPv6 /64 together', () => {
    const limits = new PerIpLimits(2, 0);
    expect(limits.openConnection('2001:db8:1:2::1')).toBe(true);
    expect(limits.openConnection('2001:db8:1:2::2')).toBe(true);
    expect(limits.openConnection('2001:db8:1:2::3')).toBe(false);
    expect(limits.openConnection('2001:db8:1:3::1')).toBe(true);
    limits.closeConnection('2001:db8:1:2::1');
    expect(limits.openConnection('2001:db8:1:2::3')).toBe(true);
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
