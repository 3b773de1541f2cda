import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { apiClient, dropSchemas, ENGINES, skipEngine, testEnv, uniqueSchema, waitFor } from './helpers/mailroom.ts';
import { killAllServes, startServe } from './helpers/process.ts';
import { SmtpClient, dotStuff, expectedStored, message, splitTrace } from './helpers/smtp.ts';

const ADMIN = 'd9-admin-token-0123456789abcdef';

for (const engine of ENGINES) {
  describe(`${engine}: D9 SIGTERM drain`, { skip: await skipEngine(engine) }, () => {
    const schema = uniqueSchema();
    let dir = '';
    after(async () => {
      await killAllServes();
      if (engine === 'postgres') await dropSchemas(schema);
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    test('D9: in-flight messages finish (250) or are refused (4xx/cut), new connections are not served, nothing acknowledged is lost', async () => {
      dir = await mkdtemp(path.join(tmpdir(), `mailroom-d9-${engine}-`));
      const env = testEnv(engine, dir, schema, { MAILROOM_ADMIN_TOKEN: ADMIN, MAILROOM_SHUTDOWN_GRACE_SECONDS: '3' });
      const server = await startServe(env);
      const api = apiClient(`http://127.0.0.1:${server.httpPort}`, ADMIN);
      const inbox = (await api('POST', '/v1/inboxes', { username: 'drain' })).body;

      // 5 sessions idle after EHLO, 5 in the middle of DATA (half the body sent).
      const idle = await Promise.all(Array.from({ length: 5 }, () => SmtpClient.connect(server.smtpPort)));
      for (const c of idle) await c.cmd('EHLO idle');
      const busy = await Promise.all(Array.from({ length: 5 }, () => SmtpClient.connect(server.smtpPort)));
      const bodies = busy.map((_, i) => message({ to: inbox.address, subject: `in-flight-${i}`, body: `${i} `.repeat(5000) }));
      for (const [i, c] of busy.entries()) {
        await c.cmd('EHLO busy');
        assert.equal((await c.cmd('MAIL FROM:<s@example.com>')).code, 250);
        assert.equal((await c.cmd(`RCPT TO:<${inbox.address}>`)).code, 250);
        assert.equal((await c.cmd('DATA')).code, 354);
        const stuffed = dotStuff(bodies[i]);
        c.write(stuffed.subarray(0, stuffed.length >> 1));
        (c as any).rest = stuffed.subarray(stuffed.length >> 1);
      }

      const exited = server.stop(30_000);
      await new Promise((r) => setTimeout(r, 300));
      // No new session is served once the drain has begun.
      const fresh = await new Promise<string>((resolve) => {
        const s = net.connect(server.smtpPort, '127.0.0.1');
        let got = '';
        s.on('data', (d) => { got += d; });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
        s.on('close', () => resolve(got || 'closed'));
        setTimeout(() => { s.destroy(); resolve(got || 'timeout'); }, 5000);
      });
      assert.ok(!/^220/.test(fresh), `a new connection during the drain must not get a banner (got ${fresh})`);

      const acked: Buffer[] = [];
      for (const [i, c] of busy.entries()) {
        c.write((c as any).rest);
        const r = await c.read(20_000).catch(() => ({ code: 0, text: 'no reply' }));
        if (r.code === 250) acked.push(bodies[i]);
        else assert.ok(r.code === 0 || (r.code >= 400 && r.code < 500), `in-flight message answered ${r.code} ${r.text}`);
      }
      // Idle sessions are told 421 (or just closed) when the grace period ends.
      for (const c of idle) {
        const r = await c.read(20_000).catch(() => ({ code: 0, text: '' }));
        assert.ok(r.code === 421 || r.code === 0, `idle session got ${r.code}`);
      }
      const status = await exited;
      assert.equal(status.code, 0, `clean exit after SIGTERM (got ${JSON.stringify(status)})\n${server.output().slice(-2000)}`);
      assert.ok(acked.length > 0, 'messages in flight when the drain began could still be completed');

      // Everything acknowledged is there after a restart, once, byte-identical.
      const again = await startServe(env);
      const api2 = apiClient(`http://127.0.0.1:${again.httpPort}`, ADMIN);
      const list = await waitFor(async () => {
        const l = (await api2('GET', `/v1/inboxes/${inbox.id}/messages?limit=200`)).body.data;
        return l.length >= acked.length ? l : null;
      }, 60_000, 'acknowledged messages after restart');
      assert.equal(list.length, acked.length);
      for (const msg of list) {
        const raw = (await api2('GET', `/v1/messages/${msg.id}/raw`)).bytes;
        assert.ok(acked.some((a) => splitTrace(raw).body.equals(expectedStored(a))));
      }
      for (const c of [...idle, ...busy]) c.socket.destroy();
      await again.stop(30_000);
    });
  });
}
