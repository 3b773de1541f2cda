import type { Kysely } from 'kysely';
import type { PgBoss } from 'pg-boss';
import type { EventTail } from '../events/tail.ts';
import type { Inboxes } from '../inboxes/inboxes.ts';
import { bossSchemaFor, retryOrphanedJobs, QUEUES } from '../jobs/boss.ts';
import type { Logger } from '../log.ts';
import type { Messages } from '../messages/messages.ts';
import type { Outbox } from '../outbound/outbox.ts';
import type { Store } from '../store/database.ts';
import type { Database } from '../store/schema.ts';
import { Campaigns } from './campaigns.ts';
import { CampaignEngine, type EngineOptions } from './engine.ts';
import type { LlmServerSettings } from './llm/settings.ts';
import type { AgentRegistry } from './roles.ts';
import { RUN_QUEUES } from './patterns.ts';
import { CampaignRouter } from './router.ts';
import { CheckpointWatcher } from './watcher.ts';

/**
 * The orchestrator of one process: the campaign service (API side), the engine that works run jobs
 * and the router that turns events into wake-ups. Any number of processes may run one each on a
 * shared PostgreSQL: jobs go to one of them, routing to one at a time, and every effect is
 * idempotent (engine.ts says how).
 */
export interface OrchestratorDeps {
  store: Store;
  db: Kysely<Database>;
  boss: PgBoss;
  tail: EventTail;
  outbox: Outbox;
  messages: Messages;
  inboxes: Inboxes;
  log: Logger;
  registry?: AgentRegistry;
  /** The server's model for roles set to "llm" (config.llm). */
  llm?: LlmServerSettings;
  options?: Partial<EngineOptions>;
  /** engine.ts `EngineDeps.unreadInbound`. */
  unreadInbound?: (inboxId: string) => Promise<boolean>;
}

export interface Orchestrator {
  campaigns: Campaigns;
  engine: CampaignEngine;
  stop(): Promise<void>;
}

export async function startOrchestrator(d: OrchestratorDeps): Promise<Orchestrator> {
  const campaigns = new Campaigns({ db: d.db, boss: d.boss, inboxes: d.inboxes, registry: d.registry, llm: d.llm });
  // Completion is checked shortly after runs end, at most a few times a second, whatever the rate of endings.
  let completing: NodeJS.Timeout | null = null;
  const onRunEnded = () => {
    completing ??= setTimeout(() => {
      completing = null;
      campaigns.completeFinished().catch((err) => d.log.warn({ err }, 'campaign completion check failed'));
    }, 250);
  };
  const engine = new CampaignEngine({ db: d.db, boss: d.boss, outbox: d.outbox, messages: d.messages, registry: d.registry, llm: d.llm, log: d.log, options: d.options, onRunEnded, unreadInbound: d.unreadInbound });
  campaigns.attach(engine);
  if (d.store.engine === 'pglite') for (const q of [QUEUES.campaign, ...RUN_QUEUES]) await retryOrphanedJobs(d.store, d.boss, d.log, q);
  await engine.start();
  const router = new CampaignRouter({ db: d.db, boss: d.boss, tail: d.tail, log: d.log, onWake: () => engine.nudge() });
  router.start();
  const watcher = new CheckpointWatcher({
    db: d.db, boss: d.boss, log: d.log, bossSchema: bossSchemaFor(d.store.postgres?.schema ?? null),
    onPaused: (id) => engine.forget(id), onWake: () => engine.nudge(), ...(d.options?.watchIntervalMs ? { intervalMs: d.options.watchIntervalMs } : {}),
  });
  watcher.start();
  // A campaign whose last runs ended while no process was up is completed on the next start.
  void campaigns.completeFinished().catch(() => {});
  return {
    campaigns,
    engine,
    async stop() {
      await router.stop();
      await watcher.stop();
      if (completing) clearTimeout(completing);
    },
  };
}

export { Campaigns } from './campaigns.ts';
export { CampaignSpec, defineCampaign } from './spec.ts';
export type * from './roles.ts';
