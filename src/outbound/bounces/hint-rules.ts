import { localAgentHint } from './lda-hints.ts';
import type { HeaderField } from './mime.ts';
import { MTA_RULES } from './mta-hints.ts';
import { PROVIDER_RULES } from './provider-hints.ts';
import { joinContinuationLines } from './smtp-codes.ts';
import { VAGUE_REASONS } from './status-reasons.ts';
import type { BounceReason } from './types.ts';

/**
 * Software- and provider-specific rules ("hints") and how they combine. The reporting MTA's own
 * wording is the strongest evidence; then a local delivery agent's error, then a provider's
 * documented reply texts. The last two also refine a reporting-MTA hint that is only vague (an MTA
 * that says "user unknown" for whatever its next hop refused).
 */

export interface HintContext {
  headers: HeaderField[];
  /** the whole human-readable report text */
  text: string;
  /** the recipient's own block, or the Diagnostic-Code */
  block: string;
  address: string | null;
  /** DSN Remote-MTA, when there is one */
  remoteMta: string | null;
  status: string | null;
  replyCode: number | null;
  command: string | null;
  /** vendor fields of the recipient's DSN block (lower-cased names), empty without a DSN */
  dsnExtensions: Record<string, string>;
}

export interface HintRule {
  name: string;
  /** whether the report as a whole comes from this software (headers and text only; cached per report) */
  report?: (c: HintContext) => boolean;
  /** whether the rule applies to this recipient */
  when?: (c: HintContext) => boolean;
  /** checked in order against the recipient's block; the first match decides */
  says?: [RegExp, BounceReason][];
  /** a reason that depends on more than one phrase */
  decide?: (c: HintContext) => BounceReason | null;
}

// A one-report cache of `report` predicates: a report's recipients are classified one after the
// other, and a report can name hundreds of them.
let cachedReport: { text: string; headers: HeaderField[] } | null = null;
const reportMatches = new Map<HintRule, boolean>();

function fromThisSoftware(rule: HintRule, c: HintContext): boolean {
  if (!rule.report) return true;
  if (!cachedReport || cachedReport.text !== c.text || cachedReport.headers !== c.headers) {
    cachedReport = { text: c.text, headers: c.headers };
    reportMatches.clear();
  }
  let yes = reportMatches.get(rule);
  if (yes === undefined) {
    yes = rule.report(c);
    reportMatches.set(rule, yes);
  }
  return yes;
}

export function hintFrom(rules: HintRule[], c: HintContext): BounceReason | null {
  for (const rule of rules) {
    if (!fromThisSoftware(rule, c) || (rule.when && !rule.when(c))) continue;
    const decided = rule.decide?.(c);
    if (decided) return decided;
    for (const [re, reason] of rule.says ?? []) if (re.test(c.block)) return reason;
  }
  return null;
}

export interface ReasonHint { reason: BounceReason; final: boolean }

/**
 * The hint for one recipient. `final: false` marks a reporting MTA's vague reason (user unknown,
 * system error, ...), which a more specific phrase may still override.
 */
export function reasonHint(context: HintContext): ReasonHint | null {
  // Multi-line replies are matched as one sentence.
  const c = { ...context, block: joinContinuationLines(context.block).replace(/\s+/g, ' ') };
  const mta = hintFrom(MTA_RULES, c);
  if (mta && !VAGUE_REASONS.has(mta)) return { reason: mta, final: true };
  const other = localAgentHint(c) ?? hintFrom(PROVIDER_RULES, c);
  if (other) return { reason: other, final: true };
  return mta ? { reason: mta, final: false } : null;
}
