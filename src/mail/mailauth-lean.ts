// mailauth without its BIMI half. mailauth/lib/mailauth.js (pinned exactly in package.json) requires its BIMI
// module at load even when every caller passes `disableBimi`, as authenticate.ts does, and that
// module brings undici, @postalsys/vmc (X.509 and ASN.1) and fast-xml-parser: 9.5 MB of the 17.5 MB
// of heap that loading mailauth costs (Node 24, heapUsed after require), in the main thread and
// again in every pipeline worker. Here the two BIMI modules are put into the require cache as stubs
// before mailauth/lib/mailauth.js loads, so they are never read; the stubs throw if anything calls them, which
// with `disableBimi` nothing does. What this relies on (it requiring './bimi' and
// './bimi/validate-svg' by those names, and calling bimi() only without disableBimi) is checked by
// test/unit/mailauth-lean.test.ts, which fails when the pinned code moves.
//
// The upstreamable change this stands for: mailauth/lib/mailauth.js requiring its BIMI module lazily, inside
// the `if (!opts.disableBimi)` branch and in validateVMC/validateSvg.
import { createRequire } from 'node:module';
import './mailauth-scan.js';

const require = createRequire(import.meta.url);

/** The BIMI modules mailauth/lib/mailauth.js requires, as resolved from it. */
export const BIMI_MODULES = ['mailauth/lib/bimi/index.js', 'mailauth/lib/bimi/validate-svg.js'].map((id) =>
  require.resolve(id),
);

const notLoaded = (name: string) => () => {
  throw new Error(`mailauth's ${name} is not loaded in ticket-mx (BIMI is off: src/mail/mailauth-lean.ts)`);
};

for (const file of BIMI_MODULES) {
  if (require.cache[file]) continue; // loaded already (a test, a CLI that wants BIMI): keep the real one
  const stub = new (require('node:module') as typeof import('node:module')).Module(file);
  stub.filename = file;
  stub.loaded = true;
  stub.exports = {
    bimi: notLoaded('bimi()'),
    validateVMC: notLoaded('validateVMC()'),
    validateSvg: notLoaded('validateSvg()'),
  };
  require.cache[file] = stub;
}

export const mailauth = require('mailauth') as typeof import('mailauth');
