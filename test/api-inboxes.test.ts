import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ENGINES, skipEngine, startTestMailroom, type TestMailroom } from './helpers/mailroom.ts';
import { SmtpClient } from './helpers/smtp.ts';

for (const engine of ENGINES) {
  describe(`${engine}: inboxes API`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    before(async () => { m = await startTestMailroom(engine); });
    after(async () => { await m?.destroy(); });

    test('health and OpenAPI need no token', async () => {
      const h = await fetch(`${m.api.base}/healthz`);
      assert.equal(h.status, 200);
      assert.deepEqual(await h.json(), { status: 'ok', engine });
      const doc = await (await fetch(`${m.api.base}/v1/openapi.json`)).json();
      assert.equal(doc.openapi, '3.1.0');
      assert.ok(doc.paths['/v1/inboxes'].post);
      assert.ok(doc.components.schemas.Message);
    });

    test('create without a username picks a readable unique address on the first domain', async () => {
      const a = await m.api('POST', '/v1/inboxes', {});
      const b = await m.api('POST', '/v1/inboxes');
      assert.equal(a.status, 201);
      assert.equal(b.status, 201);
      assert.match(a.body.address, /^[a-z]+-[a-z]+-\d{4}@mailroom\.test$/);
      assert.notEqual(a.body.address, b.body.address);
      assert.match(a.body.id, /^inb_[0-9a-z]{26}$/);
      assert.equal(a.body.created_at, a.body.updated_at);
      assert.ok(a.body.created_at.endsWith('Z'), 'timestamps are UTC');
    });

    test('explicit username, domain, display name and metadata', async () => {
      const r = await m.api('POST', '/v1/inboxes', { username: 'Sales.Bot', domain: 'AGENTS.test', display_name: 'Sales Bot', metadata: { owner: 'crew-1', n: 3 } });
      assert.equal(r.status, 201);
      assert.equal(r.body.address, 'sales.bot@agents.test', 'addresses are lower-cased');
      assert.equal(r.body.display_name, 'Sales Bot');
      assert.deepEqual(r.body.metadata, { owner: 'crew-1', n: 3 });
      const taken = await m.api('POST', '/v1/inboxes', { username: 'sales.bot', domain: 'agents.test' });
      assert.equal(taken.status, 409);
      assert.equal(taken.body.code, 'username_taken');
      // The same username on the other served domain is a different address.
      assert.equal((await m.api('POST', '/v1/inboxes', { username: 'sales.bot' })).status, 201);
    });

    test('validation errors are problem documents with stable codes', async () => {
      for (const [body, code, status] of [
        [{ username: 'has space' }, 'invalid_request', 400],
        [{ username: 'x%ext.com' }, 'invalid_request', 400],
        [{ username: '"quoted"' }, 'invalid_request', 400],
        [{ username: 'a..b' }, 'invalid_request', 400],
        [{ username: '-dash' }, 'invalid_request', 400],
        [{ domain: 'example.com' }, 'unknown_domain', 422],
        [{ display_name: 'evil\r\nBcc: x@y' }, 'invalid_request', 400],
        [{ unexpected: 1 }, 'invalid_request', 400],
        [{ metadata: 'not an object' }, 'invalid_request', 400],
      ] as const) {
        const r = await m.api('POST', '/v1/inboxes', body);
        assert.equal(r.status, status, JSON.stringify(body));
        assert.equal(r.body.code, code, JSON.stringify(body));
        assert.equal(r.headers.get('content-type'), 'application/problem+json');
        assert.equal(r.body.status, status);
        assert.ok(r.body.detail.length > 0);
        assert.ok(r.body.type.endsWith(`/${code}`));
      }
      const malformed = await m.api('POST', '/v1/inboxes', '{"username": ');
      assert.equal(malformed.status, 400);
      assert.equal(malformed.body.code, 'invalid_request');
      const big = await m.api('POST', '/v1/inboxes', { metadata: { blob: 'x'.repeat(2 * 1024 * 1024) } });
      assert.equal(big.status, 413);
      assert.equal(big.body.code, 'payload_too_large');
      const unknownRoute = await m.api('GET', '/v1/nothing-here');
      assert.equal(unknownRoute.status, 404);
      assert.equal(unknownRoute.body.code, 'not_found');
    });

    test('client_id makes creation idempotent, also under concurrency', async () => {
      const first = await m.api('POST', '/v1/inboxes', { client_id: 'crew-7/researcher' });
      assert.equal(first.status, 201);
      const again = await m.api('POST', '/v1/inboxes', { client_id: 'crew-7/researcher', username: 'ignored-on-replay' });
      assert.equal(again.status, 200);
      assert.equal(again.body.id, first.body.id);
      const burst = await Promise.all(Array.from({ length: 20 }, () => m.api('POST', '/v1/inboxes', { client_id: 'crew-7/burst' })));
      assert.ok(burst.every((r) => r.status === 200 || r.status === 201), burst.map((r) => r.status).join(','));
      assert.equal(new Set(burst.map((r) => r.body.id)).size, 1);
      assert.equal(burst.filter((r) => r.status === 201).length, 1);
    });

    test('get, patch, list with pagination, delete', async () => {
      const r = await m.api('POST', '/v1/inboxes', { username: 'crud' });
      const id = r.body.id;
      assert.equal((await m.api('GET', `/v1/inboxes/${id}`)).body.address, 'crud@mailroom.test');
      const p = await m.api('PATCH', `/v1/inboxes/${id}`, { display_name: 'CRUD Agent', metadata: { v: 2 } });
      assert.equal(p.status, 200);
      assert.equal(p.body.display_name, 'CRUD Agent');
      assert.deepEqual(p.body.metadata, { v: 2 });
      assert.ok(p.body.updated_at >= p.body.created_at);
      assert.equal((await m.api('PATCH', `/v1/inboxes/${id}`, { username: 'renamed' })).status, 400, 'the address cannot be changed');

      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: any = (await m.api('GET', `/v1/inboxes?limit=2${cursor ? `&cursor=${cursor}` : ''}`)).body;
        seen.push(...page.data.map((x: any) => x.id));
        cursor = page.next_cursor;
      } while (cursor);
      assert.ok(seen.includes(id));
      assert.equal(new Set(seen).size, seen.length);

      // Read once more first: embedded, the row is now in the inbox cache, which the delete must empty.
      assert.equal((await m.api('GET', `/v1/inboxes/${id}`)).status, 200);
      assert.equal((await m.api('DELETE', `/v1/inboxes/${id}`)).status, 204);
      assert.equal((await m.api('GET', `/v1/inboxes/${id}`)).status, 404);
      const send = await m.api('POST', `/v1/inboxes/${id}/messages`, { to: ['someone@example.com'], subject: 'after delete', text: 'no' });
      assert.equal(send.status, 404, 'a deleted inbox sends nothing');
      assert.equal(send.body.code, 'not_found');
      assert.equal((await m.api('DELETE', `/v1/inboxes/${id}`)).status, 404);
      assert.ok(!(await m.api('GET', '/v1/inboxes?limit=200')).body.data.some((x: any) => x.id === id));

      // The address is refused over SMTP from now on, and can be provisioned again as a new inbox.
      const c = await SmtpClient.connect(m.smtpPort);
      await c.cmd('EHLO t');
      await c.cmd('MAIL FROM:<a@example.com>');
      const rcpt = await c.cmd('RCPT TO:<crud@mailroom.test>');
      assert.equal(rcpt.code, 550);
      assert.match(rcpt.text, /5\.1\.1/);
      await c.quit();
      const again = await m.api('POST', '/v1/inboxes', { username: 'crud' });
      assert.equal(again.status, 201);
      assert.notEqual(again.body.id, id);
    });
  });
}
