// The pipeline as the SMTP layer sees it: the bytes of one message in, its outcome out. The DNS its
// authentication needs is fetched here on the main thread first (src/mail/auth-dns.ts); the steps
// (steps.ts) then run on the worker pool (pool.ts), or here for a small message of a simple shape
// (inline.ts); the rows are committed here (deliver.ts); the budget of messages processed at once is
// budget.ts's.
import type { Config } from '../config.js';
import type { GroupCommit } from '../db/group-commit.js';
import type { Pool } from '../db/pool.js';
import { AuthDnsFetch, type AuthDnsInput, replayResolver } from '../mail/auth-dns.js';
import type { Resolver } from '../mail/dns.js';
import { deliver } from './deliver.js';
import { type MessageShape, NotInline, runsInline } from './inline.js';
import type { Analysed, PipelinePool } from './pool.js';
import { RepeatedReplies, setAsideRepeats } from './repeats.js';
import { analyse, type PipelineInput, type PipelineSettings, type PipelineWorld, sha256Of } from './steps.js';
import type { Envelope, Outcome } from './types.js';
import { databaseWorld } from './world.js';

export interface PipelineOptions {
  workers: PipelinePool;
  db: Pool;
  /** Where the rows are committed, with the other messages ready at the same moment. */
  commits: GroupCommit;
  /** The main thread's resolver, for messages processed here. */
  resolver: Resolver;
  settings: PipelineSettings &
    Pick<
      Config,
      | 'ticketMaxMessagesPerHour'
      | 'unroutedMaxBytesPerNetworkPerDay'
      | 'unroutedMaxBytesPerDay'
      | 'pipelineInlineMaxBytes'
    >;
}

export class Pipeline {
  private readonly world: PipelineWorld;
  /** Texts each ticket took lately, to set aside a loop that no header marks (src/pipeline/repeats.ts). */
  private readonly repeats = new RepeatedReplies();

  constructor(private readonly options: PipelineOptions) {
    this.world = databaseWorld(options.db, options.resolver);
  }

  /**
   * `input.raw` is moved to a worker, unless the message runs here (`shape`, inline.ts), and is
   * unusable afterwards. `signal` gives up on the worker's part; a message that has no worker
   * thread by `waitUntil` (performance.now()) is Overloaded (pool.ts).
   */
  async process(
    input: PipelineInput,
    signal?: AbortSignal,
    shape?: MessageShape,
    waitUntil?: number,
  ): Promise<Outcome> {
    const { settings } = this.options;
    // a message whose decoded tags or reply-text lines are past the inline bounds comes back from analyseHere as null
    const here = runsInline(shape, settings.pipelineInlineMaxBytes) ? await this.analyseHere(input) : null;
    const { analysis, raw, sha256 } = here ?? (await this.options.workers.analyse(input, signal, waitUntil));
    analysis.facts.path = here ? 'inline' : 'worker';
    if (analysis.kind !== 'store') return analysis;
    const { db: pool, commits } = this.options;
    // both loop breakers are TICKET_MAX_MESSAGES_PER_HOUR's: 0 turns the repeated-text one off too
    const { analysis: toStore, keys } = settings.ticketMaxMessagesPerHour
      ? setAsideRepeats(analysis, this.repeats)
      : { analysis, keys: [] };
    const outcome = await deliver(
      { pool, commits },
      settings,
      toStore,
      { raw, sha256, network: input.network },
      signal,
    );
    // only what was posted counts: a retry (duplicate) or a refusal is not a text the ticket took again
    if (outcome.kind === 'committed') for (const key of keys) this.repeats.record(key);
    return outcome;
  }

  /**
   * Starts the DNS of one message's authentication on this thread (src/mail/auth-dns.ts): SPF at
   * once, the rest when `record()` gets the bytes. Its recording goes in `input.dns`.
   */
  authDns(envelope: Envelope): AuthDnsFetch {
    return new AuthDnsFetch(this.options.resolver, authDnsInput(envelope, this.options.settings.smtpHostname));
  }

  /** The steps on this thread; null when the decoded body turns out too dear for it (NotInline). */
  private async analyseHere(input: PipelineInput): Promise<Analysed | null> {
    const world = input.dns
      ? { ...this.world, resolver: replayResolver(input.dns, this.options.resolver) }
      : this.world;
    try {
      const analysis = await analyse(input, world, this.options.settings, { inline: true });
      return { analysis, raw: input.raw, sha256: sha256Of(input.raw) };
    } catch (err) {
      if (err instanceof NotInline) return null;
      throw err;
    }
  }

  private closed: Promise<void> | null = null;

  /** Once, however often it is called (stop and abort both may). */
  close(): Promise<void> {
    this.closed ??= this.options.workers.close();
    return this.closed;
  }
}

/** What the DNS of a message's authentication starts from: its envelope, and our host name (`mta`). */
export const authDnsInput = (envelope: Envelope, mta: string): AuthDnsInput => ({
  ip: envelope.clientIp,
  helo: envelope.helo ?? '',
  mailFrom: envelope.mailFrom ?? '',
  mta,
});
