import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseMessage } from '../mime/parse.ts';
import { scoreInjection } from './injection.ts';

/**
 * Scores the injection scorer on BIPIA's composed email samples (../shared/corpora/bipia-email):
 * recall on the injected copies and false-positive rate on the clean ones, at "flagged" = level
 * medium or high. Shared by `npm run eval` and its test.
 */
export const BIPIA = 'bipia-email/composed_train.jsonl';
export const INJECTION_TARGETS = { recall: 0.9, fpr: 0.05 };

export interface InjectionReport {
  injected: number; caught: number; benign: number; falsePositives: number;
  /** Mailroom's own benign mail that mentions instructions, AI, ignoring, passwords (test/fixtures). */
  hardNegatives: number; hardFalsePositives: string[];
  /** Mailroom's own attack texts in the categories of BIPIA's test split, written apart from its train list (test/fixtures). */
  ownAttacks: number; ownMisses: string[];
  recall: number; fpr: number; precision: number; f1: number;
  byCategory: Map<string, { total: number; caught: number }>;
}

export function runInjectionEval(corpora: string): InjectionReport | null {
  const file = path.join(corpora, BIPIA);
  if (!existsSync(file)) return null;
  const rows = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { label: string; text: string; attack_category?: string });
  const r: InjectionReport = { injected: 0, caught: 0, benign: 0, falsePositives: 0, hardNegatives: 0, hardFalsePositives: [], ownAttacks: 0, ownMisses: [], recall: 0, fpr: 0, precision: 0, f1: 0, byCategory: new Map() };
  for (const text of fixtureTexts('injection-hard-negatives.jsonl')) {
    r.hardNegatives++;
    if (flagged(text)) r.hardFalsePositives.push(text.slice(0, 60));
  }
  for (const text of fixtureTexts('injection-task-attacks.jsonl')) {
    r.ownAttacks++;
    if (!flagged(text)) r.ownMisses.push(text.slice(0, 60));
  }
  for (const row of rows) {
    const hit = flagged(row.text);
    if (row.label === 'injection') {
      r.injected++;
      if (hit) r.caught++;
      const c = r.byCategory.get(row.attack_category ?? '?') ?? { total: 0, caught: 0 };
      c.total++;
      if (hit) c.caught++;
      r.byCategory.set(row.attack_category ?? '?', c);
    } else {
      r.benign++;
      if (hit) r.falsePositives++;
    }
  }
  r.recall = r.injected ? r.caught / r.injected : 0;
  r.fpr = r.benign ? r.falsePositives / r.benign : 0;
  r.precision = r.caught + r.falsePositives ? r.caught / (r.caught + r.falsePositives) : 0;
  r.f1 = r.precision + r.recall ? (2 * r.precision * r.recall) / (r.precision + r.recall) : 0;
  return r;
}

const flagged = (text: string) => scoreInjection({ subject: null, text, html: null }).level !== 'low';

function fixtureTexts(name: string): string[] {
  const file = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../test/fixtures', name);
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { text: string }).text);
}

/** Real mail from the reply and MIME corpora, none of it an attack: how much of it the scorer flags. */
export const BENIGN_MAIL = ['discourse-email-reply-trimmer/emails', 'mailgun-talon', 'mailgun-flanker/messages', 'nodemailer-mailparser', 'sisimai-set-of-emails/not-bounce'];

export async function runBenignMailCheck(corpora: string): Promise<{ files: number; flagged: string[] }> {
  const files: string[] = [];
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      const p = path.join(dir, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.size < 2_000_000) files.push(p);
    }
  };
  for (const d of BENIGN_MAIL) walk(path.join(corpora, d));
  const out = { files: 0, flagged: [] as string[] };
  for (const f of files) {
    const raw = readFileSync(f);
    // The discourse corpus holds bodies only; the others are whole messages.
    const msg = f.includes('discourse-email-reply-trimmer') ? { subject: null, text: raw.toString('utf8'), html: null } : await parseMessage(raw).catch(() => null);
    if (!msg) continue;
    out.files++;
    const v = scoreInjection({ subject: msg.subject, text: msg.text, html: msg.html });
    if (v.level !== 'low') out.flagged.push(`${path.relative(corpora, f)} (${v.signals.map((s) => s.kind).join(', ')})`);
  }
  return out;
}
