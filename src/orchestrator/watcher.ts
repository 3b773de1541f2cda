import { sql, type Kysely } from 'kysely';
import type { PgBoss } from 'pg-boss';
import { appendEvents } from '../events/events.ts';
import type { Logger } from '../log.ts';
import type { Database } from '../store/schema.ts';
import { ROLE_QUEUES } from './patterns.ts';
import { failingCampaigns, pauseCampaign, stuckRuns, wakeRuns } from './store.ts';

/**
 * The hybrid pattern's orchestrator (patterns.ts): it does not drive runs — their roles hand them
 * to each other — it watches checkpoints and steps in. One process at a time (a try-lock per pass):
 *
 * - a stage started and not finished within the campaign's `checkpoints.stage_seconds` (the worker
 *   that took it died, or hangs) is re-queued, so another worker or process takes it at once
 *   instead of when pg-boss notices the missing heartbeat; the new job fences the old one (the run
 *   names one job, and a commit needs the version it read), so a worker that was only slow cannot
 *   act twice. Event `run.rerouted`.
 * - a campaign whose agent calls fail more than `checkpoints.failure_rate` of the time (a model
 *   endpoint down, a bad key) is paused before every run burns its attempts and is dead-lettered:
 *   `campaign.paused` with the figures; resuming it picks every run up where it stood.
 *
 * Dead-lettering stays the engine's: a run whose agent keeps failing ends `dead` after its attempts.
 */
export interface WatcherOptions {
  db: Kysely<Database>;
  boss: PgBoss;
  log: Logger;
  /** pg-boss's schema (jobs/boss.ts bossSchemaFor). */
  bossSchema: string;
  /** Told which campaigns it paused (the engine drops its cached state). */
  onPaused?: (campaignId: string) => void;
  onWake?: () => void;
  intervalMs?: number;
}

const FAILURE_WINDOW_SECONDS = 300;
/** The failure rate needs a scan of recent spans: every few passes is enough. */
const FAILURE_EVERY = 5;

export class CheckpointWatcher {
  readonly #o: WatcherOptions;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #passes = 0;

  constructor(o: WatcherOptions) {
    this.#o = o;
  }

  start(): void {
    this.#timer = setInterval(() => {
      this.#running ??= this.pass().then(() => {}, (err: unknown) => this.#o.log.warn({ err }, 'campaign watcher pass failed')).finally(() => { this.#running = null; });
    }, this.#o.intervalMs ?? 2_000);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.#running;
  }

  /** One look at every checkpoint; returns what it did. */
  async pass(): Promise<{ rerouted: number; paused: string[] }> {
    const { db, boss, bossSchema } = this.#o;
    const checkFailures = this.#passes++ % FAILURE_EVERY === 0;
    const out = await db.transaction().execute(async (trx) => {
      const { rows } = await sql<{ ok: boolean }>`SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.campaign-watcher')) AS ok`.execute(trx);
      if (!rows[0]?.ok) return { rerouted: 0, paused: [] as string[] };
      const stuck = await stuckRuns(trx, bossSchema, Object.values(ROLE_QUEUES));
      const woken = new Set(await wakeRuns(trx, boss, stuck.map((r) => r.id)));
      await appendEvents(trx, stuck.filter((r) => woken.has(r.id)).map((r) => ({
        type: 'run.rerouted' as const, inbox_id: r.inbox_id, trace_id: r.trace_id,
        data: { run_id: r.id, campaign_id: r.campaign_id, stage: r.stage, stuck_seconds: Math.round(r.seconds) },
      })));
      const paused: string[] = [];
      if (checkFailures) {
        for (const f of await failingCampaigns(trx, FAILURE_WINDOW_SECONDS)) {
          const reason = `agent failure rate ${(f.failed / f.calls).toFixed(2)} (${f.failed} of ${f.calls} calls in ${FAILURE_WINDOW_SECONDS / 60} min) above the campaign's checkpoint`;
          if (await pauseCampaign(trx, f.campaign_id, { reason, calls: f.calls, failed: f.failed })) paused.push(f.campaign_id);
        }
      }
      return { rerouted: woken.size, paused };
    });
    for (const id of out.paused) {
      this.#o.log.warn({ campaign: id }, 'campaign paused by the watcher: its agents keep failing');
      this.#o.onPaused?.(id);
    }
    if (out.rerouted) {
      this.#o.log.info({ runs: out.rerouted }, 'campaign watcher re-queued stages that did not finish in time');
      this.#o.onWake?.();
    }
    return out;
  }
}
