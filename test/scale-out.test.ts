import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../src/config/config.ts';
import { createLogger } from '../src/log.ts';
import { startMailroom, type Mailroom } from '../src/server.ts';
import { apiClient, dropSchemas, ENGINES, skipEngine, startTestMailroom, testEnv, uniqueSchema, waitForMessages, type TestMailroom } from './helpers/mailroom.ts';
import { SmtpClient, message } from './helpers/smtp.ts';

describe('postgres: several Mailroom processes share one database', { skip: ENGINES.includes('postgres') ? await skipEngine('postgres') : 'postgres not selected' }, () => {
  const schema = uniqueSchema();
  const dirs: string[] = [];
  const nodes: Mailroom[] = [];
  before(async () => {
    // Three nodes start at once on a fresh schema: migrations and the admin bootstrap must happen once.
    const started = await Promise.all([0, 1, 2].map(async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'mailroom-node-'));
      dirs.push(dir);
      return startMailroom(loadConfig(testEnv('postgres', dir, schema)), { log: createLogger('silent') });
    }));
    nodes.push(...started);
  });
  after(async () => {
    for (const n of nodes) await n.stop();
    await dropSchemas(schema);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  test('one admin token for all, an inbox made on one node receives mail on another and reads on a third', async () => {
    const tokens = nodes.map((n) => n.createdAdminToken).filter(Boolean) as string[];
    assert.equal(tokens.length, 1, 'exactly one node created the admin token');
    const [a, b, c] = nodes.map((n) => apiClient(`http://127.0.0.1:${n.httpPort}`, tokens[0]));
    const inbox = (await a('POST', '/v1/inboxes', { username: 'shared' })).body;
    const clients = await Promise.all(nodes.map((n) => SmtpClient.connect(n.smtpPort)));
    for (const [i, cl] of clients.entries()) {
      await cl.cmd('EHLO t');
      for (let k = 0; k < 10; k++) {
        assert.equal((await cl.send('s@example.com', [inbox.address], message({ subject: `node${i}-${k}` }))).data?.code, 250);
      }
      await cl.quit();
    }
    const all = await waitForMessages({ api: c } as TestMailroom, inbox.id, 30);
    assert.equal(all.length, 30);
    assert.equal(new Set(all.map((x: any) => x.subject)).size, 30, 'each message parsed exactly once');
    assert.equal((await b('GET', `/v1/messages/${all[0].id}`)).status, 200);
    // A deletion on one node is seen by the SMTP policy of every other node at once.
    assert.equal((await b('DELETE', `/v1/inboxes/${inbox.id}`)).status, 204);
    const cl = await SmtpClient.connect(nodes[2].smtpPort);
    await cl.cmd('EHLO t');
    await cl.cmd('MAIL FROM:<s@example.com>');
    assert.equal((await cl.cmd(`RCPT TO:<${inbox.address}>`)).code, 550);
    await cl.quit();
  });
});

for (const engine of ENGINES) {
  describe(`${engine}: attachments are stored once per content hash`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    before(async () => { m = await startTestMailroom(engine); });
    after(async () => { await m?.destroy(); });

    test('the same attachment in two messages to three inboxes is one blob', async () => {
      const inboxes = await Promise.all(['dedup-1', 'dedup-2', 'dedup-3'].map(async (u) => (await m.api('POST', '/v1/inboxes', { username: u })).body));
      const content = Buffer.from('the same contract PDF, byte for byte\n'.repeat(100));
      const mail = (subject: string) => Buffer.from([
        'From: a@example.com', 'To: x@mailroom.test', `Subject: ${subject}`, `Message-ID: <${subject}@example.com>`, 'MIME-Version: 1.0',
        'Content-Type: multipart/mixed; boundary="zz"', '', '--zz', 'Content-Type: text/plain', '', subject, '--zz',
        'Content-Type: application/pdf', 'Content-Disposition: attachment; filename="contract.pdf"', 'Content-Transfer-Encoding: base64', '',
        content.toString('base64').replace(/.{76}/g, '$&\r\n'), '--zz--', '',
      ].join('\r\n'));
      const c = await SmtpClient.connect(m.smtpPort);
      await c.cmd('EHLO t');
      assert.equal((await c.send('a@example.com', inboxes.map((i) => i.address), mail('first'))).data?.code, 250);
      assert.equal((await c.send('a@example.com', [inboxes[0].address], mail('second'))).data?.code, 250);
      await c.quit();
      const msgs = [...await waitForMessages(m, inboxes[0].id, 2), ...await waitForMessages(m, inboxes[1].id), ...await waitForMessages(m, inboxes[2].id)];
      const shas = new Set(msgs.map((x: any) => x.attachments[0].sha256));
      assert.equal(shas.size, 1);
      const [sha] = shas;
      if (m.store.engine === 'postgres') {
        const rows = await m.store.db.selectFrom('blobs').select('sha256').where('sha256', '=', sha).execute();
        assert.equal(rows.length, 1);
      } else {
        const files = (await readdir(path.join(m.config.dataDir, 'blobs', sha.slice(0, 2)))).filter((f) => f.startsWith(sha));
        assert.deepEqual(files, [sha]);
      }
      assert.equal(new Set(msgs.map((x: any) => x.attachments[0].id)).size, 4, 'each message still has its own attachment record');
    });
  });
}
