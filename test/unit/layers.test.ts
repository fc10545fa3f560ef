// Habits the code keeps, checked: arrows point down (mail/ never imports smtp/, db/ never imports
// mail/ or smtp/), and a comment that names a file names one that exists.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type AuthReply, authReplies } from '../../src/mail/auth-replies.js';
import { PROJECT_ROOT } from '../../src/paths.js';
import { CATALOGUE } from '../../src/smtp/reply.js';

const files = (dir: string, ext = /\.(ts|mjs|js|sql|sh)$/): string[] =>
  fs.existsSync(path.join(PROJECT_ROOT, dir))
    ? fs
        .readdirSync(path.join(PROJECT_ROOT, dir), { withFileTypes: true, recursive: true })
        .filter((e) => e.isFile() && ext.test(e.name))
        .map((e) => path.relative(PROJECT_ROOT, path.join(e.parentPath, e.name)))
    : [];
const read = (f: string) => fs.readFileSync(path.join(PROJECT_ROOT, f), 'utf8');
const importsOf = (f: string) => [...read(f).matchAll(/^(?:import|export)[^'"]*from '([^']+)'/gm)].map((m) => m[1]!);

describe('layers', () => {
  it.each([
    ['src/mail', ['../smtp/', '../cli', '../service', '../http']],
    ['src/db', ['../mail/', '../smtp/', '../cli', '../service', '../http']],
    // the HTTP side stands beside the SMTP layer, not on it
    ['src/api', ['../smtp/', '../cli', '../service']],
  ])('%s imports nothing from the layers above it', (dir, above) => {
    const upward = files(dir).flatMap((f) =>
      importsOf(f)
        .filter((i) => above.some((a) => i.startsWith(a)))
        .map((i) => `${f} → ${i}`),
    );
    expect(upward).toEqual([]);
  });

  it('src/http.ts imports nothing from the SMTP layer', () => {
    expect(importsOf('src/http.ts').filter((i) => i.startsWith('./smtp/'))).toEqual([]);
  });

  it('every authorization refusal is in the family its catalogue entry announces', () => {
    const { dnsTemporary, ...permanent } = authReplies;
    const sample = [
      ...Object.values(permanent).map((make) => (make as (...a: unknown[]) => AuthReply)('a@b.ru', 'reject')),
      ...(['4.7.24', '4.7.5', '4.7.0'] as const).map(dnsTemporary),
    ];
    for (const r of sample) {
      const entry = r.code === 550 ? CATALOGUE.DATA_AUTH_REJECTED : CATALOGUE.DATA_AUTH_TEMPFAIL;
      expect(r.enhanced.startsWith(entry.enhanced.replace(/x$/, ''))).toBe(true);
    }
  });
});

describe('comments', () => {
  const sources = ['src', 'test', 'bench', 'scripts', 'bin', 'migrations', '.ci', 'deploy']
    .flatMap((d) => files(d, /\.(ts|mjs|js|sql|yaml|service|example)$|^run$/))
    .concat(['Dockerfile', 'vitest.config.ts'].filter((f) => fs.existsSync(path.join(PROJECT_ROOT, f))));
  const all = new Set(
    ['src', 'test', 'bench', 'scripts', 'bin', 'migrations', 'fixtures', 'deploy', '.ci'].flatMap((d) => files(d, /./)),
  );
  const dependencies = Object.keys({
    ...JSON.parse(read('package.json')).dependencies,
    ...JSON.parse(read('package.json')).devDependencies,
  });

  /** Comment text only: // and # lines, the inside of block comments, -- in SQL. */
  const comments = (file: string) =>
    read(file)
      .split('\n')
      .map((line, i) => ({ line: i + 1, text: /^\s*(\/\/|\*|\/\*\*?|#|--)\s?(.*)$/.exec(line)?.[2] ?? '' }))
      .filter((c) => c.text);

  const FILE = /(?<![\w/.:-])((?:[\w.@-]+\/)*[\w.-]+\.(?:ts|js|mjs|json|sql|md|yaml|service))\b/g;

  function exists(token: string, from: string): boolean {
    if (token.startsWith('dist/') || token.startsWith('node_modules/')) return true; // built or installed
    if (dependencies.some((d) => token.startsWith(`${d}/`))) return true; // a dependency's own file
    const candidates = [token, path.join(path.dirname(from), token)];
    if (candidates.some((c) => fs.existsSync(path.join(PROJECT_ROOT, c)))) return true;
    return !token.includes('/') && [...all].some((f) => f.endsWith(`/${token}`));
  }

  it('name files that exist', () => {
    const stale = sources.flatMap((file) =>
      comments(file).flatMap(({ line, text }) =>
        [...text.matchAll(FILE)].filter((m) => !exists(m[1]!, file)).map((m) => `${file}:${line}: ${m[1]}`),
      ),
    );
    expect(sources.length).toBeGreaterThan(50);
    expect(stale).toEqual([]);
  });
});
