// A real DNS server on loopback for tests (UDP and TCP on one free port, built on dns2), so
// that authentication goes through the same `DNS_SERVERS` path as production. It answers
// from fixture zones, NXDOMAIN for unknown names, and stays silent for names told to.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { createTCPServer, createUDPServer, Packet } from 'dns2';

/** name → record type → values. TXT: one string per record (split into 255-byte chunks here);
 *  MX: `"10 mx.example.ru"`; A/AAAA: addresses; CNAME/PTR: a name. */
export type DnsRecords = Record<string, Record<string, string[]>>;

export interface DnsZones {
  records: DnsRecords;
  /** Names (and everything under them) that are never answered, so lookups time out. */
  unresponsive?: string[];
}

export interface TestDnsServer {
  /** `127.0.0.1:PORT`, ready for `createResolver({ servers: [address] })`. */
  address: string;
  port: number;
  /** Replaces the values of one record type of one name (e.g. a DKIM key made at test time). */
  setRecords(name: string, type: string, values: string[]): void;
  /**
   * Answers for `name` and names under it `ms` after a lookup's first try (its later tries with
   * it); `Infinity` never answers; 0 removes.
   */
  setDelay(name: string, ms: number): void;
  /** Questions received so far, as `TYPE name`: each try of a lookup. */
  readonly queries: string[];
  /**
   * Lookups so far, as `TYPE name`: the tries of one lookup, which c-ares sends with the same DNS
   * id (and retries sooner than DNS_TIMEOUT_MS once it has seen fast answers), counted once.
   */
  readonly lookups: string[];
  close(): Promise<void>;
}

/** Reads a zone fixture such as `fixtures/dns/zones.json`. Every call returns a fresh copy. */
export const loadZones = (file: string | URL): DnsZones => JSON.parse(readFileSync(file, 'utf8')) as DnsZones;

type Resource = Packet['answers'][number];

/**
 * Makes a test-only RSA key pair and publishes its public half as the DKIM/ARC key record
 * `<selector>._domainkey.<domain>`. Returns the private key (PEM) for dkimSign / sealMessage;
 * no private key is ever committed.
 */
export const publishDkimKey = (
  server: TestDnsServer,
  domain: string,
  selector: string,
  modulusLength = 2048,
): string => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength });
  const p = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  server.setRecords(`${selector}._domainkey.${domain}`, 'TXT', [`v=DKIM1; k=rsa; p=${p}`]);
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
};

const normalize = (name: string): string => name.toLowerCase().replace(/\.+$/, '');

const TYPE_NAMES = new Map<number, string>(Object.entries(Packet.TYPE).map(([key, value]) => [value as number, key]));

// RFC 1035 3.3.14: a TXT record is one or more character-strings of at most 255 bytes
const chunkTxt = (value: string): Buffer[] => {
  const bytes = Buffer.from(value, 'utf8');
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 255) chunks.push(bytes.subarray(i, i + 255));
  return chunks.length ? chunks : [Buffer.alloc(0)];
};

const toResource = (name: string, type: string, value: string): Record<string, unknown> => {
  const base = { name, type: Packet.TYPE[type as keyof typeof Packet.TYPE], class: Packet.CLASS.IN, ttl: 60 };
  switch (type) {
    case 'A':
    case 'AAAA':
      return { ...base, address: value };
    case 'MX': {
      const [priority, exchange] = value.split(/\s+/);
      return { ...base, priority: Number(priority), exchange };
    }
    case 'CNAME':
    case 'PTR':
      return { ...base, domain: value };
    case 'TXT':
      return { ...base, data: chunkTxt(value) };
    default:
      throw new Error(`dns-server: record type ${type} is not supported`);
  }
};

export const startDnsServer = async (zones: DnsZones): Promise<TestDnsServer> => {
  const records = new Map<string, Map<string, string[]>>();
  const setRecords = (name: string, type: string, values: string[]): void => {
    const key = normalize(name);
    const byType = records.get(key) ?? new Map<string, string[]>();
    byType.set(type.toUpperCase(), values);
    records.set(key, byType);
  };
  for (const [name, types] of Object.entries(zones.records)) {
    for (const [type, values] of Object.entries(types)) setRecords(name, type, values);
  }

  const delays = new Map<string, number>();
  for (const name of zones.unresponsive ?? []) delays.set(normalize(name), Infinity);
  const delayFor = (name: string): number => {
    for (let suffix = name; suffix; suffix = suffix.slice(suffix.indexOf('.') + 1 || suffix.length)) {
      const delay = delays.get(suffix);
      if (delay !== undefined) return delay;
    }
    return 0;
  };

  const queries: string[] = [];
  const lookups: string[] = [];
  /** When the first try of each lookup (DNS id and question) came. */
  const firstTry = new Map<string, number>();
  const timers = new Set<NodeJS.Timeout>();

  const answer = (request: Packet): Packet => {
    const response = Packet.createResponseFromRequest(request);
    response.header.aa = 1;
    const [question] = request.questions;
    if (!question) {
      response.header.rcode = 1; // FORMERR
      return response;
    }
    const type = TYPE_NAMES.get(question.type) ?? String(question.type);
    let name = normalize(question.name);
    // follow CNAMEs inside the zones, as a recursive resolver would
    for (let hops = 0; hops < 8; hops++) {
      const byType = records.get(name);
      if (!byType) {
        if (hops === 0) response.header.rcode = 3; // NXDOMAIN
        return response;
      }
      const cname = byType.get('CNAME')?.[0];
      if (cname && type !== 'CNAME') {
        response.answers.push(toResource(name, 'CNAME', cname) as unknown as Resource);
        name = normalize(cname);
        continue;
      }
      for (const value of byType.get(type) ?? []) {
        response.answers.push(toResource(name, type, value) as unknown as Resource);
      }
      return response; // no values: NOERROR with no answers (NODATA)
    }
    return response;
  };

  const handle = (request: Packet, send: (response: Packet) => Promise<Buffer>): void => {
    const [question] = request.questions;
    const name = normalize(question?.name ?? '');
    const asked = `${TYPE_NAMES.get(question?.type ?? 0) ?? question?.type} ${name}`;
    queries.push(asked);
    const lookup = `${request.header.id} ${asked}`;
    if (!firstTry.has(lookup)) {
      firstTry.set(lookup, performance.now());
      lookups.push(asked);
    }
    const respond = (): void => {
      send(answer(request)).catch(() => undefined);
    };
    const delay = delayFor(name);
    if (delay === Infinity) return; // silence: the client times out
    if (delay <= 0) {
      respond();
      return;
    }
    // every try of a lookup is answered when the first try's delay is over, as a recursive resolver
    // answers the retries of a question it is still resolving when it has the answer
    const timer = setTimeout(
      () => {
        timers.delete(timer);
        respond();
      },
      Math.max(0, firstTry.get(lookup)! + delay - performance.now()),
    );
    timers.add(timer);
  };

  const tcp = createTCPServer();
  tcp.on('request', handle as never);
  tcp.on('requestError', () => undefined);
  const sockets = new Set<Socket>();
  tcp.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  // UDP picks a free port; TCP (for truncated answers) must share it, so retry on a clash.
  let port = 0;
  let udp: ReturnType<typeof createUDPServer>;
  for (let attempt = 0; ; attempt++) {
    udp = createUDPServer({ type: 'udp4' });
    udp.on('request', handle as never);
    udp.on('requestError', () => undefined);
    await udp.listen(0, '127.0.0.1');
    port = udp.address().port;
    const listening = await new Promise<boolean>((resolve) => {
      const onError = (): void => resolve(false);
      tcp.once('error', onError);
      tcp.listen(port, '127.0.0.1', () => {
        tcp.off('error', onError);
        resolve(true);
      });
    });
    if (listening) break;
    const clashed = udp;
    await new Promise<void>((resolve) => clashed.close(() => resolve()));
    if (attempt >= 5) throw new Error('dns-server: no port free for both UDP and TCP');
  }

  return {
    address: `127.0.0.1:${port}`,
    port,
    setRecords,
    setDelay: (name, ms) => {
      if (ms > 0) delays.set(normalize(name), ms);
      else delays.delete(normalize(name));
    },
    queries,
    lookups,
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const socket of sockets) socket.destroy();
      await Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        new Promise<void>((resolve) => tcp.close(() => resolve())),
      ]);
    },
  };
};
