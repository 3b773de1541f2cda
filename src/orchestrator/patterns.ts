import type { RunStage } from './tables.ts';

/**
 * How a campaign's agents coordinate (issue 7). All three run on the same durable substrate — a
 * run is a row, its next piece of work is one pg-boss job named in the row (engine.ts) — and differ
 * only in where that job is queued, so they reach the same end state from the same state machine:
 *
 * - decentralized: each role is its own worker pool on its own queue; a role that finishes a stage
 *   hands the run straight to the next role's queue (the handoff is the job, committed with the
 *   stage's result). Nobody coordinates.
 * - centralized: the same role workers, but every handoff, timer and wake-up goes to one
 *   orchestrator queue, worked by one loop per process that decides what runs next and dispatches
 *   it, at most K decisions a second (MAILROOM_ORCHESTRATOR_DECISIONS_PER_SECOND): the classic
 *   supervisor, which sees and orders everything, and through which everything must pass.
 * - hybrid (the default): decentralized handoffs, plus a watcher (watcher.ts) that only looks at
 *   checkpoints — a stage started and not finished in time, an agent failure rate — and intervenes.
 */
export const PATTERNS = ['centralized', 'decentralized', 'hybrid'] as const;
export type Pattern = (typeof PATTERNS)[number];

export type Role = 'research' | 'personalize' | 'sequence' | 'send';
export const ROLES: readonly Role[] = ['research', 'personalize', 'sequence', 'send'];

export const ROLE_QUEUES: Record<Role, string> = {
  research: 'campaign-research',
  personalize: 'campaign-personalize',
  sequence: 'campaign-sequence',
  send: 'campaign-send',
};
export const ORCHESTRATOR_QUEUE = 'campaign-orchestrator';
/** Every queue a run job can be in (QUEUES.campaign holds jobs queued before patterns existed). */
export const RUN_QUEUES = [...Object.values(ROLE_QUEUES), ORCHESTRATOR_QUEUE];

/**
 * The role that works a run at this stage. Waiting for a reply (await_reply) is the sequencer's:
 * it decides when the wait is over. A reply that arrives is handled by whichever worker holds the
 * run next (every step looks for one first), so the responder needs no queue of its own.
 */
export function roleOf(stage: RunStage): Role {
  return stage === 'await_reply' || stage === 'finished' ? 'sequence' : stage;
}

/** Where a run's next job goes: the orchestrator's queue (centralized) or its stage's role queue. */
export function queueFor(pattern: Pattern | undefined, stage: RunStage): string {
  return pattern === 'centralized' ? ORCHESTRATOR_QUEUE : ROLE_QUEUES[roleOf(stage)];
}

/**
 * The orchestrator's decision budget: at most `perSecond` decisions a second, in bursts of at most
 * one second's worth. `take` waits for a token; one loop per process takes them in order.
 */
export class DecisionBudget {
  readonly #perSecond: number;
  #tokens: number;
  #at = performance.now();

  constructor(perSecond: number) {
    this.#perSecond = perSecond;
    this.#tokens = Math.min(perSecond, 1);
  }

  async take(): Promise<void> {
    for (;;) {
      const now = performance.now();
      this.#tokens = Math.min(this.#perSecond, this.#tokens + ((now - this.#at) / 1000) * this.#perSecond);
      this.#at = now;
      if (this.#tokens >= 1) {
        this.#tokens -= 1;
        return;
      }
      await new Promise((r) => setTimeout(r, Math.ceil(((1 - this.#tokens) / this.#perSecond) * 1000)));
    }
  }
}
