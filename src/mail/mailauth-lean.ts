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

/**
 * An option of authenticate() of ours: mailauth's SPF result for this message's envelope, already
 * found (src/mail/auth-dns.ts runs SPF while the bytes arrive, on the answers the steps replay).
 * With it, authenticate() does not evaluate SPF a second time on the same answers (146 µs of CPU
 * an evaluation alone, on Node 24 here; authenticating an unsigned message took 363 µs in
 * npm run bench:steps). mailauth/lib/mailauth.js takes `spf` from lib/spf when it loads and calls
 * it with its copy of the options: lib/spf's export is wrapped here, before mailauth/lib/mailauth.js
 * loads, to answer with that result when the options carry one (test/unit/mailauth-lean.test.ts
 * fails when the pinned code moves). The upstreamable change this stands for: an `spfResult`
 * option of authenticate().
 */
export const EARLY_SPF = Symbol('ticket-mx early SPF result');

const spfModule = require('mailauth/lib/spf/index.js') as {
  spf: (opts: { [EARLY_SPF]?: unknown }) => Promise<unknown>;
};
const evaluateSpf = spfModule.spf;
spfModule.spf = (opts) => (opts[EARLY_SPF] ? Promise.resolve(opts[EARLY_SPF]) : evaluateSpf(opts));

export const mailauth = require('mailauth') as typeof import('mailauth');
