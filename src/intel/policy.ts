import type { InjectionVerdict } from './injection.ts';

/**
 * An inbox's policy for risky mail: at or above `threshold` (an injection score), apply `action`.
 *   allow        deliver anyway (the verdict is still attached);
 *   flag         deliver, marked `flagged`;
 *   quarantine   store, keep out of default listings (and, later, webhooks and workflows) until released;
 *   needs_human  like quarantine, but waiting for a person's decision.
 * A score the scorer could not compute (`unknown`) counts as over every threshold: unknown is never safe.
 */
export type InjectionAction = 'allow' | 'flag' | 'quarantine' | 'needs_human';
export type Disposition = 'delivered' | 'flagged' | 'quarantined' | 'needs_human';

/** An inbox's policy when it sets none (the column defaults of migration 004). */
export const DEFAULT_POLICY = { action: 'quarantine', threshold: 0.7 } as const satisfies { action: InjectionAction; threshold: number };

export function decide(v: InjectionVerdict, policy: { action: InjectionAction; threshold: number }): Disposition {
  const over = v.level === 'unknown' || v.score >= policy.threshold;
  if (!over || policy.action === 'allow') return 'delivered';
  return policy.action === 'flag' ? 'flagged' : policy.action === 'quarantine' ? 'quarantined' : 'needs_human';
}

/** Dispositions hidden from default listings until released. */
export const HELD: readonly Disposition[] = ['quarantined', 'needs_human'];
