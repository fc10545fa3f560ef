// Signing and sealing test mail the way real senders do: DKIM with mailauth's signer and keys
// published in the loopback DNS server, ARC seals added by a simulated forwarder.
import { dkimSign, authenticate as mailauthAuthenticate, sealMessage } from 'mailauth';
import { createResolver, type Resolver } from '../../src/mail/dns.js';
import type { TestDnsServer } from './dns-server.js';
import { buildMessage } from './smtp-client.js';

export async function dkimSigned(
  message: Buffer | string,
  signingDomain: string,
  selector: string,
  privateKey: string,
  /** `headerList`: the fields to sign (mailauth's default list otherwise); `maxBodyLength`: an l= tag. */
  extra: { headerList?: string; maxBodyLength?: number } = {},
): Promise<Buffer> {
  const bytes = Buffer.isBuffer(message) ? message : Buffer.from(message);
  // mailauth's typings want the fields at the top; it signs what is in signatureData
  const options = { signatureData: [{ signingDomain, selector, privateKey, ...extra }] } as unknown as Parameters<
    typeof dkimSign
  >[1];
  const { signatures } = await dkimSign(bytes, options);
  if (!/^DKIM-Signature: /.test(signatures)) throw new Error(`dkimSign did not sign: ${signatures}`);
  return Buffer.concat([Buffer.from(signatures), bytes]);
}

/**
 * A forwarding service (a mailing list): it authenticates the message as received from the
 * original sender's server, appends a footer (which breaks the original DKIM body hash), and
 * seals the result with ARC as `sealer`.
 */
export async function arcForwarded(
  message: Buffer,
  original: { ip: string; helo: string; mailFrom: string },
  sealer: { domain: string; selector: string; privateKey: string },
  dns: TestDnsServer,
): Promise<Buffer> {
  const resolver = createResolver({ servers: [dns.address], timeoutMs: 500 });
  const seen = await mailauthAuthenticate(message, {
    ...original,
    sender: original.mailFrom,
    mta: `mx.${sealer.domain}`,
    resolver,
    disableBimi: true,
  });
  const modified = Buffer.concat([message, Buffer.from('\r\n-- \r\nYou are subscribed to the helpdesk list\r\n')]);
  const seal = await sealMessage(modified, {
    signingDomain: sealer.domain,
    selector: sealer.selector,
    privateKey: sealer.privateKey,
    authResults: seen.arc ? (seen.arc.authResults ?? '') : '',
    cv: seen.arc ? seen.arc.status.result : 'none',
  });
  return Buffer.concat([seal, modified]);
}

/** An unsigned message from ivan@example.ru from 192.0.2.1, as authenticate() takes it. */
export const unsignedFromExample = (resolver: Resolver) => ({
  message: Buffer.from(buildMessage({ from: 'ivan@example.ru', to: 'support+TKT-1@flamecrm.ru' })),
  ip: '192.0.2.1',
  helo: 'mail.example.ru',
  mailFrom: 'ivan@example.ru',
  mta: 'mx.flamecrm.ru',
  resolver,
});
