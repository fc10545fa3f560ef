// `npm run docs`: rewrites the README's configuration tables from the settings list in
// src/config.ts (built to dist/). test/unit/docs.test.ts fails while they differ.
import fs from 'node:fs';
import { settingsMarkdown } from '../dist/src/config.js';

const BEGIN = '<!-- settings:begin (npm run docs writes this part from src/config.ts) -->';
const END = '<!-- settings:end -->';
const file = new URL('../README.md', import.meta.url);
const readme = fs.readFileSync(file, 'utf8');
const start = readme.indexOf(BEGIN);
const end = readme.indexOf(END);
if (start < 0 || end < start) throw new Error(`README.md lacks the ${BEGIN} … ${END} markers`);
fs.writeFileSync(file, `${readme.slice(0, start + BEGIN.length)}\n${settingsMarkdown()}\n${readme.slice(end)}`);
console.log('README.md: configuration tables rewritten');
