// Where the project's own files are, whether running from src/ (tests) or dist/src/ (built).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'migrations'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`cannot find the ticket-mx root above ${from}`);
  }
}

export const PROJECT_ROOT = findRoot(path.dirname(fileURLToPath(import.meta.url)));
export const MIGRATIONS_DIR = path.join(PROJECT_ROOT, 'migrations');
/** The built-in notification templates (TEMPLATES_DIR overrides them file by file). */
export const TEMPLATES_DIR = path.join(PROJECT_ROOT, 'templates');
