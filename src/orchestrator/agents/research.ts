import type { Lead } from '../spec.ts';
import type { HistoryThread, ResearchAgent, ResearchInput, ResearchNotes, RoleContext } from '../roles.ts';
import { collapseWhitespace } from '../template.ts';

/**
 * The built-in research agent: what Mailroom already knows about a lead, as notes the
 * personalization agent can build on. Sources, most specific first: past threads with the lead's
 * address, past threads with anyone at its domain, the lead's named properties (company, title), its
 * CRM data (one fact per key, source `crm:<key>`), and pluggable fetchers (a CRM or web lookup; one
 * that throws or times out is recorded as unavailable, never fatal). No model, no network of its
 * own; the result depends only on the input and the fetchers' answers (CRM keys are sorted, because
 * a JSONB round-trip does not keep their order).
 *
 * `variables.hook` is a short opening line for {{notes.hook}}, from the most specific thing known:
 * a past thread with this address > an outward-facing CRM line (icebreaker/hook/opener) > the
 * industry > the title > the company > a neutral line. Two deliberate omissions: a colleague's
 * thread never makes the hook (telling Ada what her colleague wrote to us leaks his mail), and CRM
 * notes never do (a note is written for the sales team — "budget tight, pushy" — not for the
 * prospect); both stay in the facts for a human or a model to weigh.
 */

export interface FetcherResult { facts: string[]; variables?: Record<string, string> }
export interface ResearchFetcher {
  name: string;
  fetch(lead: Lead, ctx: RoleContext): Promise<FetcherResult>;
}
export interface BuiltinResearchOptions {
  fetchers?: ResearchFetcher[];
  /** How long one fetcher may take before it counts as unavailable (default 10 s). */
  fetcherTimeoutMs?: number;
}

const MAX_ITEMS = 50; // the schema's limit on facts and on sources (kept parallel: sources[i] is facts[i]'s)
const MAX_THREAD_FACTS = { address: 5, domain: 3 };
const MAX_CRM_FACTS = 25;
const MAX_FETCHER_FACTS = 10;
const VARIABLE_NAME = /^[A-Za-z_][\w-]*$/;

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
const oneLine = (s: string, n: number) => clip(collapseWhitespace(s), n);

/** "Re: AW: Fwd: Pricing" → "Pricing": the topic, not the mail client's bookkeeping. */
export function baseSubject(subject: string | null): string {
  let s = collapseWhitespace(subject ?? '');
  for (let i = 0; i < 10; i++) {
    const next = s.replace(/^(?:re|aw|sv|vs|fw|fwd|wg|tr|rv|enc)(?:\[\d+\])?\s*:\s*/i, '');
    if (next === s) break;
    s = next;
  }
  return s;
}

function day(iso: string): { date: string; month: string } | null {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return null;
  const d = new Date(t);
  return { date: d.toISOString().slice(0, 10), month: `${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}` };
}

interface ThreadSummary {
  id: string;
  topic: string;
  last: { date: string; month: string } | null;
  lastAt: number;
  replied: boolean;
  counterpart: string;
}

function summarizeThread(t: HistoryThread, counterpart: (t: HistoryThread) => string): ThreadSummary | null {
  if (t.messages.length === 0) return null;
  let lastAt = -Infinity;
  let lastIso = '';
  for (const m of t.messages) {
    const at = Date.parse(m.at);
    if (!Number.isNaN(at) && at > lastAt) { lastAt = at; lastIso = m.at; }
  }
  return {
    id: t.thread_id,
    topic: oneLine(baseSubject(t.subject ?? t.messages.find((m) => m.subject)?.subject ?? null), 120) || '(no subject)',
    last: lastIso ? day(lastIso) : null,
    lastAt,
    replied: t.messages.some((m) => m.direction === 'inbound'),
    counterpart: counterpart(t),
  };
}

/** Newest first by last message; ties (and undated threads) keep the input order. */
const newestFirst = (a: ThreadSummary, b: ThreadSummary) => (b.lastAt === a.lastAt ? 0 : b.lastAt > a.lastAt ? 1 : -1);

const addr = (s: string | null) => (s ?? '').trim().toLowerCase();

/** Who at the lead's domain took part in a thread: an inbound sender, else an outbound recipient. */
function domainCounterpart(domain: string): (t: HistoryThread) => string {
  const at = `@${domain}`;
  return (t) => {
    for (const m of t.messages) if (m.direction === 'inbound' && addr(m.from).endsWith(at)) return addr(m.from);
    for (const m of t.messages) for (const r of m.to) if (addr(r).endsWith(at)) return addr(r);
    return `someone at ${domain}`;
  };
}

/** A CRM value as one line of text, or null when there is nothing to say. */
function crmText(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return oneLine(v, 900) || null;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (Array.isArray(v) && v.every((x) => ['string', 'number', 'boolean'].includes(typeof x))) {
    return oneLine(v.map(String).filter((x) => x.trim()).join(', '), 900) || null;
  }
  try {
    const json = JSON.stringify(v);
    return json && json !== '{}' && json !== '[]' ? clip(json, 900) : null;
  } catch {
    return null; // cyclic or otherwise unserialisable: leave it out rather than fail the lead
  }
}

const label = (key: string) => {
  const words = key.replace(/[_\-.]+/g, ' ').trim();
  return words ? words[0].toUpperCase() + words.slice(1) : key;
};

/** The first CRM value under any of these keys (case-insensitive), as text. */
function crmPick(crm: Record<string, unknown>, keys: string[]): string | null {
  const lower = new Map(Object.keys(crm).sort().map((k) => [k.toLowerCase(), k]));
  for (const k of keys) {
    const real = lower.get(k);
    if (real === undefined) continue;
    const v = crm[real];
    if (typeof v === 'string' && v.trim()) return oneLine(v, 200);
  }
  return null;
}

function withTimeout<T>(p: Promise<T>, ms: number, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    const onAbort = () => reject(new Error('aborted'));
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    });
  });
}

interface Notes { facts: string[]; sources: string[] }
const add = (n: Notes, fact: string, source: string) => {
  if (n.facts.length >= MAX_ITEMS) return;
  n.facts.push(clip(fact, 1000));
  n.sources.push(clip(source, 500));
};

export function builtinResearch(opts: BuiltinResearchOptions = {}): ResearchAgent {
  const fetchers = opts.fetchers ?? [];
  const timeoutMs = opts.fetcherTimeoutMs ?? 10_000;

  return {
    async research(input: ResearchInput, ctx: RoleContext): Promise<ResearchNotes> {
      const { lead, history } = input;
      const email = lead.email.toLowerCase();
      const domain = email.slice(email.lastIndexOf('@') + 1);
      const crm = lead.crm ?? {};
      const notes: Notes = { facts: [], sources: [] };
      const variables: Record<string, string> = {};

      // Threads: with the address (their own words), then with colleagues at the domain.
      const own = history.with_address.map((t) => summarizeThread(t, () => email)).filter((t) => t !== null).sort(newestFirst);
      const seen = new Set(own.map((t) => t.id));
      const colleagues = history.with_domain
        .filter((t) => !seen.has(t.thread_id))
        .map((t) => summarizeThread(t, domainCounterpart(domain)))
        .filter((t) => t !== null)
        .sort(newestFirst);
      own.slice(0, MAX_THREAD_FACTS.address).forEach((t, i) => {
        add(notes, `${i === 0 ? 'Last' : 'Earlier'} exchange with ${t.counterpart}${t.last ? ` on ${t.last.date}` : ''}: '${t.topic}' (${t.replied ? 'they replied' : 'no reply'})`, `thread:${t.id}`);
      });
      for (const t of colleagues.slice(0, MAX_THREAD_FACTS.domain)) {
        add(notes, `Exchange with ${t.counterpart} (same company)${t.last ? ` on ${t.last.date}` : ''}: '${t.topic}' (${t.replied ? 'they replied' : 'no reply'})`, `thread:${t.id}`);
      }

      // Named properties, then CRM data.
      const company = lead.company?.trim() || crmPick(crm, ['company', 'company_name', 'account', 'account_name', 'organization', 'organisation']);
      const title = lead.title?.trim() || crmPick(crm, ['title', 'job_title', 'jobtitle', 'position', 'role']);
      const industry = crmPick(crm, ['industry', 'sector', 'vertical']);
      const icebreaker = crmPick(crm, ['icebreaker', 'hook', 'opener', 'opening_line']);
      if (lead.company?.trim()) add(notes, `Company: ${oneLine(lead.company, 200)}`, 'lead:company');
      if (lead.title?.trim()) add(notes, `Title: ${oneLine(lead.title, 200)}`, 'lead:title');
      let crmFacts = 0;
      for (const key of Object.keys(crm).sort()) {
        if (crmFacts >= MAX_CRM_FACTS) break;
        const text = crmText(crm[key]);
        if (text === null) continue;
        add(notes, `${label(key)}: ${text}`, `crm:${key}`);
        crmFacts++;
      }

      // Fetchers run together; each one's answer is sanitised, a failure is a fact, not an error.
      const answers = await Promise.allSettled(fetchers.map((f) => withTimeout(Promise.resolve().then(() => f.fetch(lead, ctx)), timeoutMs, ctx.signal)));
      const fetched: Record<string, string> = {};
      answers.forEach((a, i) => {
        const name = fetchers[i].name;
        if (a.status === 'rejected') {
          const why = a.reason instanceof Error ? a.reason.message : String(a.reason);
          add(notes, `Fetcher ${name} unavailable: ${oneLine(why, 200) || 'failed'}`, `fetcher:${name}`);
          return;
        }
        const facts = Array.isArray(a.value?.facts) ? a.value.facts : [];
        facts.filter((f): f is string => typeof f === 'string').map((f) => oneLine(f, 1000)).filter(Boolean).slice(0, MAX_FETCHER_FACTS)
          .forEach((f) => add(notes, f, `fetcher:${name}`));
        for (const [k, v] of Object.entries(a.value?.variables ?? {})) {
          if (VARIABLE_NAME.test(k) && typeof v === 'string' && v.trim()) fetched[k] = clip(v.trim(), 2000);
        }
      });

      // The hook: most specific first (see the comment at the top for what is left out and why).
      const last = own[0];
      let hook: string;
      if (last) {
        const when = last.last ? ` from ${last.last.month}` : '';
        hook = last.replied ? `Picking up our conversation about "${last.topic}"${when}.` : `Following up on my note about "${last.topic}"${when}.`;
      } else if (icebreaker) hook = icebreaker;
      else if (industry) hook = company ? `I've been working with a number of ${industry} teams like ${company} lately.` : `I've been working with a number of ${industry} teams lately.`;
      else if (title) hook = company ? `Given your role as ${title} at ${company}, I thought this might be relevant.` : `Given your role as ${title}, I thought this might be relevant.`;
      else if (company) hook = `I'm reaching out because I think this could be relevant to ${company}.`;
      else hook = 'I hope this finds you well.';

      variables.hook = clip(hook, 2000);
      if (company) variables.company = company;
      if (title) variables.title = title;
      if (industry) variables.industry = industry;
      if (last) {
        variables.last_topic = last.topic;
        if (last.last) variables.last_contact = last.last.date;
      }
      // A fetcher is the operator's own code for exactly this lead: its variables win (in fetcher order).
      Object.assign(variables, fetched);

      const name = [lead.first_name, lead.last_name].map((s) => s?.trim()).filter(Boolean).join(' ') || lead.email;
      const who = `${name}${title ? `, ${title}` : ''}${company ? ` at ${company}` : ''}${industry ? ` (${industry})` : ''}.`;
      const past = last
        ? `Last exchange${last.last ? ` on ${last.last.date}` : ''} about '${last.topic}' (${last.replied ? 'they replied' : 'no reply'}).`
        : colleagues.length
          ? `No past exchange with this address; ${colleagues.length} with colleagues at ${domain}.`
          : 'No past exchange in this Mailroom.';
      return { summary: clip(`${who} ${past}`, 4000), facts: notes.facts, sources: notes.sources, variables };
    },
  };
}
