// The DNS of one message's authentication, fetched on the main thread so that no worker thread
// waits for it: a sender whose DNS answers in seconds held the only worker, and every other
// sender's message behind it, for as long as its lookups took. SPF starts when DATA does (its
// inputs are the envelope's) and runs while the bytes arrive; at the final dot the header tells the
// rest: the keys of the DKIM signatures mailauth will verify (src/mail/dkim-limit.ts caps them)
// and of the ARC sets, and DMARC's record and Tree Walks for the From domain and every identifier
// that could align. Each runs mailauth's own code on the same inputs as authenticate() will, so it
// asks the same questions; what it asks and what comes back is recorded. The recording ends
// AUTH_DNS_BUDGET_MS after the dot: a question still open then is recorded as a timeout (a
// temperror, which authorize() treats by the existing rules). The steps then authenticate against
// the recording (replayResolver): what it holds is answered at once; a question it lacks (nothing
// here foresaw it) goes to the live resolver. SPF's result, when it was reached before the
// recording ended, goes with it (spfResult): on the same answers it is the same result, and the
// steps take it rather than evaluate SPF twice. Answers that come after the budget are kept for the
// sender's retry (`late`).
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { setNewest } from '../newest.js';
import { bodyOffset } from './bytes.js';
import { DKIM_MAX_SIGNATURES } from './dkim-limit.js';
import { type Resolver, TIMED_OUT } from './dns.js';

/** One question's outcome: the answer, or the error's code and message. */
export type RecordedAnswer = { answer: unknown } | { error: { code: string; message: string } };
/** Questions (`TYPE name`, lower case) and their outcomes; structured-cloneable, for a worker. */
export type DnsRecording = [question: string, outcome: RecordedAnswer][];
/** What mailauth's SPF answers (mailauth/lib/spf): plain data, structured-cloneable. */
export type SpfResult = Record<string, unknown>;

export interface AuthDnsInput {
  ip: string;
  /** EHLO/HELO name; '' when none. */
  helo: string;
  /** MAIL FROM address; '' for the null sender. */
  mailFrom: string;
  /** Our host name (SPF's %{r} macro). */
  mta: string;
}

interface ParsedTag {
  value?: unknown;
}
interface SignatureHeader {
  type?: string;
  skip?: unknown;
  invalid?: unknown;
  selector?: string;
  signingDomain?: string;
}
interface ArcLink {
  'arc-seal'?: { parsed?: Record<string, ParsedTag | undefined> };
}
interface Verifier {
  messageHeaders(headers: unknown): Promise<void>;
  signatureHeaders: SignatureHeader[];
  headerFrom: string[];
  fromFields: number;
  arc: { chain?: ArcLink[] | false };
}

const require = createRequire(import.meta.url);
const { spf } = require('mailauth/lib/spf/index.js') as { spf(opts: object): Promise<unknown> };
const { evaluateDmarc } = require('mailauth/lib/dmarc/index.js') as { evaluateDmarc(opts: object): Promise<unknown> };
const { DkimVerifier } = require('mailauth/lib/dkim/dkim-verifier.js') as {
  DkimVerifier: new (options: object) => Verifier;
};
const tools = require('mailauth/lib/tools.js') as {
  parseHeaders(buf: Buffer): { parsed: { key: string | null }[] };
  toALabel(name: string): string;
  formatDomain(domain: string): string;
};
const { getAuthorDomain } = require('mailauth/lib/dmarc/author-domain.js') as {
  getAuthorDomain(headerFrom: string[], fromFields: number): { authorDomain?: string; reason?: string };
};

/** DKIM-Signature fields read here at most (src/mail/dkim-limit.ts verifies the first valid ones). */
const READ_SIGNATURES = 4 * DKIM_MAX_SIGNATURES;

const questionOf = (name: string, rrtype: string): string =>
  `${rrtype.toUpperCase()} ${name.toLowerCase().replace(/\.+$/, '')}`;

const errorOf = (err: unknown): { code: string; message: string } => {
  const e = err as { code?: unknown; message?: unknown } | null;
  return { code: typeof e?.code === 'string' ? e.code : 'ESERVFAIL', message: String(e?.message ?? err) };
};

/**
 * A recorded error as the resolver's rejection, without a stack: DMARC's Tree Walk is answered
 * "no such record" several times a message, and capturing a stack for each was 1% of the main
 * thread's CPU under npm run bench.
 */
const errorFrom = ({ code, message }: { code: string; message: string }): Error => {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return Object.assign(new Error(message), { code });
  } finally {
    Error.stackTraceLimit = limit;
  }
};

const outcomeOf = (recorded: RecordedAnswer): Promise<unknown> =>
  'answer' in recorded ? Promise.resolve(recorded.answer) : Promise.reject(errorFrom(recorded.error));

/** The SPF options mailauth's authenticate() derives from ours (mailauth/lib/mailauth.js). */
export const spfOptions = (input: AuthDnsInput, resolver: Resolver) => {
  let helo = input.helo || input.ip;
  if (helo && isIP(helo)) helo = `[${helo}]`;
  return { ip: input.ip, helo, sender: input.mailFrom || undefined, mta: input.mta, resolver };
};

/**
 * Answers that came after their message's budget had run out, kept for its retry. The lookups are
 * not abandoned at the budget: mailauth's SPF and DMARC go on in the background and ask what they
 * would have asked next, so that a domain whose DNS takes longer than the budget is answered from
 * here when the sender retries (minutes later, past DNS_CACHE_SECONDS), and its 451 4.7.x is not
 * the answer to every retry. Temporary errors are not kept; that a name does not exist (or has no
 * such record) is kept only for LATE_NEGATIVE_KEEP_MS, as a record published just after it is
 * looked for (a DKIM key with the first message it signs) would otherwise fail for an hour.
 */
const late = new Map<string, { expires: number; outcome: RecordedAnswer }>();
/** How long a late answer is kept: longer than the retries of a sending server's first hour. */
export const LATE_KEEP_MS = 60 * 60 * 1000;
/** How long a late ENOTFOUND or ENODATA is kept: long enough for a sending server's first retry. */
export const LATE_NEGATIVE_KEEP_MS = 5 * 60 * 1000;
/** Late answers kept at most; the oldest goes first. */
export const LATE_MAX = 10_000;

const keepLate = (question: string, outcome: RecordedAnswer): void => {
  if ('error' in outcome && outcome.error.code !== 'ENOTFOUND' && outcome.error.code !== 'ENODATA') return;
  const expires = Date.now() + ('error' in outcome ? LATE_NEGATIVE_KEEP_MS : LATE_KEEP_MS);
  setNewest(late, question, { expires, outcome }, LATE_MAX);
};

const lateOutcome = (question: string): RecordedAnswer | undefined => {
  const kept = late.get(question);
  if (!kept) return undefined;
  if (kept.expires > Date.now()) return kept.outcome;
  late.delete(question);
  return undefined;
};

/** Forgets the late answers (tests). */
export const clearLateAnswers = (): void => late.clear();

/**
 * The questions the header's DMARC asked for one set of its inputs (the Author Domain as mailauth
 * reads the From fields, the SPF and DKIM domains that could align: dmarcInputs), and what came
 * back: the next message with the same inputs asks them as they are instead of evaluating DMARC
 * here again. DMARC asks each question from its inputs and the answers before it, so when every
 * answer is the one kept, it would have asked exactly these, and the recording holds all that the
 * steps' DMARC will ask; at the first answer that differs, it is evaluated as before. A question
 * that the recording lacks all the same goes live from the steps (replayResolver): the verdict
 * never rests on what is kept here, only where it is looked up (and a sender can only keep
 * questions for inputs that are its own message's, as DMARC reads them). Evaluating DMARC here took
 * 123 µs of CPU a message (Node 24), asking the kept questions 10-20.
 */
const dmarcAsked = new Map<string, [question: string, outcome: string][]>();
/** Sets of DMARC inputs kept at most; the oldest goes first. */
export const DMARC_ASKED_MAX = 1_000;

/** Questions of one DMARC evaluation kept at most (a Tree Walk asks a few for each domain). */
export const DMARC_ASKED_QUESTIONS_MAX = 32;

/**
 * An outcome as compared with a kept one: the answer (its SHA-256 when long: what is kept stays
 * small whatever a sender's DNS answers), or the error's code.
 */
const sameness = (outcome: RecordedAnswer): string => {
  if ('error' in outcome) return `!${outcome.error.code}`;
  const text = JSON.stringify(outcome.answer);
  return text.length <= 64 ? text : createHash('sha256').update(text).digest('base64');
};

/** How often the header's DMARC was evaluated here, and how often its kept questions were enough. */
export const dmarcPrefetches = { evaluated: 0, kept: 0 };

/** Forgets the kept DMARC questions (tests). */
export const clearDmarcAsked = (): void => dmarcAsked.clear();

/** One message's lookups, from the start of DATA until `record()` ends them. */
export class AuthDnsFetch {
  private readonly outcomes = new Map<string, RecordedAnswer>();
  /** Asked and not answered yet. */
  private readonly open = new Set<string>();
  private readonly work: Promise<unknown>[] = [];
  private ended = false;
  private readonly resolver: Resolver;
  private spfDone: SpfResult | undefined;

  constructor(
    private readonly live: Resolver,
    private readonly input: AuthDnsInput,
  ) {
    const asked = new Map<string, Promise<unknown>>();
    this.resolver = (name, rrtype) => {
      const question = questionOf(name, rrtype);
      const known = this.outcomes.get(question);
      if (known) return outcomeOf(known);
      const kept = lateOutcome(question);
      if (kept) {
        this.keep(question, kept);
        return outcomeOf(kept);
      }
      let pending = asked.get(question);
      if (!pending) {
        this.open.add(question);
        pending = this.live(name, rrtype).then(
          (answer) => {
            this.keep(question, { answer });
            return answer;
          },
          (err: unknown) => {
            this.keep(question, { error: errorOf(err) });
            throw err;
          },
        );
        asked.set(question, pending);
      }
      return pending;
    };
    const early = spf(spfOptions(input, this.resolver));
    early.then(
      (result) => {
        if (!this.ended) this.spfDone = result as SpfResult;
      },
      () => undefined,
    );
    this.add(early);
  }

  /**
   * SPF's result, when it was reached before the recording ended: on the recorded answers alone, so
   * the same result authenticate() would reach again from them (it takes this one instead:
   * src/mail/mailauth-lean.ts EARLY_SPF). Undefined when SPF was still waiting for an answer then:
   * the steps evaluate it on the recording, where that answer is a timeout.
   */
  get spfResult(): SpfResult | undefined {
    return this.ended ? this.spfDone : undefined;
  }

  /**
   * Starts the lookups the message's header calls for, waits for all of them until `until`
   * (performance.now()) or `signal`, and returns what was recorded; nothing is recorded after.
   */
  async record(raw: Buffer, until: number, signal?: AbortSignal): Promise<DnsRecording> {
    await this.fromHeader(raw).catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    await Promise.race([
      Promise.allSettled(this.work),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, Math.max(0, until - performance.now()));
        onAbort = resolve;
        signal?.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    this.ended = true;
    for (const question of this.open)
      this.outcomes.set(question, {
        error: { code: TIMED_OUT, message: `${question}: no answer within AUTH_DNS_BUDGET_MS` },
      });
    return [...this.outcomes];
  }

  private keep(question: string, outcome: RecordedAnswer): void {
    if (this.ended) {
      keepLate(question, outcome);
      return;
    }
    this.open.delete(question);
    this.outcomes.set(question, outcome);
  }

  private add(task: Promise<unknown>): void {
    task.catch(() => undefined);
    this.work.push(task);
  }

  /** The key and DMARC lookups, found by mailauth's own reading of the header. */
  private async fromHeader(raw: Buffer): Promise<void> {
    const verifier = new DkimVerifier({});
    const headers = tools.parseHeaders(raw.subarray(0, bodyOffset(raw)));
    // this runs on the main thread: the signatures past the first few are not read here (350 of
    // them took 12 ms); the cap is reached among those unless most are invalid, and a key this
    // misses is looked up by the steps themselves, DKIM_MAX_SIGNATURES at most
    let signatures = 0;
    headers.parsed = headers.parsed.filter((h) => h.key !== 'dkim-signature' || ++signatures <= READ_SIGNATURES);
    await verifier.messageHeaders(headers);
    const key = (selector: unknown, domain: unknown) => {
      if (typeof selector !== 'string' || typeof domain !== 'string' || !selector || !domain) return;
      this.add(this.resolver(tools.toALabel(`${selector}._domainkey.${domain}`), 'TXT'));
    };
    // DKIM signatures under the cap and the newest ARC-Message-Signature: a key each (looked up
    // only if its body hash matches, which is not known here: asked anyway)
    const verified = verifier.signatureHeaders.filter((s) => !s.skip && !s.invalid);
    for (const s of verified) key(s.selector, s.signingDomain);
    for (const link of verifier.arc.chain || []) {
      const seal = link['arc-seal']?.parsed;
      key(seal?.s?.value, seal?.d?.value);
    }
    if (!verifier.headerFrom.length) return;
    // DMARC as if every signature passed and SPF did: the Tree Walks of all that could align
    const spfDomain = (this.input.mailFrom || spfOptions(this.input, this.resolver).helo).split('@').pop() ?? '';
    const dkimDomains = verified.filter((s) => s.type === 'DKIM').map((s) => ({ domain: s.signingDomain }));
    const evaluate = async (inputs: string | null) => {
      dmarcPrefetches.evaluated++;
      const asked: string[] = [];
      await evaluateDmarc({
        headerFrom: verifier.headerFrom,
        fromFields: verifier.fromFields,
        spfDomains: spfDomain ? [spfDomain] : [],
        dkimDomains,
        resolver: (name: string, rrtype: string) => {
          asked.push(questionOf(name, rrtype));
          return this.resolver(name, rrtype);
        },
        strict: false,
      });
      // kept only when every answer came before the recording ended
      const outcomes = asked.map((q) => this.outcomes.get(q));
      if (inputs === null || this.ended || outcomes.some((o) => !o) || asked.length > DMARC_ASKED_QUESTIONS_MAX) return;
      setNewest(
        dmarcAsked,
        inputs,
        asked.map((q, i): [string, string] => [q, sameness(outcomes[i]!)]),
        DMARC_ASKED_MAX,
      );
    };
    const inputs = dmarcInputs(verifier.headerFrom, verifier.fromFields, spfDomain, dkimDomains);
    // no Author Domain (none, several, malformed): DMARC asks nothing
    if (inputs === undefined) return;
    if (inputs === null) return this.add(evaluate(null));
    const kept = dmarcAsked.get(inputs);
    if (!kept) return this.add(evaluate(inputs));
    setNewest(dmarcAsked, inputs, kept, DMARC_ASKED_MAX);
    // each kept question asked again; at the first answer that is not the one kept, DMARC is
    // evaluated (while the others are still on their way, so that what it asks now is recorded)
    let again: Promise<void> | undefined;
    this.add(
      Promise.all(
        kept.map(([question, was]) => {
          const space = question.indexOf(' ');
          return this.resolver(question.slice(space + 1), question.slice(0, space))
            .then(
              (answer): RecordedAnswer => ({ answer }),
              (err: unknown): RecordedAnswer => ({ error: errorOf(err) }),
            )
            .then((outcome) => {
              if (sameness(outcome) !== was) again ??= evaluate(inputs);
            });
        }),
      ).then(() => {
        if (again) return again;
        dmarcPrefetches.kept++;
      }),
    );
  }
}

/**
 * What the questions of the header's DMARC follow from, as mailauth's evaluateDmarc reads its
 * inputs: the Author Domain (mailauth's own reading of the From fields), the SPF and the DKIM
 * domains. Undefined when there is no Author Domain (DMARC asks nothing); null when a domain cannot
 * be read (evaluated, not kept).
 */
function dmarcInputs(
  headerFrom: string[],
  fromFields: number,
  spfDomain: string,
  dkimDomains: { domain?: string }[],
): string | null | undefined {
  try {
    const author = getAuthorDomain(headerFrom, fromFields);
    if (!author.authorDomain) return undefined;
    return JSON.stringify([
      author.authorDomain,
      spfDomain ? tools.formatDomain(spfDomain) : '',
      dkimDomains.map((d) => tools.formatDomain(String(d.domain ?? ''))),
    ]);
  } catch {
    return null;
  }
}

/** Answers from a recording; a question it does not hold goes to `live`. */
export function replayResolver(recording: DnsRecording, live: Resolver): Resolver {
  const outcomes = new Map(recording);
  return (name, rrtype) => {
    const recorded = outcomes.get(questionOf(name, rrtype));
    return recorded ? outcomeOf(recorded) : live(name, rrtype);
  };
}
