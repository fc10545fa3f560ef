#!/usr/bin/env node
// The `ticket-mx` command: runs the compiled CLI (npm start and npm test build it first).
import { existsSync } from 'node:fs';
import module from 'node:module';
import { fileURLToPath } from 'node:url';

// V8's compiled code of our modules and their dependencies kept on disk (Node 22.1+), beside the
// build and owned by whoever built it, not in a temporary directory other users share: a command
// starts in less time after its first run. Where it cannot be written (an image's read-only build),
// nothing is kept and nothing fails. NODE_COMPILE_CACHE, when set, is Node's own and wins.
module.enableCompileCache?.(fileURLToPath(new URL('../dist/.compile-cache', import.meta.url)));

const cli = new URL('../dist/src/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('ticket-mx: not built yet; run `npm run build` (npm start and npm test do it for you)\n');
  process.exit(1);
}
const { main } = await import(cli.href);
const code = await main(process.argv.slice(2));
// serve ends when it has closed everything; other commands end when their answer is printed
process.exitCode = code;
// Everything is closed by now, so nothing should keep the process alive. If something does (a
// bug), say so and exit anyway: a process that looks alive but serves nothing misleads systemd.
setTimeout(() => {
  process.stderr.write(`ticket-mx: still running 10 s after finishing (exit code ${code}); exiting\n`);
  process.exit(code);
}, 10_000).unref();
