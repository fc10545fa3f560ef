// What can be checked of the deployment files without a Docker daemon: they only use variables
// the code reads, and the image runs the same command a person does.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { VARIABLE_NAMES } from '../../src/config.js';
import { PROJECT_ROOT } from '../../src/paths.js';

const read = (f: string) => fs.readFileSync(path.join(PROJECT_ROOT, f), 'utf8');
const known = new Set<string>(VARIABLE_NAMES);

describe('deploy files', () => {
  it.each(['deploy/ticket-mx.env.example', 'deploy/compose.yaml', 'Dockerfile'])(
    '%s sets only known variables',
    (file) => {
      const text = read(file);
      const names = [...text.matchAll(/^\s*#?\s*([A-Z][A-Z0-9_]+)[=:]/gm)]
        .map((m) => m[1]!)
        .filter((n) => !n.startsWith('POSTGRES_') && n !== 'NODE_ENV' && n !== 'ENV');
      expect(names.length).toBeGreaterThan(1);
      expect(names.filter((n) => !known.has(n))).toEqual([]);
    },
  );

  it('Dockerfile runs bin/ticket-mx.js serve from an LTS image and copies the migrations and templates', () => {
    const text = read('Dockerfile');
    expect(text).toMatch(/^FROM node:(22|24)-/m);
    expect(text).toContain('ENTRYPOINT ["node", "bin/ticket-mx.js"]');
    expect(text).toContain('CMD ["serve"]');
    expect(text).toContain('COPY migrations ./migrations');
    expect(text).toContain('COPY templates ./templates');
    for (const f of ['bin/ticket-mx.js', 'migrations', 'templates/ru', 'templates/en', 'tsconfig.build.json'])
      expect(fs.existsSync(path.join(PROJECT_ROOT, f))).toBe(true);
  });

  it('the systemd unit can bind port 25 without root and stops gracefully', () => {
    const unit = read('deploy/ticket-mx.service');
    expect(unit).toContain('AmbientCapabilities=CAP_NET_BIND_SERVICE');
    expect(unit).toContain('ExecStart=/usr/bin/node /opt/ticket-mx/bin/ticket-mx.js serve');
    expect(unit).toMatch(/KillSignal=SIGTERM/);
  });
});
