// A real ticket-mx (SMTP + HTTP + pool + outbox sender) on free ports against a test database, with
// its log lines captured so tests can assert the stable codes. DATA_DIR is a temporary directory of
// its own (the .eml files of notifications land there unless OUTBOUND_SMTP_URL is given).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { type Config, loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { type Service, startService } from '../../src/service.js';
import { loadZones, startDnsServer, type TestDnsServer } from './dns-server.js';

export const SMTP_ZONES = new URL('../../fixtures/dns/smtp-zones.json', import.meta.url);

export interface TestServer {
  port: number;
  httpPort: number;
  config: Readonly<Config>;
  service: Service;
  dataDir: string;
  /** The loopback DNS server DNS_SERVERS points at (fixtures/dns/smtp-zones.json). */
  dns: TestDnsServer;
  logs: Record<string, unknown>[];
  logsWithCode(code: string): Record<string, unknown>[];
  close(): Promise<void>;
}

export async function startTestServer(
  databaseUrl: string,
  env: Record<string, string> = {},
  dns?: TestDnsServer,
): Promise<TestServer> {
  const ownDns = dns ? null : await startDnsServer(loadZones(SMTP_ZONES));
  const dnsServer = (dns ?? ownDns)!;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ticket-mx-server-'));
  const config = loadConfig({
    DATA_DIR: dataDir,
    DNS_SERVERS: dnsServer.address,
    DNS_TIMEOUT_MS: '300',
    DATABASE_URL: databaseUrl,
    SMTP_HOST: '127.0.0.1',
    SMTP_PORT: '0',
    HTTP_PORT: '0',
    SMTP_HOSTNAME: 'mx.test.flamecrm.ru',
    MAIL_DOMAINS: 'flamecrm.ru,support.flamecrm.ru',
    AUTH_POLICY: 'monitor',
    DATABASE_POOL_SIZE: '5',
    LOG_LEVEL: 'debug',
    ...env,
  });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n'))
        if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const log = createLogger(config.logLevel, sink);
  const service = await startService(config, log, { url: databaseUrl, embedded: null });
  return {
    port: service.smtp.port,
    httpPort: service.http.port,
    config,
    service,
    dataDir,
    dns: dnsServer,
    logs,
    logsWithCode: (code) => logs.filter((l) => l.code === code),
    close: async () => {
      await service.close();
      await ownDns?.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
