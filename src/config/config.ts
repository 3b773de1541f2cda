import { hostname } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { LLM_KEY_ENV, LLM_PROVIDERS, type LlmProvider } from '../orchestrator/spec.ts';
import { parseAllowList } from '../webhooks/ssrf.ts';

/**
 * All configuration comes from the environment and is validated once, at start. Every other
 * module receives a typed `Config` and never reads `process.env` itself, so a test can start a
 * whole Mailroom with an object literal.
 */
const port = z.coerce.number().int().min(0).max(65535);
const bytes = z.coerce.number().int().positive();
const domainList = z
  .string()
  .transform((s) => s.split(',').map((d) => d.trim().toLowerCase()).filter(Boolean))
  .pipe(z.array(z.string().regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/, 'not a domain name')).min(1));

const EnvSchema = z.object({
  MAILROOM_DATA_DIR: z.string().default('./.mailroom'),
  DATABASE_URL: z.string().url().optional(),
  MAILROOM_DATABASE_SCHEMA: z.string().regex(/^[a-z_][a-z0-9_]*$/).default('public'),
  MAILROOM_DOMAIN: domainList.default(['mailroom.localhost']),
  MAILROOM_HOST: z.string().default('127.0.0.1'),
  MAILROOM_HTTP_PORT: port.default(8080),
  MAILROOM_SMTP_HOST: z.string().optional(),
  MAILROOM_SMTP_PORT: port.default(2525),
  MAILROOM_HOSTNAME: z.string().default(hostname()),
  MAILROOM_TLS_CERT: z.string().optional(),
  MAILROOM_TLS_KEY: z.string().optional(),
  MAILROOM_ADMIN_TOKEN: z.string().min(20, 'MAILROOM_ADMIN_TOKEN must be at least 20 characters').optional(),
  MAILROOM_MAX_MESSAGE_SIZE: bytes.default(25 * 1024 * 1024),
  MAILROOM_MAX_HEADER_SIZE: bytes.default(256 * 1024),
  MAILROOM_MAX_RECIPIENTS: z.coerce.number().int().min(1).default(100),
  MAILROOM_MAX_CONNECTIONS_PER_IP: z.coerce.number().int().min(1).default(20),
  MAILROOM_MAX_CONNECTIONS: z.coerce.number().int().min(1).default(1000),
  MAILROOM_SHUTDOWN_GRACE_SECONDS: z.coerce.number().min(1).max(600).default(30),
  // Outbound (sending).
  MAILROOM_SMTP_RELAY_URL: z.string().url().optional(),
  MAILROOM_DNS_SERVERS: z.string().optional(),
  MAILROOM_MX_PORT: port.default(25),
  MAILROOM_IDEMPOTENCY_WINDOW_HOURS: z.coerce.number().positive().default(24),
  MAILROOM_SEND_LIFETIME_HOURS: z.coerce.number().positive().default(72),
  MAILROOM_MAX_SEND_SIZE: bytes.default(10 * 1024 * 1024),
  MAILROOM_SEND_RETRY_BASE_SECONDS: z.coerce.number().positive().default(60),
  MAILROOM_PUBLIC_URL: z.string().url().optional(),
  MAILROOM_BOUNCE_RATE_THRESHOLD: z.coerce.number().min(0).max(1).default(0.05),
  MAILROOM_BOUNCE_RATE_MIN_SENDS: z.coerce.number().int().min(1).default(50),
  MAILROOM_BOUNCE_RATE_WINDOW_HOURS: z.coerce.number().positive().default(24),
  MAILROOM_THROTTLE_RECHECK_SECONDS: z.coerce.number().positive().default(60),
  // Events, streams and webhooks.
  MAILROOM_EVENT_RETENTION_DAYS: z.coerce.number().positive().default(30),
  MAILROOM_EVENT_POLL_MS: z.coerce.number().int().min(20).max(10_000).default(250),
  MAILROOM_WAIT_MAX_SECONDS: z.coerce.number().positive().max(3600).default(300),
  MAILROOM_WEBHOOK_ALLOW: z.string().optional(),
  MAILROOM_WEBHOOK_TIMEOUT_SECONDS: z.coerce.number().positive().max(60).default(10),
  MAILROOM_WEBHOOK_RETRY_HOURS: z.coerce.number().positive().default(24),
  MAILROOM_WEBHOOK_RETRY_BASE_SECONDS: z.coerce.number().positive().default(5),
  // Campaigns.
  MAILROOM_AGENT_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(60_000),
  MAILROOM_AGENT_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(5),
  MAILROOM_AGENT_RETRY_BASE_MS: z.coerce.number().int().min(10).max(3_600_000).default(2_000),
  MAILROOM_AGENTS_MODULE: z.string().optional(),
  MAILROOM_ORCHESTRATOR_DECISIONS_PER_SECOND: z.coerce.number().positive().max(100_000).default(100),
  // Model-backed agent roles (orchestrator/llm/): the server's model; a campaign's llm block overrides it.
  MAILROOM_LLM_PROVIDER: z.enum(LLM_PROVIDERS, { error: `one of ${LLM_PROVIDERS.join(', ')}` }).optional(),
  MAILROOM_LLM_BASE_URL: z.url({ protocol: /^https?$/, error: 'an http(s) URL, e.g. http://127.0.0.1:11434/v1' }).optional(),
  MAILROOM_LLM_MODEL: z.string().min(1, 'a model name, e.g. gpt-4o-mini').optional(),
  MAILROOM_LLM_API_KEY: z.string().min(1).optional(),
  MAILROOM_LLM_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
  MAILROOM_LLM_MAX_RETRIES: z.coerce.number().int().min(0).max(10).default(2),
  MAILROOM_LLM_ALLOW: z.string().optional(),
  MAILROOM_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export interface Config {
  dataDir: string;
  databaseUrl?: string;
  databaseSchema: string;
  domains: string[];
  host: string;
  httpPort: number;
  smtpHost: string;
  smtpPort: number;
  hostname: string;
  tls?: { cert: string; key: string };
  adminToken?: string;
  maxMessageSize: number;
  maxHeaderSize: number;
  maxRecipients: number;
  maxConnectionsPerIp: number;
  maxConnections: number;
  /** On SIGTERM, how long open SMTP sessions get to finish before they are told 421 and closed. */
  shutdownGraceSeconds: number;
  logLevel: string;
  outbound: {
    /** smtp:// or smtps:// URL of a relay; when set, mail for foreign domains goes there instead of to their MX. */
    relayUrl?: string;
    /** DNS servers for MX lookups and verification (`host` or `host:port`); the system's when empty. */
    dnsServers: string[];
    /** Port of remote MX hosts: 25 on the internet; tests point it at a local sink. */
    mxPort: number;
    idempotencyWindowHours: number;
    /** How long a message keeps being retried after temporary failures before it fails for good. */
    lifetimeHours: number;
    /** Largest composed message (attachments included) the send API accepts. */
    maxSendSize: number;
    /** First retry delay after a temporary failure; doubles with each attempt (with jitter), capped at 1 h. */
    retryBaseSeconds: number;
    /** A sending domain whose bounce rate over the window exceeds this (with at least minSends) is paused. */
    bounceRate: { threshold: number; minSends: number; windowHours: number };
    /** How often mail held by a paused domain looks again whether it was resumed. */
    throttleRecheckSeconds: number;
    /** Base URL recipients reach the HTTP server at (one-click unsubscribe links); default http://host:port. */
    publicUrl?: string;
  };
  events: {
    retentionDays: number;
    /** How often a process looks for new events while a stream, a waiter or the webhook dispatcher listens. */
    pollMs: number;
    /** Upper bound of a wait-for-reply long-poll. */
    waitMaxSeconds: number;
  };
  webhooks: {
    /** MAILROOM_WEBHOOK_ALLOW as written: CIDRs or host names webhook URLs may reach although private. */
    allow: string;
    timeoutSeconds: number;
    /** A delivery keeps being retried this long, then fails and its endpoint is disabled. */
    retryHours: number;
    retryBaseSeconds: number;
  };
  campaigns: {
    /** Longest an agent call may take before it counts as a failure (retried, then dead-lettered). */
    agentTimeoutMs: number;
    /** Failed agent calls in a row before a run is dead-lettered. */
    maxAttempts: number;
    retryBaseMs: number;
    /** A module whose default export (or `agents`) registers agent implementations by role and name. */
    agentsModule?: string;
    /** The centralized pattern's orchestrator loop: at most this many decisions a second per process (K). */
    decisionsPerSecond: number;
  };
  /** The server's model for the "llm" agent roles; each field may be overridden by a campaign's `llm` block. */
  llm: {
    provider?: LlmProvider;
    baseUrl?: string;
    model?: string;
    apiKey?: string;
    /** Longest one model call may take, its retries included. */
    timeoutMs: number;
    /** Retries of a model call the endpoint refused for the moment (429, 5xx, a dropped connection). */
    maxRetries: number;
    /**
     * The environment's `*_API_KEY` variables (LLM_KEY_ENV), which a campaign's `llm.api_key_env`
     * may name: captured here so that nothing else reads process.env, and nothing else is reachable.
     */
    keys: Readonly<Record<string, string>>;
    /**
     * Where a campaign's own `llm.base_url` may point: public addresses, plus MAILROOM_LLM_ALLOW (as
     * written: CIDRs or host names), resolved through these DNS servers. The server's own
     * MAILROOM_LLM_BASE_URL is the operator's choice and is not judged.
     */
    egress: { allow: string; dnsServers: string[] };
  };
}

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  for (const name of ['MAILROOM_WEBHOOK_ALLOW', 'MAILROOM_LLM_ALLOW'] as const) {
    try {
      parseAllowList(e[name]);
    } catch (err) {
      throw new ConfigError(`invalid configuration:\n  ${name}: ${(err as Error).message}`);
    }
  }
  if (Boolean(e.MAILROOM_TLS_CERT) !== Boolean(e.MAILROOM_TLS_KEY)) {
    throw new ConfigError('invalid configuration: MAILROOM_TLS_CERT and MAILROOM_TLS_KEY must be set together');
  }
  const dnsServers = (e.MAILROOM_DNS_SERVERS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return {
    dataDir: path.resolve(e.MAILROOM_DATA_DIR),
    databaseUrl: e.DATABASE_URL,
    databaseSchema: e.MAILROOM_DATABASE_SCHEMA,
    domains: e.MAILROOM_DOMAIN,
    host: e.MAILROOM_HOST,
    httpPort: e.MAILROOM_HTTP_PORT,
    smtpHost: e.MAILROOM_SMTP_HOST ?? e.MAILROOM_HOST,
    smtpPort: e.MAILROOM_SMTP_PORT,
    hostname: e.MAILROOM_HOSTNAME,
    tls: e.MAILROOM_TLS_CERT && e.MAILROOM_TLS_KEY ? { cert: e.MAILROOM_TLS_CERT, key: e.MAILROOM_TLS_KEY } : undefined,
    adminToken: e.MAILROOM_ADMIN_TOKEN,
    maxMessageSize: e.MAILROOM_MAX_MESSAGE_SIZE,
    maxHeaderSize: e.MAILROOM_MAX_HEADER_SIZE,
    maxRecipients: e.MAILROOM_MAX_RECIPIENTS,
    maxConnectionsPerIp: e.MAILROOM_MAX_CONNECTIONS_PER_IP,
    maxConnections: e.MAILROOM_MAX_CONNECTIONS,
    shutdownGraceSeconds: e.MAILROOM_SHUTDOWN_GRACE_SECONDS,
    logLevel: e.MAILROOM_LOG_LEVEL,
    outbound: {
      relayUrl: e.MAILROOM_SMTP_RELAY_URL,
      dnsServers,
      mxPort: e.MAILROOM_MX_PORT,
      idempotencyWindowHours: e.MAILROOM_IDEMPOTENCY_WINDOW_HOURS,
      lifetimeHours: e.MAILROOM_SEND_LIFETIME_HOURS,
      maxSendSize: e.MAILROOM_MAX_SEND_SIZE,
      retryBaseSeconds: e.MAILROOM_SEND_RETRY_BASE_SECONDS,
      bounceRate: { threshold: e.MAILROOM_BOUNCE_RATE_THRESHOLD, minSends: e.MAILROOM_BOUNCE_RATE_MIN_SENDS, windowHours: e.MAILROOM_BOUNCE_RATE_WINDOW_HOURS },
      throttleRecheckSeconds: e.MAILROOM_THROTTLE_RECHECK_SECONDS,
      publicUrl: e.MAILROOM_PUBLIC_URL?.replace(/\/+$/, ''),
    },
    events: { retentionDays: e.MAILROOM_EVENT_RETENTION_DAYS, pollMs: e.MAILROOM_EVENT_POLL_MS, waitMaxSeconds: e.MAILROOM_WAIT_MAX_SECONDS },
    webhooks: {
      allow: e.MAILROOM_WEBHOOK_ALLOW ?? '',
      timeoutSeconds: e.MAILROOM_WEBHOOK_TIMEOUT_SECONDS,
      retryHours: e.MAILROOM_WEBHOOK_RETRY_HOURS,
      retryBaseSeconds: e.MAILROOM_WEBHOOK_RETRY_BASE_SECONDS,
    },
    campaigns: {
      agentTimeoutMs: e.MAILROOM_AGENT_TIMEOUT_MS,
      maxAttempts: e.MAILROOM_AGENT_MAX_ATTEMPTS,
      retryBaseMs: e.MAILROOM_AGENT_RETRY_BASE_MS,
      agentsModule: e.MAILROOM_AGENTS_MODULE,
      decisionsPerSecond: e.MAILROOM_ORCHESTRATOR_DECISIONS_PER_SECOND,
    },
    llm: {
      provider: e.MAILROOM_LLM_PROVIDER,
      baseUrl: e.MAILROOM_LLM_BASE_URL?.replace(/\/+$/, ''),
      model: e.MAILROOM_LLM_MODEL,
      apiKey: e.MAILROOM_LLM_API_KEY,
      timeoutMs: e.MAILROOM_LLM_TIMEOUT_MS,
      maxRetries: e.MAILROOM_LLM_MAX_RETRIES,
      keys: Object.fromEntries(Object.entries(env).filter((kv): kv is [string, string] => LLM_KEY_ENV.test(kv[0]) && Boolean(kv[1]))),
      egress: { allow: e.MAILROOM_LLM_ALLOW ?? '', dnsServers },
    },
  };
}
