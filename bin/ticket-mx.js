#!/usr/bin/env node
// The `ticket-mx` command: runs the compiled CLI (npm start and npm test build it first).
import { existsSync } from 'node:fs';
import module from 'node:module';

// V8's compiled code of our modules and their dependencies kept on disk (Node 22.1+; in the system's
// temporary directory): a command starts in less time after its first run
module.enableCompileCache?.();

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
