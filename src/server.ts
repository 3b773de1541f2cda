import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { sql } from 'kysely';
import type { PgBoss } from 'pg-boss';
import { createApi } from './api/app.ts';
import { ensureAdminToken } from './auth/bootstrap.ts';
import type { Config } from './config/config.ts';
import { DatabaseAcceptor, SpoolAcceptor, type Acceptor } from './inbound/accept.ts';
import { createAnalyzer } from './inbound/analyzer.ts';
import { startIngestWorker } from './inbound/ingest.ts';
import { hasUnreadReceipt } from './inbound/receipts.ts';
import { Drafts, startDraftWorker } from './drafts/drafts.ts';
import { startSmtpServer, type InboundSmtp } from './inbound/smtp-server.ts';
import { Inboxes } from './inboxes/inboxes.ts';
import { startBoss } from './jobs/boss.ts';
import { createLogger, type Logger } from './log.ts';
import { Messages } from './messages/messages.ts';
import { lockDataDir } from './store/data-dir-lock.ts';
import { openStore, type Store } from './store/database.ts';
import { createResolver } from './dns/resolver.ts';
import { Domains } from './outbound/domains.ts';
import { Outbox } from './outbound/outbox.ts';
import { createPreparer } from './outbound/prepare.ts';
import { Limits } from './outbound/limits.ts';
import { Unsubscribe } from './outbound/unsubscribe.ts';
import { Transports } from './outbound/transports.ts';
import { startSendWorker } from './outbound/worker.ts';
import { inboxForVerp, startReportWorker } from './outbound/reports.ts';
import { EventFeed } from './events/feed.ts';
import { EventTail } from './events/tail.ts';
import { Webhooks } from './webhooks/webhooks.ts';
import { WebhookDispatcher } from './webhooks/dispatcher.ts';
import { dnsLookup, parseAllowList } from './webhooks/ssrf.ts';
import { startOrchestrator, type Orchestrator } from './orchestrator/index.ts';
import type { AgentRegistry } from './orchestrator/roles.ts';
import type { EngineOptions } from './orchestrator/engine.ts';
import { TokenCache } from './auth/tokens.ts';
import { ChangeListener } from './store/change-notices.ts';

/**
 * The composition root: opens the store, starts the job engine, the SMTP server and the HTTP API,
 * and knows how to stop them in the right order. Nothing else wires modules together.
 */
export interface Mailroom {
  config: Config;
  store: Store;
  boss: PgBoss;
  acceptor: Acceptor;
  inboxes: Inboxes;
  messages: Messages;
  outbox: Outbox;
  domains: Domains;
  feed: EventFeed;
  orchestrator: Orchestrator;
  smtpPort: number;
  httpPort: number;
  /** The admin token created on this start (first start only), or null. */
  createdAdminToken: string | null;
  log: Logger;
  stop(): Promise<void>;
}

export interface StartOptions {
  log?: Logger;
  /** Embedded only: where PGlite keeps its files; null for an in-memory database (tests). */
  pgliteDir?: string | null;
  /** Agent implementations campaigns may name, besides "builtin" (merged over MAILROOM_AGENTS_MODULE's). */
  agents?: AgentRegistry;
  /** Campaign engine settings beyond the configuration (tests: faster retries). */
  engine?: Partial<EngineOptions>;
}

/** MAILROOM_AGENTS_MODULE: a user's TypeScript or JavaScript module registering agents. */
async function loadAgentsModule(path: string | undefined): Promise<AgentRegistry> {
  if (!path) return {};
  const { pathToFileURL } = await import('node:url');
  const { resolve } = await import('node:path');
  const mod = await import(pathToFileURL(resolve(path)).href) as { default?: AgentRegistry; agents?: AgentRegistry };
  const registry = mod.agents ?? mod.default;
  if (!registry || typeof registry !== 'object') throw new Error(`MAILROOM_AGENTS_MODULE ${path} exports no agents (export default { respond: { name: impl } })`);
  return registry;
}

export async function startMailroom(config: Config, opts: StartOptions = {}): Promise<Mailroom> {
  const log = opts.log ?? createLogger(config.logLevel);
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const cleanups: (() => Promise<unknown>)[] = [];
  const stopAll = async () => {
    for (const fn of cleanups.reverse()) await fn().catch((err) => log.warn({ err }, 'error while stopping'));
    cleanups.length = 0;
  };
  try {
    // Exactly one process may own an embedded data directory.
    if (!config.databaseUrl) cleanups.push(await lockDataDir(config.dataDir));

    const store = await openStore({ databaseUrl: config.databaseUrl, schema: config.databaseSchema, dataDir: config.dataDir, pgliteDir: opts.pgliteDir });
    cleanups.push(() => store.close());
    const createdAdminToken = await ensureAdminToken(store.db, { adminToken: config.adminToken, dataDir: config.dataDir });

    const boss = await startBoss(store, (err) => log.error({ err }, 'job engine error'));
    cleanups.push(() => boss.stop({ graceful: true, timeout: 10_000 }));

    // Received mail is parsed and scored on worker threads (inbound/analyzer.ts), with their own
    // cached resolvers on MAILROOM_DNS_SERVERS.
    const analyzer = createAnalyzer(store, { auth: { authservId: config.hostname, dnsServers: config.outbound.dnsServers, trustedDomains: config.domains } });
    cleanups.push(() => analyzer.close());
    const acceptor: Acceptor = store.engine === 'pglite'
      ? await SpoolAcceptor.open(store, boss, log, config.dataDir, { analyzer })
      : new DatabaseAcceptor(store, boss);
    cleanups.push(() => acceptor.close());

    await startIngestWorker(store, boss, log, analyzer, acceptor instanceof DatabaseAcceptor ? acceptor : undefined);
    // Sending (and webhooks) use one resolver (MAILROOM_DNS_SERVERS).
    const resolver = createResolver(config.outbound.dnsServers);

    // On PostgreSQL, tokens and inbox rows are cached by every process, which hear each other's
    // changes (store/change-notices.ts); embedded, this process is the sole writer.
    let notices: ChangeListener | null = null;
    if (store.postgres) {
      notices = new ChangeListener(store.postgres, log);
      cleanups.push(() => notices!.close());
      await notices.start();
    }
    const inboxes = new Inboxes(store.db, config.domains, { notices });
    const messages = new Messages(store.db, store.blobs, inboxes);

    // Sending: every served domain has a DKIM key from the first start on.
    const domains = new Domains(store.db, resolver, config.hostname);
    await domains.ensure(config.domains);
    const transports = new Transports({ config, resolver, inboxes, acceptor, log });
    cleanups.push(async () => transports.close());
    const limits = new Limits(store.db);
    const unsubscribe = new Unsubscribe(store.db);
    // Known once the HTTP server listens (port 0 picks one); links are only made after that.
    let publicUrl = config.outbound.publicUrl ?? '';
    const preparer = createPreparer();
    cleanups.push(() => preparer.close());
    const outbox = new Outbox({ db: store.db, blobs: store.blobs, boss, inboxes, messages, domains, limits, unsubscribe, publicUrl: () => publicUrl, config: config.outbound, preparer });
    await startSendWorker({ store, boss, transports, limits, config, log });
    await startReportWorker({ store, log, unsubscribe, bounceRate: config.outbound.bounceRate }, boss);
    // Drafts: approved ones are sent by draft-send jobs (or by their campaign run).
    const drafts = new Drafts({ db: store.db, boss, inboxes, outbox, log, maxSendSize: config.outbound.maxSendSize });
    await startDraftWorker(drafts, boss);

    // The event log's readers: one tail per process wakes streams, waiters and webhook dispatch.
    const feed = new EventFeed(store.db);
    const tail = new EventTail(feed, config.events.pollMs);
    cleanups.push(async () => tail.stop());
    const prune = async () => {
      const n = await feed.prune(new Date(Date.now() - config.events.retentionDays * 86_400_000)).catch((err) => { log.warn({ err }, 'event retention pass failed'); return 0; });
      if (n) log.info({ deleted: n }, 'events past retention deleted');
    };
    void prune();
    const pruneTimer = setInterval(() => void prune(), 3_600_000);
    pruneTimer.unref();
    cleanups.push(async () => clearInterval(pruneTimer));

    // Webhooks: the same resolver as mail (MAILROOM_DNS_SERVERS), the operator's allow list.
    const webhookTargets = { lookup: dnsLookup(resolver), allow: parseAllowList(config.webhooks.allow) };
    const webhooks = new Webhooks(store.db, feed, webhookTargets);
    const dispatcher = new WebhookDispatcher({
      db: store.db, tail, ...webhookTargets, log,
      timeoutMs: config.webhooks.timeoutSeconds * 1000, retryHours: config.webhooks.retryHours, retryBaseSeconds: config.webhooks.retryBaseSeconds,
    });
    dispatcher.start();
    cleanups.push(() => dispatcher.stop());

    // Campaigns: the engine works run jobs, the router wakes runs on replies and bounces.
    const fromModule = await loadAgentsModule(config.campaigns.agentsModule);
    const registry: AgentRegistry = {};
    for (const role of ['research', 'personalize', 'sequence', 'respond'] as const) {
      registry[role] = { ...(fromModule[role] ?? {}), ...(opts.agents?.[role] ?? {}) } as never;
    }
    const orchestrator = await startOrchestrator({
      store, db: store.db, boss, tail, outbox, messages, inboxes, log, registry, llm: config.llm,
      unreadInbound: async (inboxId) => acceptor.holdsUnwritten(inboxId) || hasUnreadReceipt(store.db, inboxId),
      options: { agentTimeoutMs: config.campaigns.agentTimeoutMs, maxAttempts: config.campaigns.maxAttempts, retryBaseMs: config.campaigns.retryBaseMs, decisionsPerSecond: config.campaigns.decisionsPerSecond, ...opts.engine },
    });
    cleanups.push(() => orchestrator.stop());

    const app = createApi({
      feed,
      tail,
      webhooks,
      campaigns: orchestrator.campaigns,
      drafts,
      waitMaxSeconds: config.events.waitMaxSeconds,
      db: store.db,
      // Exact embedded (this process is the database's only writer, by the data-dir lock) and on
      // PostgreSQL (revocations made by other processes arrive as change notices).
      tokenCache: new TokenCache(notices),
      inboxes,
      messages,
      outbox,
      domains,
      limits,
      boss,
      unsubscribe,
      maxSendSize: config.outbound.maxSendSize,
      log,
      health: async () => {
        await sql`SELECT 1`.execute(store.db);
        return { ok: true, engine: store.engine };
      },
    });
    const http = await new Promise<ServerType>((resolve, reject) => {
      const s = serve({ fetch: app.fetch, port: config.httpPort, hostname: config.host }, () => resolve(s));
      s.once('error', reject);
    });
    cleanups.push(() => new Promise<void>((resolve) => { http.close(() => resolve()); (http as any).closeAllConnections?.(); }));
    const httpPort = (http.address() as AddressInfo).port;
    publicUrl ||= `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${httpPort}`;

    const smtp: InboundSmtp = await startSmtpServer({ config, inboxes, acceptor, log, verpInbox: (id) => inboxForVerp(store, id) });
    // Registered last so it stops first: no new mail is accepted while the rest shuts down.
    cleanups.push(() => smtp.close());

    log.info({ engine: store.engine, smtp: `${config.smtpHost}:${smtp.port}`, http: `${config.host}:${httpPort}`, domains: config.domains }, 'mailroom started');
    return {
      config, store, boss, acceptor, inboxes, messages, outbox, domains, feed, orchestrator, log, createdAdminToken,
      smtpPort: smtp.port,
      httpPort,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
