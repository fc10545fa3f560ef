// Per-client limits: IPv4 per address, IPv6 per /64, a fixed one-minute window.
import { describe, expect, it } from 'vitest';
import { clientKey, networkKey, PerIpLimits } from '../../src/smtp/limits.js';

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
