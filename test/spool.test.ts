import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SpoolAcceptor } from '../src/inbound/accept.ts';
import type { ReceiptEnvelope } from '../src/inbound/receipts.ts';
import { readRecords, Spool } from '../src/inbound/spool.ts';
import { newId } from '../src/ids.ts';
import { startBoss } from '../src/jobs/boss.ts';
import { createLogger } from '../src/log.ts';
import { openStore, type Store } from '../src/store/database.ts';
import { waitFor } from './helpers/mailroom.ts';

type H = { id: string; n: number };

describe('spool: the embedded accept log', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(path.join(tmpdir(), 'mailroom-spool-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  test('records, appended concurrently, survive a reopen until their segment is fully released', async () => {
    const d = path.join(dir, 'a');
    const { spool, recovered } = await Spool.open<H>(d, (h) => h.id);
    assert.equal(recovered.length, 0);
    await Promise.all(Array.from({ length: 50 }, (_, n) => spool.append(`r${n}`, { id: `r${n}`, n }, Buffer.from(`raw ${n}\r\n`))));
    assert.equal(spool.unreleased, 50);
    for (let n = 0; n < 50; n += 2) spool.release(`r${n}`);
    await spool.close();
    const again = await Spool.open<H>(d, (h) => h.id);
    // Releases are not persisted: everything in a live segment comes back, and re-committing is idempotent.
    assert.equal(again.recovered.length, 50);
    assert.deepEqual(again.recovered.map((r) => r.header.n), Array.from({ length: 50 }, (_, n) => n));
    assert.equal(again.recovered[7].raw.toString(), 'raw 7\r\n');
    for (const r of again.recovered) again.spool.release(r.header.id);
    await again.spool.close();
    // Every record of the old segment was released, so the segment file is gone after the next open.
    const third = await Spool.open<H>(d, (h) => h.id);
    assert.equal(third.recovered.length, 0);
    assert.deepEqual((await readdir(d)).filter((f) => f.endsWith('.log')).length, 1, 'only the new active segment remains');
    await third.spool.close();
  });

  test('a torn or corrupt tail is ignored; the records before it are kept', async () => {
    const d = path.join(dir, 'b');
    const { spool } = await Spool.open<H>(d, (h) => h.id);
    for (let n = 0; n < 3; n++) await spool.append(`r${n}`, { id: `r${n}`, n }, Buffer.from(`message ${n}`));
    await spool.close();
    const [seg] = (await readdir(d)).filter((f) => f.endsWith('.log'));
    const file = path.join(d, seg);
    const whole = await readFile(file);
    // A crash mid-append leaves a partial record: the first 30 bytes of a fourth one.
    await appendFile(file, whole.subarray(0, 30));
    assert.equal(readRecords<H>(await readFile(file)).length, 3);
    // A flipped byte inside the third record's raw bytes fails its CRC: records from there on are not trusted.
    const flipped = Buffer.from(whole);
    flipped[flipped.length - 2] ^= 0xff;
    await writeFile(file, flipped);
    assert.deepEqual(readRecords<H>(flipped).map((r) => r.header.n), [0, 1]);
  });
});

describe('pglite: the spool writer isolates a record the database refuses', () => {
  let dataDir: string;
  let store: Store;
  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'mailroom-poison-'));
    store = await openStore({ dataDir, pgliteDir: null });
  });
  after(async () => {
    await store.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('one bad record does not hold up the others and is never dropped', async () => {
    const boss = await startBoss(store, () => {});
    const log = createLogger('silent');
    const acceptor = await SpoolAcceptor.open(store, boss, log, dataDir);
    const now = new Date();
    await store.db.insertInto('inboxes').values({ id: 'inb_good', username: 'good', domain: 'd.test', address: 'good@d.test', metadata: '{}', created_at: now, updated_at: now }).execute();
    const env = (inbox: string): ReceiptEnvelope => ({
      id: newId('rcv'), mail_from: 'a@b.c', helo: 'h', remote_address: '127.0.0.1', tls: false, received_at: now.toISOString(), trace_size: 0,
      deliveries: [{ id: newId('msg'), inbox_id: inbox, rcpt_to: `${inbox}@d.test` }],
    });
    const good1 = env('inb_good');
    const bad = env('inb_missing'); // violates the deliveries → inboxes foreign key
    const good2 = env('inb_good');
    for (const e of [good1, bad, good2]) await acceptor.accept(e, Buffer.from(`Subject: ${e.id}\r\n\r\nx\r\n`));
    await acceptor.flush();
    const ids = (await store.db.selectFrom('receipts').select('id').execute()).map((r) => r.id).sort();
    assert.deepEqual(ids, [good1.id, good2.id].sort());
    await waitFor(async () => acceptor.spool.unreleased === 1, 5000, 'only the bad record left');
    await acceptor.close();
    await boss.stop({ graceful: false });
    // It is still in the spool for the next start (and for an operator).
    const { spool, recovered } = await Spool.open<ReceiptEnvelope>(path.join(dataDir, 'spool'), (h) => h.id);
    assert.ok(recovered.some((r) => r.header.id === bad.id));
    await spool.close();
  });
});
