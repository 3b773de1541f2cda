import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig, type Config } from '../../src/config/config.ts';
import { bossSchemaFor } from '../../src/jobs/boss.ts';
import { startMailroom, type Mailroom, type StartOptions } from '../../src/server.ts';
import { createLogger } from '../../src/log.ts';

/**
 * Every test file runs its cases once per engine, as Kysely's suite loops over dialects:
 *   for (const engine of ENGINES) describe(`${engine}: …`, () => { … })
 * `pglite` is the embedded default; `postgres` is the real server at MAILROOM_TEST_DATABASE_URL
 * (default postgres://postgres@127.0.0.1:5432/test), one fresh schema per Mailroom started.
 * Outside CI a missing PostgreSQL skips its half with a warning; with CI=true it fails.
 */
export type EngineName = 'pglite' | 'postgres';

export const TEST_DATABASE_URL = process.env.MAILROOM_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export const ENGINES: EngineName[] = (process.env.MAILROOM_TEST_ENGINES ?? 'pglite,postgres')
  .split(',')
  .map((e) => e.trim())
  .filter((e): e is EngineName => e === 'pglite' || e === 'postgres');

let pgAvailable: Promise<boolean> | null = null;
export function postgresAvailable(): Promise<boolean> {
  pgAvailable ??= (async () => {
    const c = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 3000 });
    try {
      await c.connect();
      await c.query('SELECT 1');
      return true;
    } catch (err) {
      if (process.env.CI === 'true') throw new Error(`PostgreSQL is required in CI but unreachable at ${TEST_DATABASE_URL}: ${(err as Error).message}`);
      process.stderr.write(`warning: PostgreSQL unreachable at ${TEST_DATABASE_URL}; skipping the postgres half of the suite\n`);
      return false;
    } finally {
      await c.end().catch(() => {});
    }
  })();
  return pgAvailable;
}

/** `skip` option for describe(): skips the postgres half when no server is reachable (outside CI). */
export async function skipEngine(engine: EngineName): Promise<boolean | string> {
  if (engine === 'postgres' && !(await postgresAvailable())) return 'PostgreSQL unreachable';
  return false;
}

export interface TestMailroom extends Mailroom {
  engine: EngineName;
  adminToken: string;
  api: ApiClient;
  /** Stops Mailroom and deletes its data (temp dir, PostgreSQL schemas). */
  destroy(): Promise<void>;
}

export interface ApiClient {
  (method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any; headers: Headers; bytes: Buffer }>;
  base: string;
}

export function apiClient(base: string, defaultToken: string): ApiClient {
  const fn = (async (method: string, p: string, body?: unknown, token = defaultToken) => {
    const res = await fetch(base + p, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const bytes = Buffer.from(await res.arrayBuffer());
    const ct = res.headers.get('content-type') ?? '';
    const parsed = /json/.test(ct) && bytes.length ? JSON.parse(bytes.toString('utf8')) : bytes.toString('utf8');
    return { status: res.status, body: parsed, headers: res.headers, bytes };
  }) as ApiClient;
  fn.base = base;
  return fn;
}

export function uniqueSchema(): string {
  return `t_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
}

/** Drops a Mailroom schema and its pg-boss schema. */
export async function dropSchemas(schema: string, connectionString = TEST_DATABASE_URL): Promise<void> {
  const c = new pg.Client({ connectionString });
  await c.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.query(`DROP SCHEMA IF EXISTS "${bossSchemaFor(schema)}" CASCADE`);
  } finally {
    await c.end();
  }
}

/** The environment a test Mailroom runs with; `env` overrides any variable. */
export function testEnv(engine: EngineName, dataDir: string, schema: string, env: Record<string, string> = {}): Record<string, string> {
  return {
    MAILROOM_DATA_DIR: dataDir,
    MAILROOM_HTTP_PORT: '0',
    MAILROOM_SMTP_PORT: '0',
    MAILROOM_DOMAIN: 'mailroom.test,agents.test',
    MAILROOM_HOSTNAME: 'mx.mailroom.test',
    MAILROOM_LOG_LEVEL: process.env.MAILROOM_TEST_LOG_LEVEL ?? 'silent',
    // No test may ask the machine's resolver about a foreign domain: port 1 on loopback answers
    // nothing, so a lookup fails at once. Tests that need DNS start one (helpers/dns.ts).
    MAILROOM_DNS_SERVERS: '127.0.0.1:1',
    ...(engine === 'postgres' ? { DATABASE_URL: TEST_DATABASE_URL, MAILROOM_DATABASE_SCHEMA: schema } : {}),
    ...env,
  };
}

export async function startTestMailroom(engine: EngineName, env: Record<string, string> = {}, opts: Omit<StartOptions, 'log' | 'pgliteDir'> = {}): Promise<TestMailroom> {
  const dataDir = await mkdtemp(path.join(tmpdir(), `mailroom-${engine}-`));
  const schema = uniqueSchema();
  const config: Config = loadConfig(testEnv(engine, dataDir, schema, env));
  const mailroom = await startMailroom(config, {
    log: createLogger(config.logLevel),
    // In-memory PGlite: the spool still lives in dataDir, which is what durability tests exercise
    // (they run `serve` as a real process on a real directory instead, see crash tests).
    pgliteDir: null,
    ...opts,
  });
  const adminToken = mailroom.createdAdminToken ?? config.adminToken!;
  const api = apiClient(`http://127.0.0.1:${mailroom.httpPort}`, adminToken);
  return {
    ...mailroom,
    engine,
    adminToken,
    api,
    async destroy() {
      await mailroom.stop();
      if (engine === 'postgres') await dropSchemas(schema);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls until `fn` returns a truthy value or the timeout passes. */
export async function waitFor<T>(fn: () => Promise<T | null | undefined | false>, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until the inbox lists `count` messages and returns them (newest first). */
export async function waitForMessages(m: TestMailroom, inboxId: string, count = 1, token?: string): Promise<any[]> {
  return waitFor(async () => {
    const r = await m.api('GET', `/v1/inboxes/${inboxId}/messages?limit=200`, undefined, token);
    return r.status === 200 && r.body.data.length >= count ? r.body.data : null;
  }, 20_000, `${count} message(s) in ${inboxId}`);
}

/** What the accept path has stored so far: receipts and deliveries (after the PGlite spool is drained). */
export async function storedCounts(m: TestMailroom): Promise<{ receipts: number; deliveries: number }> {
  await (m.acceptor as { flush?: () => Promise<void> }).flush?.();
  const count = async (table: 'receipts' | 'deliveries') =>
    Number((await m.store.db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
  return { receipts: await count('receipts'), deliveries: await count('deliveries') };
}
