import { authenticate } from 'mailauth';
import type { ParsedMessage } from '../mime/parse.ts';
import { domainOf as addressDomain } from '../outbound/addresses.ts';
import { lookalike } from './lookalike.ts';

/**
 * `security.auth` of a received message: SPF, every DKIM signature, DMARC (alignment and policy) and
 * ARC, computed by mailauth from the bytes the sender sent and the SMTP envelope Mailroom saw — never
 * from `Authentication-Results` headers already in the message (RFC 8601 §5: one that claims our
 * authserv-id is a forgery, and any other is somebody else's opinion). Plus the sender signals an
 * agent should see: a display name carrying another address, several From fields, an envelope sender
 * of another domain, and non-ASCII (IDN) sender domains that may imitate a familiar one.
 *
 * Runs in the ingest job, after the `250`: DNS cannot slow or fail the acceptance of mail. A DNS
 * failure yields `temperror`; a verifier error yields `temperror` too — never `pass`.
 */
export type AuthResult = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror' | 'policy';

export interface AuthSignal { kind: string; evidence: string }

export interface AuthVerdict {
  authserv_id: string;
  spf: { result: AuthResult; domain: string | null };
  dkim: { result: AuthResult; domain: string | null; selector: string | null; aligned: boolean }[];
  dmarc: { result: AuthResult; domain: string | null; policy: string | null; alignment: { spf: boolean; dkim: boolean } };
  arc: { result: AuthResult };
  signals: AuthSignal[];
}

export interface Envelope { ip: string | null; helo: string | null; mailFrom: string }

type Resolve = (name: string, rrtype: string) => Promise<unknown>;

const res = (v: unknown): AuthResult => (typeof v === 'string' ? (v as AuthResult) : 'none');
/** The domain of an address, or null for none (the null reverse-path, a From without one). */
const domainOf = (a: string | null | undefined) => (a && a.includes('@') ? addressDomain(a) : null);

/**
 * `lookalike` compares the domain's skeleton with every trusted domain's, about 25 µs a message;
 * a burst from one sender asks about one domain, so the answers are kept (a pure function).
 */
const lookalikes = new Map<string, ReturnType<typeof lookalike>>();
function cachedLookalike(domain: string, trusted: readonly string[]): ReturnType<typeof lookalike> {
  const key = `${domain}\n${trusted.join(',')}`;
  if (lookalikes.has(key)) return lookalikes.get(key)!;
  if (lookalikes.size >= 10_000) lookalikes.clear();
  const v = lookalike(domain, trusted);
  lookalikes.set(key, v);
  return v;
}

/**
 * The sender signals that need no DNS: what the From field and the envelope say about each other,
 * and whether the From domain imitates a trusted one (`trusted`: Mailroom's own domains).
 */
export function senderSignals(p: Pick<ParsedMessage, 'from' | 'headers'>, mailFrom: string, trusted: readonly string[] = []): AuthSignal[] {
  const out: AuthSignal[] = [];
  const fromFields = p.headers.filter((h) => h.name.toLowerCase() === 'from');
  if (fromFields.length > 1) out.push({ kind: 'multiple_from', evidence: fromFields.map((h) => h.value).join(' | ').slice(0, 200) });
  const from = p.from;
  if (from) {
    // "ceo@ourco.com" <a@evil.com>: the name shows an address that is not the sender's.
    const shown = /[^\s<>"@]+@[^\s<>"@]+\.[a-z]{2,}/i.exec(from.name ?? '')?.[0];
    if (shown && shown.toLowerCase() !== from.address.toLowerCase()) out.push({ kind: 'display_name_has_address', evidence: `"${from.name}" <${from.address}>`.slice(0, 200) });
    const fromDomain = domainOf(from.address);
    const envDomain = domainOf(mailFrom);
    // A null sender is a bounce; a different envelope domain is ordinary for mailing services, so a
    // signal, not a failure: DMARC alignment is what decides.
    if (fromDomain && envDomain && fromDomain !== envDomain && !fromDomain.endsWith(`.${envDomain}`) && !envDomain.endsWith(`.${fromDomain}`)) {
      out.push({ kind: 'envelope_from_mismatch', evidence: `MAIL FROM ${envDomain}, From ${fromDomain}` });
    }
    // A sender domain that renders like a trusted one (pаypal.com with a Cyrillic а, rnicrosoft.com):
    // lookalike_domain names what it imitates; any other IDN sender domain is reported as such.
    const look = fromDomain ? cachedLookalike(fromDomain, trusted) : null;
    if (look?.confusable_with) {
      out.push({ kind: 'lookalike_domain', evidence: `${look.domain_unicode} (${look.domain_ascii}) looks like ${look.confusable_with}${look.mixed_script ? ', mixed scripts' : ''}` });
    } else if (look) {
      out.push({ kind: 'idn_sender_domain', evidence: `${look.domain_unicode} (${look.domain_ascii})${look.mixed_script ? ', mixed scripts' : ''}`.slice(0, 200) });
    }
  }
  return out;
}

/** Where the header section ends (after its empty line), found as mailauth's DKIM parser finds it; -1 without one. */
function headerSectionEnd(raw: Buffer): number {
  if (raw[0] === 0x0a) return 1;
  if (raw[0] === 0x0d && raw[1] === 0x0a) return 2;
  const lf = raw.indexOf('\n\n');
  const crlf = raw.indexOf('\n\r\n');
  if (lf < 0) return crlf < 0 ? -1 : crlf + 3;
  return crlf < 0 || lf < crlf ? lf + 2 : crlf + 3;
}

/**
 * What mailauth has to read. Only a DKIM or ARC signature makes it hash the body, but it streams
 * the whole message through its verifier either way (about a quarter of its time on a 2 KB message,
 * more on a large one). Without either kind of field in the header section (the bytes are searched,
 * so a field cannot hide from this check behind odd folding), the header section alone gives the
 * same verdicts: SPF, DMARC and an absent DKIM or ARC read no body.
 */
export function mailauthInput(raw: Buffer): Buffer {
  const end = headerSectionEnd(raw);
  if (end < 0) return raw;
  const head = raw.toString('latin1', 0, end).toLowerCase();
  return head.includes('dkim-signature') || head.includes('arc-') ? raw : raw.subarray(0, end);
}

export async function authVerdict(raw: Buffer, env: Envelope, p: Pick<ParsedMessage, 'from' | 'headers'>, opts: { authservId: string; resolve: Resolve; timeoutMs?: number; trustedDomains?: readonly string[]; wholeMessage?: boolean }): Promise<AuthVerdict> {
  // Never throws (callers start it and await it later): a failure here is a signal, not an exception.
  let signals: AuthSignal[];
  try {
    signals = senderSignals(p, env.mailFrom, opts.trustedDomains ?? []);
  } catch (err) {
    signals = [{ kind: 'auth_error', evidence: String((err as Error)?.message ?? err).slice(0, 200) }];
  }
  const base: AuthVerdict = {
    authserv_id: opts.authservId,
    spf: { result: 'temperror', domain: domainOf(env.mailFrom) },
    dkim: [],
    dmarc: { result: 'temperror', domain: domainOf(p.from?.address), policy: null, alignment: { spf: false, dkim: false } },
    arc: { result: 'temperror' },
    signals,
  };
  let timer: NodeJS.Timeout | undefined;
  try {
    const r: any = await Promise.race([
      // wholeMessage: mailauth reads every byte (tests compare the two).
      authenticate(opts.wholeMessage ? raw : mailauthInput(raw), {
        ip: env.ip ?? undefined, helo: env.helo ?? undefined, sender: env.mailFrom, mta: opts.authservId,
        resolver: opts.resolve as never, trustReceived: false, disableBimi: true,
      }),
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('authentication timed out')), opts.timeoutMs ?? 20_000); }),
    ]);
    return {
      ...base,
      spf: { result: res(r.spf?.status?.result), domain: r.spf?.domain ?? base.spf.domain },
      dkim: (r.dkim?.results ?? []).map((d: any) => ({
        // mailauth reports a body hash mismatch as `neutral`; RFC 6376 §3.9 calls it PERMFAIL, which
        // RFC 8601 writes as dkim=fail — and an agent must read an altered message as failed, not neutral.
        result: d.status?.result === 'neutral' && /body hash did not verify/i.test(String(d.status?.comment ?? '')) ? 'fail' : res(d.status?.result),
        domain: d.signingDomain ?? null, selector: d.selector ?? null, aligned: Boolean(d.status?.aligned),
      })),
      dmarc: r.dmarc
        ? {
          result: res(r.dmarc.status?.result), domain: r.dmarc.domain ?? base.dmarc.domain, policy: r.dmarc.policy ?? r.dmarc.p ?? null,
          alignment: { spf: Boolean(r.dmarc.alignment?.spf?.result), dkim: Boolean(r.dmarc.alignment?.dkim?.result) },
        }
        // mailauth cannot evaluate DMARC without exactly one author domain (RFC 9989 §5.3.1): that is a failure.
        : { ...base.dmarc, result: 'permerror' },
      arc: { result: res(r.arc?.status?.result) },
    };
  } catch (err) {
    return { ...base, signals: [...signals, { kind: 'auth_error', evidence: String((err as Error).message).slice(0, 200) }] };
  } finally {
    clearTimeout(timer);
  }
}
