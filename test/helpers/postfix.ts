// A private Postfix instance on loopback: its own config_directory, queue_directory and log under
// a temporary directory, a free high port. The upstream MTA of the fault suite (mail for our
// domains relayed to ticket-mx by transport_maps, every other destination refused with error:,
// retries every second or two), or, with `hold`, the bench's reference (npm run bench --
// --vs-postfix): every message accepted is queued durably (Postfix's cleanup fsyncs the queue file
// before smtpd answers 250) and held there, nothing delivered. The system's Postfix is never
// touched or started.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from '../../src/db/embedded.js';

export interface PrivatePostfix {
  /** Where it accepts mail (smtpd on 127.0.0.1). */
  port: number;
  dir: string;
  /** Messages still queued (active, incoming, deferred, hold): `postqueue -j`. */
  queued(): { queue_id: string; queue_name: string; recipients: { address: string; delay_reason?: string }[] }[];
  /** The whole mail log so far. */
  log(): string;
  /** Asks the queue manager to try every queued message now (postqueue -f). */
  flush(): void;
  /** Deletes every queued message (postsuper -d ALL). */
  clear(): void;
  /** Messages in the hold queue (its files). */
  held(): number;
  /** The master process (its children's CPU is counted in its own once they exit). */
  masterPid(): number;
  stop(): Promise<void>;
}

export function postfixInstalled(): boolean {
  try {
    execFileSync('postconf', ['-d', 'mail_version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function startPostfix(opts: {
  dir: string;
  domains: string[];
  /** ticket-mx's port: mail for `domains` goes there. */
  relayTo?: number;
  /** Queue and hold every message instead (the bench): nothing is delivered anywhere. */
  hold?: boolean;
}): Promise<PrivatePostfix> {
  const dir = opts.dir;
  const etc = path.join(dir, 'etc');
  const spool = path.join(dir, 'spool');
  const data = path.join(dir, 'data');
  const maillog = path.join(dir, 'maillog');
  fs.mkdirSync(etc, { recursive: true });
  fs.mkdirSync(spool, { recursive: true });
  fs.mkdirSync(data, { recursive: true });
  execFileSync('chown', ['postfix', data]);
  const port = await freePort();
  const transports = opts.relayTo
    ? opts.domains.map((d) => `${d}=smtp:[127.0.0.1]:${opts.relayTo}`).join(' ')
    : opts.domains.map((d) => `${d}=discard:held`).join(' ');
  // HOLD (access(5)) puts the message in the hold queue once it is safely in the queue: smtpd
  // still answers 250 only after cleanup has fsynced the queue file, as for any message
  const restrictions = opts.hold
    ? 'check_client_access static:HOLD, permit_mynetworks, reject_unauth_destination'
    : 'permit_mynetworks, reject_unauth_destination';
  fs.writeFileSync(
    path.join(etc, 'main.cf'),
    `compatibility_level = 3.6
queue_directory = ${spool}
data_directory = ${data}
mail_owner = postfix
setgid_group = postdrop
myhostname = mta.fault.test
mydomain = fault.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = ${opts.domains.join(', ')}
transport_maps = inline:{ ${transports} }
default_transport = error:5.0.0 this test instance delivers only to ticket-mx
relay_transport = error:5.0.0 this test instance delivers only to ticket-mx
local_transport = error:5.0.0 no local delivery in this test instance
alias_maps =
alias_database =
smtpd_relay_restrictions = ${restrictions}
smtp_dns_support_level = disabled
smtp_tls_security_level = none
smtpd_tls_security_level = none
# retry soon: the faults last seconds, the suite minutes
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
maximal_queue_lifetime = 1d
bounce_queue_lifetime = 1d
delay_warning_time = 0h
smtp_connect_timeout = 5s
default_destination_concurrency_limit = 10
maillog_file = ${maillog}
maillog_file_prefixes = ${dir}
notify_classes =
biff = no
`,
  );
  // every service unprivileged and unchrooted: nothing of the system's instance is shared
  fs.writeFileSync(
    path.join(etc, 'master.cf'),
    `127.0.0.1:${port} inet n - n - - smtpd
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
verify    unix  - - n -     1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -     - proxymap
smtp      unix  - - n -     - smtp
relay     unix  - - n -     - smtp
showq     unix  n - n -     - showq
error     unix  - - n -     - error
retry     unix  - - n -     - error
discard   unix  - - n -     - discard
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
`,
  );
  const postfix = (...args: string[]) => execFileSync('postfix', ['-c', etc, ...args], { stdio: 'pipe' });
  postfix('check');
  postfix('start');
  const until = Date.now() + 20_000;
  while (!fs.existsSync(path.join(spool, 'pid', 'master.pid'))) {
    if (Date.now() > until) throw new Error(`the private Postfix did not start; see ${maillog}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    dir,
    queued: () =>
      execFileSync('postqueue', ['-c', etc, '-j'], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 })
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
    log: () => (fs.existsSync(maillog) ? fs.readFileSync(maillog, 'utf8') : ''),
    flush: () => execFileSync('postqueue', ['-c', etc, '-f'], { stdio: 'ignore' }),
    clear: () => execFileSync('postsuper', ['-c', etc, '-d', 'ALL'], { stdio: 'ignore' }),
    held: () =>
      fs.readdirSync(path.join(spool, 'hold'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
        .length,
    masterPid: () => Number(fs.readFileSync(path.join(spool, 'pid', 'master.pid'), 'utf8').trim()),
    async stop() {
      try {
        execFileSync('postsuper', ['-c', etc, '-d', 'ALL'], { stdio: 'ignore' });
        postfix('stop');
      } catch {
        // not running
      }
    },
  };
}
