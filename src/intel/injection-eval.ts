import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
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
  recall: number; fpr: number; precision: number; f1: number;
  byCategory: Map<string, { total: number; caught: number }>;
}

export function runInjectionEval(corpora: string): InjectionReport | null {
  const file = path.join(corpora, BIPIA);
  if (!existsSync(file)) return null;
  const rows = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { label: string; text: string; attack_category?: string });
  const r: InjectionReport = { injected: 0, caught: 0, benign: 0, falsePositives: 0, hardNegatives: 0, hardFalsePositives: [], recall: 0, fpr: 0, precision: 0, f1: 0, byCategory: new Map() };
  const hard = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../test/fixtures/injection-hard-negatives.jsonl');
  if (existsSync(hard)) {
    for (const line of readFileSync(hard, 'utf8').split('\n').filter(Boolean)) {
      const { text } = JSON.parse(line) as { text: string };
      r.hardNegatives++;
      if (scoreInjection({ subject: null, text, html: null }).level !== 'low') r.hardFalsePositives.push(text.slice(0, 60));
    }
  }
  for (const row of rows) {
    const flagged = scoreInjection({ subject: null, text: row.text, html: null }).level !== 'low';
    if (row.label === 'injection') {
      r.injected++;
      if (flagged) r.caught++;
      const c = r.byCategory.get(row.attack_category ?? '?') ?? { total: 0, caught: 0 };
      c.total++;
      if (flagged) c.caught++;
      r.byCategory.set(row.attack_category ?? '?', c);
    } else {
      r.benign++;
      if (flagged) r.falsePositives++;
    }
  }
  r.recall = r.injected ? r.caught / r.injected : 0;
  r.fpr = r.benign ? r.falsePositives / r.benign : 0;
  r.precision = r.caught + r.falsePositives ? r.caught / (r.caught + r.falsePositives) : 0;
  r.f1 = r.precision + r.recall ? (2 * r.precision * r.recall) / (r.precision + r.recall) : 0;
  return r;
}
