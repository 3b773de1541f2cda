import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { generateToken, isWellFormedToken } from '../src/auth/token-format.ts';
import { ENGINES, skipEngine, startTestMailroom, waitForMessages, type TestMailroom } from './helpers/mailroom.ts';
import { SmtpClient } from './helpers/smtp.ts';

/**
 * Every API route and the scope it needs. A9 checks that this table covers every route in the
 * OpenAPI document, so a new route cannot ship without an entry (and therefore without a test).
 */
const ROUTE_SCOPES: Record<string, string> = {
  'POST /v1/inboxes': 'inboxes:write',
  'GET /v1/inboxes': 'inboxes:read',
  'GET /v1/inboxes/{inbox_id}': 'inboxes:read',
  'PATCH /v1/inboxes/{inbox_id}': 'inboxes:write',
  'DELETE /v1/inboxes/{inbox_id}': 'inboxes:write',
  'GET /v1/inboxes/{inbox_id}/messages': 'messages:read',
  'GET /v1/messages/{message_id}': 'messages:read',
  'GET /v1/messages/{message_id}/raw': 'messages:read',
  'GET /v1/messages/{message_id}/html': 'messages:read',
  'GET /v1/messages/{message_id}/attachments/{attachment_id}': 'messages:read',
  'GET /v1/inboxes/{inbox_id}/threads': 'messages:read',
  'GET /v1/threads/{thread_id}': 'messages:read',
  'POST /v1/tokens': 'admin',
  'GET /v1/tokens': 'admin',
  'DELETE /v1/tokens/{token_id}': 'admin',
  'POST /v1/signin_links': 'admin',
  // Any valid token may read itself: that is how a client learns what it may offer.
  'GET /v1/tokens/self': 'any',
  'POST /v1/inboxes/{inbox_id}/messages': 'messages:send',
  'POST /v1/messages/{message_id}/reply': 'messages:send',
  'POST /v1/messages/{message_id}/reply_all': 'messages:send',
  'POST /v1/inboxes/{inbox_id}/a2a/requests': 'messages:send',
  'POST /v1/messages/{message_id}/a2a/respond': 'messages:send',
  'POST /v1/messages/{message_id}/release': 'inboxes:write',
  'POST /v1/domains': 'admin',
  'GET /v1/domains': 'admin',
  'GET /v1/domains/{name}': 'admin',
  'POST /v1/domains/{name}/verify': 'admin',
  'POST /v1/domains/{name}/resume': 'admin',
  'GET /v1/suppressions': 'admin',
  'POST /v1/suppressions': 'admin',
  'DELETE /v1/suppressions/{suppression_id}': 'admin',
  'GET /v1/limits': 'admin',
  'GET /v1/stats/sending': 'admin',
  'GET /v1/stats/throttles': 'admin',
  'POST /v1/limits': 'admin',
  'DELETE /v1/limits/{limit_id}': 'admin',
  'GET /v1/events': 'messages:read',
  'GET /v1/events/stream': 'messages:read',
  'GET /v1/inboxes/{inbox_id}/messages/wait': 'messages:read',
  'POST /v1/webhooks': 'webhooks:write',
  'GET /v1/webhooks': 'webhooks:write',
  'GET /v1/webhooks/{webhook_id}': 'webhooks:write',
  'PATCH /v1/webhooks/{webhook_id}': 'webhooks:write',
  'DELETE /v1/webhooks/{webhook_id}': 'webhooks:write',
  'POST /v1/webhooks/{webhook_id}/rotate_secret': 'webhooks:write',
  'GET /v1/webhooks/{webhook_id}/deliveries': 'webhooks:write',
  'POST /v1/webhooks/{webhook_id}/replay': 'webhooks:write',
  'POST /v1/campaigns': 'campaigns:write',
  'GET /v1/campaigns': 'campaigns:read',
  'GET /v1/campaigns/{campaign_id}': 'campaigns:read',
  'POST /v1/campaigns/{campaign_id}/pause': 'campaigns:write',
  'POST /v1/campaigns/{campaign_id}/resume': 'campaigns:write',
  'POST /v1/campaigns/{campaign_id}/leads': 'campaigns:write',
  'GET /v1/campaigns/{campaign_id}/runs': 'campaigns:read',
  'GET /v1/runs': 'campaigns:read',
  'GET /v1/runs/{run_id}': 'campaigns:read',
  'GET /v1/runs/{run_id}/trace': 'campaigns:read',
  'POST /v1/runs/{run_id}/retry': 'campaigns:write',
  // Either scope admits (a|b): drafts are written by draft-only tokens and read by readers.
  'POST /v1/inboxes/{inbox_id}/drafts': 'drafts:write|messages:send',
  'GET /v1/drafts': 'drafts:write|messages:read',
  'GET /v1/drafts/{draft_id}': 'drafts:write|messages:read',
  'POST /v1/drafts/{draft_id}/edit': 'drafts:write|messages:send',
  'POST /v1/drafts/{draft_id}/approve': 'messages:send',
  'POST /v1/drafts/{draft_id}/reject': 'drafts:write|messages:send',
};
/** Query strings that make a route answer at once (a long-poll that does not wait). */
const QUERIES: Record<string, string> = { 'GET /v1/inboxes/{inbox_id}/messages/wait': '?timeout=0' };
/** A stream never ends: its status is all the matrix reads of it. */
async function streamStatus(url: string, token: string): Promise<number> {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal });
  ac.abort();
  return res.status;
}
/** A valid body for each route that takes one (the scope check must be what refuses, not validation). */
const BODIES: Record<string, unknown> = {
  'POST /v1/tokens': { scopes: ['inboxes:read'] },
  'PATCH /v1/inboxes/{inbox_id}': { display_name: 'x' },
  'POST /v1/inboxes/{inbox_id}/messages': { to: 'lead@example.net', text: 'x' },
  'POST /v1/messages/{message_id}/reply': { text: 'x' },
  'POST /v1/messages/{message_id}/reply_all': { text: 'x' },
  'POST /v1/inboxes/{inbox_id}/a2a/requests': { to: 'lead@example.net', intent: 'x.y', payload: {} },
  'POST /v1/messages/{message_id}/a2a/respond': { payload: {} },
  'POST /v1/domains': { name: 'example.org' },
  'POST /v1/suppressions': { address: 'x@example.net' },
  'POST /v1/limits': { scope: 'recipient_domain', match: 'example.org', max: 1000, window: 'day' },
  'POST /v1/webhooks': { url: 'http://93.184.216.34/hook' },
  'PATCH /v1/webhooks/{webhook_id}': { description: 'x' },
  'POST /v1/campaigns/{campaign_id}/leads': { leads: [{ email: 'another-lead@example.net' }] },
  'POST /v1/inboxes/{inbox_id}/drafts': { to: 'lead@example.net', text: 'x' },
  'POST /v1/drafts/{draft_id}/edit': { text: 'y' },
};
/** A campaign from inbox A (the matrix's POST /v1/campaigns body, with the sender filled in). */
const campaignBody = (inboxId: string) => ({
  name: 'matrix', senders: [{ inbox: inboxId }], steps: [{ subject: 'Hello', text: 'Hi {{first_name|there}}' }],
  escalate_to: 'owner@example.net', leads: [{ email: 'lead@example.net' }],
});
const ALL = ['inboxes:read', 'inboxes:write', 'messages:read', 'messages:send', 'drafts:write', 'webhooks:write', 'campaigns:read', 'campaigns:write'];

const withAttachment = (to: string) => Buffer.from([
  'From: a@example.com', `To: ${to}`, 'Subject: secret', 'Message-ID: <s-' + Math.random() + '@example.com>',
  'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b"', '', '--b', 'Content-Type: text/plain', '', 'body', '--b',
  'Content-Type: application/octet-stream', 'Content-Disposition: attachment; filename="s.bin"', 'Content-Transfer-Encoding: base64', '',
  Buffer.from('top secret').toString('base64'), '--b--', '',
].join('\r\n'));

for (const engine of ENGINES) {
  describe(`${engine}: tokens and scopes`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let A: any, B: any, msgA: any, msgB: any;
    before(async () => {
      m = await startTestMailroom(engine);
      A = (await m.api('POST', '/v1/inboxes', { username: 'tenant-a' })).body;
      B = (await m.api('POST', '/v1/inboxes', { username: 'tenant-b' })).body;
      const c = await SmtpClient.connect(m.smtpPort);
      await c.cmd('EHLO t');
      for (const ib of [A, B]) assert.equal((await c.send('a@example.com', [ib.address], withAttachment(ib.address))).data?.code, 250);
      await c.quit();
      [msgA] = await waitForMessages(m, A.id);
      [msgB] = await waitForMessages(m, B.id);
    });
    after(async () => { await m?.destroy(); });

    const mint = async (body: object) => {
      const r = await m.api('POST', '/v1/tokens', body);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body;
    };

    test('token format: mr_ prefix, checksum, shown once, stored only as a hash (A8)', async () => {
      const t = await mint({ scopes: ['inboxes:read'], name: 'reader' });
      assert.ok(isWellFormedToken(t.token));
      assert.match(t.token, /^mr_[0-9A-Za-z]{36}$/);
      assert.equal(t.prefix, t.token.slice(0, 9));
      assert.ok(isWellFormedToken(m.adminToken));
      const listed = (await m.api('GET', '/v1/tokens')).body.data;
      assert.ok(listed.some((x: any) => x.id === t.id && x.name === 'reader'));
      assert.ok(!JSON.stringify(listed).includes(t.token), 'the list never shows a secret');
      // Nothing in the database holds a secret in plain text.
      const rows = await sql<{ dump: string }>`SELECT row_to_json(t)::text AS dump FROM tokens t`.execute(m.store.db);
      const settings = await sql<{ dump: string }>`SELECT row_to_json(s)::text AS dump FROM settings s`.execute(m.store.db);
      for (const secret of [t.token, m.adminToken]) {
        for (const r of [...rows.rows, ...settings.rows]) assert.ok(!r.dump.includes(secret.slice(9)), 'no plaintext token at rest');
      }
      assert.ok(rows.rows.every((r) => /"hash":"[0-9a-f]{64}"/.test(r.dump)));
    });

    test('missing, malformed, unknown and revoked tokens get 401 with WWW-Authenticate', async () => {
      const noAuth = await fetch(`${m.api.base}/v1/inboxes`);
      assert.equal(noAuth.status, 401);
      assert.match(noAuth.headers.get('www-authenticate') ?? '', /^Bearer/);
      assert.equal((await noAuth.json()).code, 'unauthorized');
      const good = generateToken();
      const badChecksum = good.slice(0, -1) + (good.endsWith('A') ? 'B' : 'A');
      assert.ok(!isWellFormedToken(badChecksum));
      for (const tok of [badChecksum, good, 'not-a-token-at-all-xxxxxxxx']) {
        const r = await m.api('GET', '/v1/inboxes', undefined, tok);
        assert.equal(r.status, 401, tok);
        assert.equal(r.body.code, 'unauthorized');
      }
      const t = await mint({ scopes: ['inboxes:read'] });
      assert.equal((await m.api('GET', '/v1/inboxes', undefined, t.token)).status, 200);
      const revoked = await m.api('DELETE', `/v1/tokens/${t.id}`);
      assert.equal(revoked.status, 200);
      assert.ok(revoked.body.revoked_at);
      assert.equal((await m.api('GET', '/v1/inboxes', undefined, t.token)).status, 401);
    });

    test('A9 scope matrix: every route refuses a token without its scope (403) and admits one with it', async () => {
      const doc = await (await fetch(`${m.api.base}/v1/openapi.json`)).json();
      const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) => Object.keys(ops).map((op) => `${op.toUpperCase()} ${p}`));
      assert.deepEqual(documented.sort(), Object.keys(ROUTE_SCOPES).sort(), 'ROUTE_SCOPES must list exactly the documented routes');
      const fill = (p: string) => p
        .replace('{inbox_id}', A.id).replace('{message_id}', msgA.id).replace('{attachment_id}', msgA.attachments[0].id)
        .replace('{thread_id}', msgA.thread_id).replace('{token_id}', 'tok_00000000000000000000000000')
        .replace('{name}', 'mailroom.test').replace('{suppression_id}', 'sup_00000000000000000000000000')
        .replace('{limit_id}', 'lim_00000000000000000000000000').replace('{webhook_id}', hookId)
        .replace('{campaign_id}', campaign.id).replace('{run_id}', runId).replace('{draft_id}', draftId);
      const hookId = (await m.api('POST', '/v1/webhooks', { url: 'http://93.184.216.34/matrix' })).body.id;
      const campaign = (await m.api('POST', '/v1/campaigns', campaignBody(A.id))).body;
      const runId = (await m.api('GET', `/v1/campaigns/${campaign.id}/runs`)).body.data[0].id;
      const draftId = (await m.api('POST', `/v1/inboxes/${A.id}/drafts`, { to: 'lead@example.net', text: 'matrix' })).body.id;
      BODIES['POST /v1/campaigns'] = campaignBody(A.id);
      for (const [route, scopes] of Object.entries(ROUTE_SCOPES)) {
        const [method, p] = route.split(' ');
        if (scopes === 'any') {
          for (const scope of ALL) assert.equal((await m.api(method, fill(p), undefined, (await mint({ scopes: [scope] })).token)).status, 200, `${route} with ${scope}`);
          continue;
        }
        const admits = scopes.split('|');
        const scope = admits.at(-1)!;
        const others = scope === 'admin' ? ALL : ALL.filter((s) => !admits.includes(s));
        const without = await mint({ scopes: others });
        const body = BODIES[route] ?? (method === 'POST' ? {} : undefined);
        const url = fill(p) + (QUERIES[route] ?? '');
        const denied = await m.api(method, url, body, without.token);
        assert.equal(denied.status, 403, `${route} without ${scopes}`);
        assert.equal(denied.body.code, 'insufficient_scope');
        if (p.endsWith('/stream')) {
          assert.equal(await streamStatus(m.api.base + url, (await mint({ scopes: [scope] })).token), 200, `${route} with ${scope}`);
          continue;
        }
        if (method !== 'DELETE') for (const scope of admits) {
          const withIt = await mint({ scopes: [scope] });
          const allowed = await m.api(method, url, body, withIt.token);
          // Releasing a message that is not held, retrying a run that is not dead: 409 after the scope check passed;
          // answering a message that is no a2a request: 422 after it.
          const passed = allowed.status < 300 || (/\/(release|retry)$/.test(route) && allowed.status === 409 && allowed.body.code === 'conflict')
            || (route.endsWith('/a2a/respond') && allowed.status === 422 && allowed.body.code === 'a2a_not_a_request')
            // a draft approved (or rejected) by an earlier route of the matrix: 409 after the scope check passed
            || (route.includes('/v1/drafts/') && allowed.status === 409 && allowed.body.code === 'draft_not_pending')
            // a plain-text message has no HTML body to show: 404 naming the body, after the scope check passed
            || (route.endsWith('/html') && allowed.status === 404 && /HTML body not found/.test(allowed.body.detail));
          assert.ok(passed, `${route} with ${scope}: ${allowed.status} ${JSON.stringify(allowed.body).slice(0, 200)}`);
        }
      }
      // A token cannot mint tokens, let alone broader ones, without admin.
      const writer = await mint({ scopes: ALL });
      assert.equal((await m.api('POST', '/v1/tokens', { scopes: ['admin'] }, writer.token)).status, 403);
    });

    test('A10 isolation: a token restricted to inbox A gets 404 for everything of inbox B, and lists only A', async () => {
      const t = await mint({ scopes: ALL, inbox_ids: [A.id] });
      const attB = msgB.attachments[0].id;
      for (const [method, p, body] of [
        ['GET', `/v1/inboxes/${B.id}`],
        ['PATCH', `/v1/inboxes/${B.id}`, { display_name: 'pwned' }],
        ['DELETE', `/v1/inboxes/${B.id}`],
        ['GET', `/v1/inboxes/${B.id}/messages`],
        ['GET', `/v1/inboxes/${B.id}/threads`],
        ['GET', `/v1/messages/${msgB.id}`],
        ['GET', `/v1/messages/${msgB.id}/raw`],
        ['GET', `/v1/messages/${msgB.id}/html`],
        ['GET', `/v1/messages/${msgB.id}/attachments/${attB}`],
        ['GET', `/v1/messages/${msgA.id}/attachments/${attB}`],
        ['GET', `/v1/threads/${msgB.thread_id}`],
      ] as [string, string, object?][]) {
        const r = await m.api(method, p, body, t.token);
        assert.equal(r.status, 404, `${method} ${p}`);
        assert.equal(r.body.code, 'not_found');
        // The answer is the same as for an id that does not exist at all: no existence oracle.
        const ghost = await m.api(method, p.replace(B.id, 'inb_00000000000000000000000000').replace(msgB.id, 'msg_00000000000000000000000000'), body, t.token);
        assert.equal(ghost.status, 404);
      }
      assert.equal((await m.api('GET', `/v1/inboxes/${B.id}`)).body.display_name, null, 'B untouched');
      const list = (await m.api('GET', '/v1/inboxes', undefined, t.token)).body.data;
      assert.deepEqual(list.map((x: any) => x.id), [A.id]);
      assert.equal((await m.api('GET', `/v1/messages/${msgA.id}/attachments/${msgA.attachments[0].id}`, undefined, t.token)).bytes.toString(), 'top secret');
      assert.equal((await m.api('GET', `/v1/threads/${msgA.thread_id}`, undefined, t.token)).status, 200);
      // A restricted token cannot create inboxes it could never see.
      assert.equal((await m.api('POST', '/v1/inboxes', {}, t.token)).status, 403);
      const unknownInbox = await m.api('POST', '/v1/tokens', { scopes: ['inboxes:read'], inbox_ids: ['inb_00000000000000000000000000'] });
      assert.equal(unknownInbox.status, 400);
    });
  });
}
