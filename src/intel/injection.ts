import type { AuthVerdict } from './auth.ts';
import { hiddenHtmlText } from './hidden-html.ts';
import { taskInstructions } from './task-instructions.ts';
import { encodedRuns, reverseCodePoints } from './text-scan.ts';

/**
 * Prompt-injection risk of a received message: `{ score 0..1, level, signals[] }`, each signal with
 * its kind, a short excerpt and where it was found. Local, fast and deterministic: regular
 * expressions and one streaming pass over the HTML, no network, no model. The score combines the
 * signals as independent evidence (1 − Π(1 − wᵢ)); an instruction addressed to an AI is strong on its
 * own, and stronger where a person cannot see it. A scorer failure is `level: 'unknown'`, never low.
 */
export type Location = 'subject' | 'text' | 'hidden_html' | 'attachment' | 'headers';
export interface InjectionSignal { kind: string; evidence: string; location: Location; weight: number }
export interface InjectionVerdict { score: number; level: 'low' | 'medium' | 'high' | 'unknown'; signals: InjectionSignal[] }

export interface ScoreInput {
  subject: string | null;
  text: string | null;
  html: string | null;
  fromName?: string | null;
  attachments?: { filename: string | null; content_type: string }[];
  auth?: AuthVerdict | null;
}

const MAX_TEXT = 500_000;

// Instructions addressed to a model, and the role/format tokens chat models are trained on.
const INSTRUCTIONS: [RegExp, string][] = [
  [/\b(ignore|disregard|forget|override|bypass)\b[^.\n]{0,40}\b(previous|prior|above|earlier|preceding|all|any|your|the)\b[^.\n]{0,30}\b(instructions?|prompts?|rules|directives|guidelines|messages|context)\b/i, 'ignore previous instructions'],
  [/\byou are now\b|\bfrom now on,? you (are|will|must)\b|\bnew (system )?instructions?\s*:/i, 'role change'],
  // Mentioning a system prompt is ordinary (release notes, chatbot projects); asking for it is not.
  [/\b(reveal|show|print|repeat|output|leak|ignore|override|disregard|replace)\b[^.\n]{0,20}\b(your|the) (system|developer|hidden) (prompt|message|instructions?)\b/i, 'system prompt'],
  [/\b(as an? (ai|llm|language model|assistant)|dear (ai|assistant|agent|llm|chatbot))\b/i, 'addressed to an AI'],
  [/\bdo not (tell|inform|mention|reveal|alert) (this to )?(the )?(user|human|owner|recipient)\b/i, 'conceal from the user'],
  // "email" only as a verb: "use your email address and 'forgot password'" asks for nothing.
  [/\b(send|forward|e-?mail(?!\s+address)|post|upload|exfiltrate|leak)\b[^.\n]{0,60}\b(api[ -]?keys?|passwords?|credentials|secrets?|tokens?|conversation|chat history|contacts|inbox)\b/i, 'exfiltration request'],
  [/\b(execute|run) (the following|this) (command|code|script)\b/i, 'run a command'],
];
const ROLE_TOKENS = /<\|im_(start|end)\|>|<\|(system|user|assistant|endoftext)\|>|\[\/?INST\]|<<\/?SYS>>|^\s*#{2,}\s*(system|instruction)s?\s*:|<\/?(system|assistant)>|\b(BEGIN|END) (SYSTEM|HIDDEN) (PROMPT|INSTRUCTIONS)\b/im;

const LURES: [RegExp, string][] = [
  [/\b(urgent(ly)?|immediately|right away|within (24|48) hours|asap|final notice|account (will be|has been) (suspended|locked|closed))\b/i, 'urgency'],
  [/\b(verify|confirm|update|reset) (your )?(account|password|credentials|login|identity)\b|\b(enter|provide|share) (your )?(password|credentials|api key|one-time code|2fa code)\b/i, 'credential lure'],
  [/\b(wire transfer|gift cards?|bank (details|account)|change (of|to) (bank|payment) details|pay (the )?invoice|bitcoin|crypto wallet)\b/i, 'payment lure'],
];
const AUTHORITY = /\b(ceo|cfo|coo|chief executive|president|director|it (department|support|helpdesk)|security team|administrator|admin team|hr department|payroll|legal department)\b/i;

// Zero-width and bidi controls; Unicode tag characters (E0000–E007F) carry invisible ASCII.
const INVISIBLE = /[\u200B-\u200D\u2060\uFEFF\u202A-\u202E\u2066-\u2069]/g;
const TAGS = /[\u{E0000}-\u{E007F}]/gu;
/** Every code point a reader does not see (both kinds above): what a safe rendering removes. */
export const INVISIBLE_ANY = /[\u200B-\u200D\u2060\uFEFF\u202A-\u202E\u2066-\u2069]|[\u{E0000}-\u{E007F}]/gu;

// Hidden places whose text is ordinarily there for a reason: an instruction in them counts, their text alone does not.
const VISIBLE_ELSEWHERE = new Set(['alt attribute', 'title attribute', 'conditional comment']);

const excerpt = (s: string, at = 0, len = 120) => s.slice(Math.max(0, at - 20), at + len).replace(/\s+/g, ' ').trim();

function instructionSignals(text: string, location: Location, weight: number, out: InjectionSignal[], prefix = ''): boolean {
  let found = false;
  for (const [re, what] of INSTRUCTIONS) {
    const m = re.exec(text);
    if (m) { out.push({ kind: `${prefix}instruction`, evidence: `${what}: "${excerpt(text, m.index)}"`, location, weight }); found = true; }
  }
  // Plain task injections (BIPIA): an instruction acting on the model's answer is as strong as the
  // rules above; an off-task request is weaker alone (colleagues ask things too), so it flags
  // (medium) in visible text and needs hiding, or company, to reach the quarantine threshold.
  for (const t of taskInstructions(text)) {
    const strong = t.kind === 'output_manipulation';
    out.push({ kind: `${prefix}${t.kind}`, evidence: `"${excerpt(t.sentence, 0, 140)}"`, location, weight: strong ? weight : Math.round(weight * 60) / 100 });
    found = true;
  }
  const t = ROLE_TOKENS.exec(text);
  if (t) { out.push({ kind: `${prefix}role_token`, evidence: excerpt(text, t.index, 60), location, weight: Math.max(0.7, weight) }); found = true; }
  return found;
}

/** Printable text a base64 or hex run decodes to, or null. */
function decodeBlob(blob: string): string | null {
  const bytes = /^[0-9a-f]+$/i.test(blob) && blob.length % 2 === 0 ? Buffer.from(blob, 'hex') : Buffer.from(blob, 'base64');
  const s = bytes.toString('utf8');
  const printable = s.replace(/[^\x20-\x7e\n\r\t]/g, '').length;
  return s.length >= 12 && printable / s.length > 0.9 ? s : null;
}

function scoreUnsafe(input: ScoreInput): InjectionVerdict {
  const signals: InjectionSignal[] = [];
  const subject = (input.subject ?? '').slice(0, 2000);
  const text = (input.text ?? '').slice(0, MAX_TEXT);
  const html = input.html ?? '';

  instructionSignals(subject, 'subject', 0.6, signals);
  instructionSignals(text, 'text', 0.6, signals);

  // Hidden HTML: what the reader cannot see. Any instruction in it is the classic attack.
  if (html) {
    for (const h of hiddenHtmlText(html)) {
      const before = signals.length;
      if (instructionSignals(h.text, 'hidden_html', 0.85, signals, 'hidden_')) {
        for (const s of signals.slice(before)) s.evidence = `${h.how}: ${s.evidence}`;
      } else if (!VISIBLE_ELSEWHERE.has(h.how) && h.text.replace(/[^a-z]/gi, '').length >= 40) {
        signals.push({ kind: 'hidden_text', evidence: `${h.how}: "${excerpt(h.text)}"`, location: 'hidden_html', weight: 0.25 });
      }
    }
  }

  // Invisible code points, and the ASCII hidden in Unicode tag characters ("ASCII smuggling").
  const visible = `${subject}\n${text}`;
  const invisible = visible.match(INVISIBLE)?.length ?? 0;
  const tags = visible.match(TAGS) ?? [];
  if (invisible >= 3) signals.push({ kind: 'invisible_characters', evidence: `${invisible} zero-width or bidi control characters`, location: 'text', weight: 0.3 });
  if (tags.length) {
    const smuggled = tags.map((c) => String.fromCharCode(c.codePointAt(0)! - 0xe0000)).join('');
    signals.push({ kind: 'unicode_tag_characters', evidence: `${tags.length} tag characters: "${smuggled.slice(0, 80)}"`, location: 'text', weight: 0.5 });
    instructionSignals(smuggled, 'text', 0.85, signals, 'smuggled_');
  }
  // With the invisible characters removed, words split by them become readable instructions.
  if (invisible) instructionSignals(visible.replace(INVISIBLE, ''), 'text', 0.7, signals, 'split_');

  // Encoded payloads: base64 / hex runs that decode to instructions; reversed instructions.
  for (const run of encodedRuns(text)) {
    if (signals.length > 50) break;
    const decoded = decodeBlob(run);
    if (decoded && instructionSignals(decoded, 'text', 0.8, signals, 'encoded_')) continue;
    if (decoded) signals.push({ kind: 'encoded_text', evidence: `"${run.slice(0, 40)}…" decodes to "${decoded.slice(0, 60)}"`, location: 'text', weight: 0.15 });
  }
  const reversed = reverseCodePoints(text.slice(0, 50_000));
  instructionSignals(reversed, 'text', 0.7, signals, 'reversed_');

  // Exfiltration affordances: Markdown images or links whose URL carries data out when rendered.
  for (const m of `${text}\n${html}`.matchAll(/!\[[^\]]{0,100}\]\((https?:\/\/[^)\s]{1,500})\)|\[[^\]]{0,100}\]\((https?:\/\/[^)\s]*[?&][^)\s]*=(?:[^)\s&]*(?:\{|%7B|\$)[^)\s]*))\)/gi)) {
    signals.push({ kind: 'markdown_exfiltration', evidence: m[0].slice(0, 160), location: 'text', weight: 0.5 });
    if (signals.length > 50) break;
  }

  // Lures, and a sender who claims authority without authenticating.
  const lureText = `${subject}\n${text}`;
  const lures = LURES.filter(([re]) => re.test(lureText)).map(([, what]) => what);
  for (const what of lures) signals.push({ kind: 'lure', evidence: what, location: 'text', weight: 0.1 });
  const auth = input.auth;
  const unauthenticated = auth && (auth.dmarc.result !== 'pass' || auth.signals.some((s) => s.kind === 'display_name_has_address'));
  if (unauthenticated && (AUTHORITY.test(input.fromName ?? '') || AUTHORITY.test(subject))) {
    signals.push({ kind: 'unauthenticated_authority', evidence: `"${(input.fromName || subject).slice(0, 80)}" with dmarc=${auth!.dmarc.result}`, location: 'headers', weight: 0.3 });
  }

  for (const a of input.attachments ?? []) instructionSignals(a.filename ?? '', 'attachment', 0.6, signals);

  const score = Math.round((1 - signals.reduce((p, s) => p * (1 - s.weight), 1)) * 1000) / 1000;
  return { score, level: score >= 0.7 ? 'high' : score >= 0.3 ? 'medium' : 'low', signals };
}

export function scoreInjection(input: ScoreInput): InjectionVerdict {
  try {
    return scoreUnsafe(input);
  } catch (err) {
    return { score: 1, level: 'unknown', signals: [{ kind: 'scorer_error', evidence: String((err as Error)?.message ?? err).slice(0, 200), location: 'text', weight: 0 }] };
  }
}
