// mailauth loaded without its BIMI modules (src/mail/mailauth-lean.ts): what the stubs rely on is
// still so in the pinned mailauth (this fails when its code moves), the service and the pipeline
// worker load no BIMI code, and authentication works through the stubbed mailauth.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { authenticate } from '../../src/mail/authenticate.js';
import { BIMI_MODULES } from '../../src/mail/mailauth-lean.js';
import { PROJECT_ROOT } from '../../src/paths.js';
import { unsignedFromExample } from '../helpers/mail-auth.js';

const require = createRequire(import.meta.url);
const mailauthJs = readFileSync(require.resolve('mailauth/lib/mailauth.js'), 'utf8');

describe('mailauth without BIMI', () => {
  it('the pinned mailauth.js requires its BIMI modules by the names stubbed, and calls bimi() only without disableBimi', () => {
    expect(mailauthJs).toContain("require('./bimi')");
    expect(mailauthJs).toContain("require('./bimi/validate-svg')");
    expect(mailauthJs).toMatch(/if \(!opts\.disableBimi\) \{\s*bimiResult = await bimi\(/);
    // bimi is called nowhere else in it
    expect(mailauthJs.match(/\bbimi\(/g)).toHaveLength(1);
    expect(BIMI_MODULES.map((f) => path.relative(path.dirname(require.resolve('mailauth')), f))).toEqual([
      path.join('bimi', 'index.js'),
      path.join('bimi', 'validate-svg.js'),
    ]);
  });

  it("the pinned mailauth.js takes spf() from lib/spf when it loads and calls it with its options' copy (EARLY_SPF)", () => {
    expect(mailauthJs).toContain("const { spf } = require('./spf');");
    expect(mailauthJs).toMatch(/opts = Object\.assign\(\{\}, opts\);/);
    expect(mailauthJs).toContain('const spfResult = await spf(opts);');
    expect(mailauthJs.match(/\bspf\(/g)).toHaveLength(1);
  });

  it('authenticate() answers with the SPF result it is given, and asks SPF nothing', async () => {
    const asked: string[] = [];
    const resolver = async (name: string, type: string) => {
      asked.push(`${type} ${name}`);
      throw Object.assign(new Error(`query ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    };
    const input = unsignedFromExample(resolver);
    const early = {
      domain: 'example.ru',
      status: { result: 'softfail', comment: 'found while the bytes came' },
      header: 'Received-SPF: softfail (found while the bytes came)',
      info: 'spf=softfail (found while the bytes came) smtp.mailfrom=ivan@example.ru',
    };
    const result = await authenticate({ ...input, spf: early });
    expect(result.spf).toMatchObject({
      result: 'softfail',
      comment: 'found while the bytes came',
      domain: 'example.ru',
    });
    expect(result.headers).toContain('spf=softfail (found while the bytes came)');
    expect(asked).not.toContain('TXT example.ru');
    // without it, SPF asks for the domain's record
    asked.length = 0;
    expect((await authenticate(input)).spf.result).toBe('none');
    expect(asked).toContain('TXT example.ru');
  });

  it.each([
    ['the service', 'dist/src/service.js'],
    ['the pipeline worker', 'dist/src/pipeline/worker.js'],
  ])('%s loads mailauth but none of its BIMI code', (_, module) => {
    const script = `
      await import(${JSON.stringify(path.join(PROJECT_ROOT, module))});
      const { createRequire } = await import('node:module');
      const cache = Object.keys(createRequire(import.meta.url).cache);
      console.log(JSON.stringify({
        mailauth: cache.some((f) => f.endsWith('/mailauth/lib/mailauth.js')),
        vmc: cache.filter((f) => f.includes('/@postalsys/vmc/')).length,
        xml: cache.filter((f) => f.includes('/fast-xml-parser/')).length,
        bimi: cache.filter((f) => f.includes('/mailauth/lib/bimi/')).length,
      }));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    const loaded = JSON.parse(out.trim().split('\n').at(-1)!);
    // the stubs are in the cache under the BIMI file names, but their code was never read
    expect(loaded).toEqual({ mailauth: true, vmc: 0, xml: 0, bimi: 2 });
  });

  it('authenticates through the stubbed mailauth, and the stubs say what they are if called', async () => {
    const resolver = async (name: string) => {
      throw Object.assign(new Error(`queryTxt ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    };
    const result = await authenticate(unsignedFromExample(resolver));
    expect(result.spf.result).toBe('none');
    expect(result.dmarc.result).toBe('none');
    const stub = require.cache[BIMI_MODULES[0]!];
    expect(() => stub?.exports.bimi()).toThrow(/BIMI is off/);
  });
});
