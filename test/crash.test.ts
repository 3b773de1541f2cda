import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { readRecords } from '../src/inbound/spool.ts';
import { apiClient, dropSchemas, ENGINES, skipEngine, TEST_DATABASE_URL, testEnv, uniqueSchema, waitFor, type ApiClient, type EngineName } from './helpers/mailroom.ts';
import { killAllServes, spawnServe, startServe, type ServeProcess } from './helpers/process.ts';
import { SmtpClient, expectedStored, message, splitTrace } from './helpers/smtp.ts';

/**
 * Crash tests (test plan §1, D2/D3/D11): `mailroom serve` runs as a real child process on a real
 * data directory (file-backed PGlite + spool) or a real PostgreSQL schema, is killed with SIGKILL at
 * an awkward moment, and is started again on the same data. The oracle is what the clients saw:
 * every message that got a `250` must afterwards be stored exactly once, parsed, and byte-identical
 * to what was sent (apart from the trace header Mailroom prepends). Messages without a `250` may or
 * may not be stored; if stored, they must be complete and stored once too.
 *
 * Embedded mode has a second, sharper oracle: every complete record in the spool segments after the
 * kill was fdatasync'd (or at least written) and will be re-committed at start-up, so the final set
 * of stored messages must be exactly the set of spool records; the database must never hold a
 * message that is not in the spool, and a record in the spool must never be lost or doubled.
 */

const ADMIN_TOKEN = 'crash-test-admin-token-0123456789';
const SENDER = 'sender@example.com';
/** Bounds for waits after a restart: generous, since this machine may be slow and busy. */
const SETTLE_MS = 150_000;

interface Sent {
  i: number;
  messageId: string;
  subject: string;
  bytes: Buffer;
  /** unsent: never started; inflight: started, no final reply (connection died); acked: 250. */
  state: 'unsent' | 'inflight' | 'acked' | 'refused';
  code?: number;
}

function makeMessages(run: string, count: number, to: string): Sent[] {
  return Array.from({ length: count }, (_, i) => {
    const subject = `${run} #${i}`;
    const messageId = `<${run}-${i}@crash.test>`;
    // Sizes from ~200 bytes to ~20 KB, so a kill lands mid-DATA as well as between messages; some
    // lines start with a dot, so dot-stuffing is exercised on every path.
    const lines = [`Message ${i} of ${run}.`];
    const n = (i * 37) % 240;
    for (let k = 0; k < n; k++) {
      lines.push(k % 17 === 5 ? `.dot-led line ${k} of ${i}` : `line ${k} of message ${i}: ${'abcdefghij'.repeat(1 + ((k + i) % 8))}`);
    }
    return { i, messageId, subject, bytes: message({ from: `Sender <${SENDER}>`, to, subject, messageId, body: lines.join('\r\n') }), state: 'unsent' as const };
  });
}

/**
 * Sends `msgs` over `conns` concurrent connections (message i on connection i % conns), one
 * transaction after another, and records each final reply. `onAck(n)` runs synchronously on the n-th
 * `250`, which is where a test kills the server. A connection that dies stops; its current message
 * stays `inflight` (outcome unknown), the rest stay `unsent`.
 */
async function sendAll(smtpPort: number, to: string, msgs: Sent[], conns: number, onAck?: (n: number) => void): Promise<void> {
  let acks = 0;
  await Promise.all(Array.from({ length: conns }, async (_, c) => {
    let client: SmtpClient;
    try {
      client = await SmtpClient.connect(smtpPort);
      if ((await client.cmd('EHLO load.crash.test')).code !== 250) return;
    } catch {
      return;
    }
    try {
      for (let i = c; i < msgs.length; i += conns) {
        const m = msgs[i];
        m.state = 'inflight';
        let res;
        try {
          res = await client.send(SENDER, [to], m.bytes);
        } catch {
          return; // a reply timed out: outcome unknown
        }
        const code = res.data?.code ?? res.rcpts.find((r) => r.code !== 250)?.code ?? res.mail.code;
        m.code = code;
        if (res.data?.code === 250) {
          m.state = 'acked';
          onAck?.(++acks);
        } else if (code === 0 || client.closed) {
          return;
        } else {
          m.state = 'refused';
        }
      }
      await client.quit();
    } finally {
      client.socket.destroy();
    }
  }));
}

const count = (msgs: Sent[], state: Sent['state']) => msgs.filter((m) => m.state === state).length;
const bare = (id: string | null) => (id ?? '').replace(/^<|>$/g, '');
const randInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

async function listAll(api: ApiClient, inboxId: string): Promise<any[]> {
  const out: any[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 1000; page++) {
    const r = await api('GET', `/v1/inboxes/${inboxId}/messages?limit=200${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(r.status, 200, `listing messages: ${r.status} ${JSON.stringify(r.body)}`);
    out.push(...r.body.data);
    cursor = r.body.next_cursor;
    if (!cursor) return out;
  }
  throw new Error('too many pages');
}

/** Message-IDs of the complete records in the embedded spool (what start-up recovery re-commits). */
async function spoolMessageIds(dataDir: string): Promise<{ ids: Set<string>; records: number }> {
  const dir = path.join(dataDir, 'spool');
  const ids = new Set<string>();
  let records = 0;
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.log')).sort()) {
    for (const r of readRecords<unknown>(await readFile(path.join(dir, name)))) {
      records++;
      const m = /^Message-ID: <([^>\r\n]+)>/im.exec(r.raw.toString('latin1'));
      assert.ok(m, 'every spool record carries the Message-ID the test sent');
      assert.ok(!ids.has(m[1]), `Message-ID ${m[1]} appears twice in the spool`);
      ids.add(m[1]);
    }
  }
  return { ids, records };
}

/** One crash scenario's data: a temp data dir (embedded) or a schema (PostgreSQL), reused across restarts. */
class Rig {
  readonly engine: EngineName;
  readonly dataDir: string;
  readonly schema: string;
  server: (ServeProcess & { httpPort: number; smtpPort: number }) | null = null;
  api!: ApiClient;

  private constructor(engine: EngineName, dataDir: string, schema: string) {
    this.engine = engine;
    this.dataDir = dataDir;
    this.schema = schema;
  }

  static async create(engine: EngineName): Promise<Rig> {
    return new Rig(engine, await mkdtemp(path.join(tmpdir(), `mailroom-crash-${engine}-`)), uniqueSchema());
  }

  get env(): Record<string, string> {
    return testEnv(this.engine, this.dataDir, this.schema, { MAILROOM_ADMIN_TOKEN: ADMIN_TOKEN, MAILROOM_LOG_LEVEL: 'info' });
  }

  async start(): Promise<void> {
    this.server = await startServe(this.env);
    this.api = apiClient(`http://127.0.0.1:${this.server.httpPort}`, ADMIN_TOKEN);
  }

  /** A SQL view of the data for final consistency checks. Embedded: only while no server runs. */
  async query<T = any>(text: string): Promise<T[]> {
    if (this.engine === 'postgres') {
      const c = new pg.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path="${this.schema}"` });
      await c.connect();
      try {
        return (await c.query(text)).rows as T[];
      } finally {
        await c.end();
      }
    }
    assert.ok(!this.server || this.server.hasExited, 'the embedded database is read only while serve is stopped');
    const db = new PGlite(path.join(this.dataDir, 'pgdata'));
    try {
      return (await db.query<T>(text)).rows;
    } finally {
      await db.close();
    }
  }

  async destroy(): Promise<void> {
    await this.server?.kill9();
    if (this.engine === 'postgres') await dropSchemas(this.schema).catch(() => {});
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

/**
 * After a restart: waits (bounded) until every acknowledged message is listed — and, when
 * `expectedIds` is given (embedded: the spool oracle), until exactly that set is listed — then
 * checks each stored message: listed once, parsed (right subject over GET), raw byte-identical
 * after the trace header, and nothing stored that the test did not send.
 */
async function verifyInbox(rig: Rig, inboxId: string, msgs: Sent[], expectedIds?: Set<string>): Promise<{ stored: number; unackedStored: number }> {
  const byId = new Map(msgs.map((m) => [bare(m.messageId), m]));
  const acked = msgs.filter((m) => m.state === 'acked');
  let progress = 'nothing listed yet';
  const listed = await waitFor(async () => {
    const all = await listAll(rig.api, inboxId);
    const ids = new Set(all.map((x) => bare(x.message_id)));
    progress = `${all.length} listed, ${acked.filter((m) => ids.has(bare(m.messageId))).length} of the acknowledged`;
    if (!acked.every((m) => ids.has(bare(m.messageId)))) return null;
    if (expectedIds && (ids.size !== expectedIds.size || ![...expectedIds].every((id) => ids.has(id)))) return null;
    return all;
  }, SETTLE_MS, `all ${acked.length} acknowledged messages${expectedIds ? ` and exactly the ${expectedIds.size} spooled ones` : ''} to be listed`).catch((err) => {
    throw new Error(`${err.message} (${progress})\nserve output:\n${rig.server?.output().slice(-3000)}`);
  });

  const seen = new Map<string, number>();
  for (const x of listed) seen.set(bare(x.message_id), (seen.get(bare(x.message_id)) ?? 0) + 1);
  const dupes = [...seen].filter(([, n]) => n > 1);
  assert.deepEqual(dupes, [], 'no Message-ID is stored twice');
  for (const x of listed) {
    const m = byId.get(bare(x.message_id));
    assert.ok(m, `stored message ${x.id} (${x.message_id}) is one the test sent`);
    assert.notEqual(m.state, 'unsent', `message ${m.i} was never sent but is stored`);
    assert.equal(x.subject, m.subject);
  }

  // Every stored message, acknowledged or not: parsed, and its raw is exactly what was sent.
  const receiptIds = new Set<string>();
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < listed.length) {
      const x = listed[next++];
      const m = byId.get(bare(x.message_id))!;
      const full = await rig.api('GET', `/v1/messages/${x.id}`);
      assert.equal(full.status, 200);
      assert.equal(full.body.subject, m.subject, `message ${m.i} is parsed`);
      assert.ok(full.body.text.startsWith(`Message ${m.i} of `), `message ${m.i} has its body text`);
      const raw = await rig.api('GET', `/v1/messages/${x.id}/raw`);
      assert.equal(raw.status, 200);
      const { trace, body } = splitTrace(raw.bytes);
      assert.match(trace, /^Received: from load\.crash\.test /, `message ${m.i} starts with Mailroom's trace header`);
      const receipt = /\bid (rcv_[0-9a-z]+)/.exec(trace)?.[1];
      assert.ok(receipt && !receiptIds.has(receipt), `message ${m.i}: one stored message per receipt`);
      receiptIds.add(receipt);
      assert.ok(body.equals(expectedStored(m.bytes)), `message ${m.i} (${m.state}) is stored byte for byte (${body.length} vs ${expectedStored(m.bytes).length} bytes)`);
    }
  }));
  return { stored: listed.length, unackedStored: listed.filter((x) => byId.get(bare(x.message_id))!.state !== 'acked').length };
}

/** Database-level invariants once everything settled: every receipt parsed, one message per delivery, no duplicate. */
async function verifyDatabase(rig: Rig, stored: number): Promise<void> {
  if (rig.engine === 'postgres') {
    // Receipts committed without a 250 (in flight at the kill) are parsed too; wait for them.
    await waitFor(async () => (await rig.query(`SELECT count(*)::int AS n FROM receipts WHERE state <> 'ingested'`))[0].n === 0, SETTLE_MS, 'every receipt to be ingested');
  } else {
    // PGlite has one owner: stop serve cleanly, then look at the files it left.
    const status = await rig.server!.stop();
    assert.equal(status.code, 0, `serve stops cleanly on SIGTERM:\n${rig.server!.output().slice(-3000)}`);
  }
  const [row] = await rig.query(`
    SELECT (SELECT count(*)::int FROM receipts) AS receipts,
           (SELECT count(*)::int FROM receipts WHERE state <> 'ingested') AS unparsed,
           (SELECT count(*)::int FROM deliveries) AS deliveries,
           (SELECT count(*)::int FROM messages) AS messages,
           (SELECT count(*)::int FROM deliveries d LEFT JOIN messages m ON m.id = d.id WHERE m.id IS NULL) AS undelivered,
           (SELECT count(*)::int FROM (SELECT message_id FROM messages GROUP BY message_id HAVING count(*) > 1) x) AS duplicated`);
  assert.deepEqual(row, { receipts: stored, unparsed: 0, deliveries: stored, messages: stored, undelivered: 0, duplicated: 0 });
}

async function createInbox(rig: Rig, username: string): Promise<{ id: string; address: string }> {
  const r = await rig.api('POST', '/v1/inboxes', { username });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}

/** Kills the server on the n-th acknowledgement (synchronously, from the client's reply handler). */
function killOnAck(rig: Rig, n: number): (acks: number) => void {
  // Through the ChildProcess, not process.kill(pid): it sends nothing once the child has exited, so
  // a recycled PID (pid_max is 32768 here) can never be hit.
  const child = rig.server!.child;
  return (acks) => { if (acks === n) child.kill('SIGKILL'); };
}

function report(t: TestContext, what: string, data: Record<string, unknown>): void {
  t.diagnostic(`${what}: ${JSON.stringify(data)}`);
}

after(async () => { await killAllServes(); });

for (const engine of ENGINES) {
  // On PostgreSQL a job claimed by the killed process is only given back by pg-boss's supervisor
  // (heartbeat lost, next supervise pass: about a minute), so D2 and D3 spend most of their time
  // waiting; they run side by side there to keep the file short. Embedded mode retries such jobs
  // at start-up, and its tests run one after another.
  describe(`${engine}: kill -9 while mail is being accepted`, { skip: await skipEngine(engine), concurrency: engine === 'postgres' }, () => {
    const rigs: Rig[] = [];
    const rig = async () => { const r = await Rig.create(engine); rigs.push(r); return r; };
    after(async () => {
      await killAllServes();
      for (const r of rigs) await r.destroy();
    });

    test('D2: kill -9 during 2,000 messages over 10 connections; after restart every 250 is stored once, parsed, byte-identical', async (t) => {
      const r = await rig();
      await r.start();
      const inbox = await createInbox(r, 'crash-d2');
      const msgs = makeMessages(`d2-${engine}`, 2000, inbox.address);
      const killAt = randInt(300, 1200);
      await sendAll(r.server!.smtpPort, inbox.address, msgs, 10, killOnAck(r, killAt));
      const status = await r.server!.exited;
      assert.equal(status.signal, 'SIGKILL', 'the server was killed while clients were still sending');
      const stats = { killAt, acked: count(msgs, 'acked'), inflight: count(msgs, 'inflight'), unsent: count(msgs, 'unsent'), refused: count(msgs, 'refused') };
      assert.equal(stats.refused, 0, `no message was refused: ${JSON.stringify(msgs.filter((m) => m.state === 'refused').map((m) => m.code))}`);
      assert.ok(stats.acked >= killAt && stats.unsent > 0, 'the kill came in full flight');

      let spool: { ids: Set<string>; records: number } | undefined;
      if (engine === 'pglite') {
        spool = await spoolMessageIds(r.dataDir);
        for (const m of msgs) if (m.state === 'acked') assert.ok(spool.ids.has(bare(m.messageId)), `acknowledged message ${m.i} is in the spool`);
        // kill -9 leaves the lock behind; the restart below must take it over.
        assert.equal((await readFile(path.join(r.dataDir, 'mailroom.lock'), 'utf8')).trim(), String(r.server!.pid));
      }

      const restartedAt = Date.now();
      await r.start();
      const result = await verifyInbox(r, inbox.id, msgs, spool?.ids);
      report(t, `${engine} D2`, { ...stats, spoolRecords: spool?.records, stored: result.stored, unackedStored: result.unackedStored, settledAfterRestartMs: Date.now() - restartedAt });
      await verifyDatabase(r, result.stored);
    });

    test('D3: kill -9 right after the last 250 of a burst, before parsing; after restart each is parsed exactly once', async (t) => {
      const r = await rig();
      await r.start();
      const inbox = await createInbox(r, 'crash-d3');
      const msgs = makeMessages(`d3-${engine}`, 300, inbox.address);
      await sendAll(r.server!.smtpPort, inbox.address, msgs, 10, killOnAck(r, msgs.length));
      assert.equal((await r.server!.exited).signal, 'SIGKILL');
      assert.equal(count(msgs, 'acked'), msgs.length, 'every message of the burst was acknowledged before the kill');
      let atKill: Record<string, unknown>;
      let spool: { ids: Set<string>; records: number } | undefined;
      if (engine === 'postgres') {
        const [row] = await r.query(`SELECT count(*)::int AS receipts, count(*) FILTER (WHERE state = 'accepted')::int AS unparsed FROM receipts`);
        atKill = row;
      } else {
        spool = await spoolMessageIds(r.dataDir);
        atKill = { spoolRecords: spool.records };
      }
      await r.start();
      const result = await verifyInbox(r, inbox.id, msgs, spool?.ids);
      assert.equal(result.stored, msgs.length);
      report(t, `${engine} D3`, { acked: msgs.length, atKill });
      await verifyDatabase(r, result.stored);
    });

    if (engine === 'pglite') {
      test('D11: kill -9 again during start-up spool recovery; the next start reaches the same final state, nothing doubled', async (t) => {
        const r = await rig();
        await r.start();
        const inbox = await createInbox(r, 'crash-d11');
        const msgs = makeMessages('d11', 1000, inbox.address);
        const killAt = randInt(300, 700);
        await sendAll(r.server!.smtpPort, inbox.address, msgs, 10, killOnAck(r, killAt));
        assert.equal((await r.server!.exited).signal, 'SIGKILL');
        const spool = await spoolMessageIds(r.dataDir);
        for (const m of msgs) if (m.state === 'acked') assert.ok(spool.ids.has(bare(m.messageId)), `acknowledged message ${m.i} is in the spool`);

        // Second start: killed as soon as it reports that spool recovery began (before it is ready).
        const second = spawnServe(r.env);
        const m = await second.waitForOutput(/spool recovery[^\n]*"count":(\d+)|"count":(\d+)[^\n]*spool recovery/, 120_000);
        second.child.kill('SIGKILL');
        await second.exited;
        const recovering = Number(m[1] ?? m[2]);
        assert.ok(!/HTTP API/.test(second.output()), 'the second start was killed before it was ready, i.e. during recovery');
        assert.equal(recovering, spool.records, 'recovery re-commits every spooled record');

        // Third start: must reach the state the second would have reached.
        await r.start();
        const result = await verifyInbox(r, inbox.id, msgs, spool.ids);
        // How long a full recovery took on the third start: the window the second kill had to hit.
        const at = (re: RegExp) => Date.parse(/"time":"([^"]+)"/.exec(r.server!.output().split('\n').find((l) => re.test(l)) ?? '')?.[1] ?? '');
        const recoveryMs = at(/mailroom started/) - at(/spool recovery/);
        report(t, 'pglite D11', { killAt, acked: count(msgs, 'acked'), inflight: count(msgs, 'inflight'), spoolRecords: spool.records, recoveringAtSecondKill: recovering, stored: result.stored, fullRecoveryMs: recoveryMs });
        await verifyDatabase(r, result.stored);
      });

      test('data-dir lock: a second serve on the same embedded directory exits non-zero naming it; a stale lock from kill -9 does not block', async () => {
        const r = await rig();
        await r.start();
        const first = r.server!;
        const second = spawnServe(r.env);
        const status = await Promise.race([second.exited, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('second serve did not exit')), 60_000))]);
        assert.notEqual(status.code, 0, 'the second serve fails');
        assert.equal(status.signal, null);
        assert.ok(second.output().includes(r.dataDir), `the error names the data directory:\n${second.output()}`);
        assert.match(second.output(), new RegExp(`in use by another Mailroom process \\(pid ${first.pid}\\)`));
        // The first one is unaffected and still serves.
        assert.equal((await r.api('GET', '/healthz')).status, 200);
        const inbox = await createInbox(r, 'lock');

        await first.kill9();
        assert.equal((await readFile(path.join(r.dataDir, 'mailroom.lock'), 'utf8')).trim(), String(first.pid), 'kill -9 left the lock file behind');
        await r.start();
        assert.notEqual(r.server!.pid, first.pid);
        assert.equal((await readFile(path.join(r.dataDir, 'mailroom.lock'), 'utf8')).trim(), String(r.server!.pid), 'the restart took the stale lock over');
        assert.equal((await r.api('GET', `/v1/inboxes/${inbox.id}`)).status, 200);
      });
    }
  });
}
