// The README is the front door: its tables of variables and replies are kept equal to the code,
// and every log code the code can write is documented.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROBLEMS, problemType } from '../../src/api/problems.js';
import { SETTINGS, settingsMarkdown, VARIABLE_NAMES } from '../../src/config.js';
import { PROJECT_ROOT } from '../../src/paths.js';
import { CATALOGUE } from '../../src/smtp/reply.js';

const readme = fs.readFileSync(path.join(PROJECT_ROOT, 'README.md'), 'utf8');

function section(title: string): string {
  // at the start of a line: "## HTTP API" is not the "### HTTP API" of the configuration tables
  const start = readme.indexOf(`\n## ${title}\n`) + 1;
  expect(start, `README has a "## ${title}" section`).toBeGreaterThan(0);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

function tableRows(text: string): string[][] {
  return text
    .split('\n')
    .filter((l) => /^\| `/.test(l))
    .map((l) =>
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    );
}

describe('README', () => {
  it('documents exactly the settings the code reads, with their real defaults (npm run docs)', () => {
    const begin = readme.indexOf('<!-- settings:begin');
    const end = readme.indexOf('<!-- settings:end -->');
    expect(begin, 'README has the settings markers').toBeGreaterThan(0);
    const documented = readme.slice(readme.indexOf('\n', begin) + 1, end).trim();
    expect(documented, 'README configuration tables differ from src/config.ts: run npm run docs').toBe(
      settingsMarkdown(),
    );
    expect(section('Configuration')).toContain(documented);
  });

  it('prints every default as a value the variable takes: given back, it parses to the default itself', () => {
    const begin = readme.indexOf('<!-- settings:begin');
    const rows = tableRows(readme.slice(begin, readme.indexOf('<!-- settings:end -->')));
    expect(rows.map((r) => r[0])).toEqual(VARIABLE_NAMES.map((n) => `\`${n}\``));
    let checked = 0;
    for (const [cell, local, production] of rows) {
      const name = cell!.replace(/`/g, '') as keyof typeof SETTINGS;
      const s = SETTINGS[name];
      for (const [shown, d] of [
        [local!, s.local],
        [production!, s.production],
      ] as const) {
        const plain = d !== null && !(typeof d === 'object' && !Array.isArray(d));
        // a value is printed in code; prose ("required", "(none)", "the host name") only for what has none
        if (!plain || (Array.isArray(d) && !d.length)) {
          expect(shown, `${name}: ${shown}`).not.toMatch(/^`/);
          continue;
        }
        expect(shown, `${name}: a default value is printed in code`).toMatch(/^`[^`]+`$/);
        const parsed = s.parse.safeParse(shown.slice(1, -1));
        expect(parsed.success ? parsed.data : parsed.error.issues[0]?.message, `${name}=${shown}`).toEqual(d);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(100);
  });

  it('documents exactly the replies of src/smtp/reply.ts', () => {
    const rows = tableRows(section('What it answers'));
    // markdown aside (backticks, links), the README says what the catalogue says
    const plain = (cell: string) => cell.replace(/`/g, '').replace(/\[([^\]]+)\]\([^)]+\)/g, '$1');
    const documented = Object.fromEntries(rows.map((r) => [plain(r[0]!), `${plain(r[1]!)} | ${plain(r[2]!)}`]));
    const expected = Object.fromEntries(
      Object.entries(CATALOGUE).map(([code, e]) => [
        code,
        `${e.code ? `${e.code} ${e.enhanced}`.trim() : '(none)'} | ${e.when}`,
      ]),
    );
    expect(documented).toEqual(expected);
  });

  it('documents exactly the problems of src/api/problems.ts, with their status and type', () => {
    const rows = tableRows(section('HTTP API').slice(section('HTTP API').indexOf('### Problems')));
    const plain = (cell: string) => cell.replace(/`/g, '');
    const documented = Object.fromEntries(rows.map((r) => [plain(r[0]!), [plain(r[1]!), plain(r[2]!), r[3]]]));
    const expected = Object.fromEntries(
      Object.entries(PROBLEMS).map(([code, p]) => [code, [String(p.status), problemType(code as never), p.when]]),
    );
    expect(documented).toEqual(expected);
  });

  it('mentions every log code the source can write', () => {
    const codes = new Set<string>();
    const walk = (dir: string) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(file);
        else if (file.endsWith('.ts'))
          for (const m of fs.readFileSync(file, 'utf8').matchAll(/code: '([A-Z][A-Z0-9_]+)'/g)) codes.add(m[1]!);
      }
    };
    walk(path.join(PROJECT_ROOT, 'src'));
    expect(codes.size).toBeGreaterThan(5);
    const missing = [...codes].filter((c) => !readme.includes(`\`${c}\``));
    expect(missing).toEqual([]);
  });

  it('shows the two commands of the front door', () => {
    expect(readme).toContain('npm ci && npm start');
    expect(readme).toContain('npm test');
  });
});
