import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { Client, StreamableHTTPClientTransport, type CallToolResult } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { ENGINES, skipEngine, startTestMailroom, waitFor, waitForMessages, type TestMailroom } from './helpers/mailroom.ts';

/**
 * The MCP server (issue: webhooks/MCP/SDK): the SDK's own client over Streamable HTTP to the real
 * listener's /mcp and over stdio to `mailroom mcp` as a child process. The tools call the REST API
 * with the caller's token, so scopes, idempotency and errors are the REST ones.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/mailroom.js', import.meta.url));

const TOOLS = [
  'create_inbox', 'list_inboxes', 'delete_inbox', 'send_email', 'reply_to_email', 'list_messages', 'search_messages',
  'get_message', 'get_thread', 'get_attachment', 'wait_for_email', 'list_events', 'a2a_request', 'a2a_respond',
  'create_draft', 'list_drafts',
].sort();

type Fetch = typeof fetch;

/**
 * A client of /mcp. `era`: 'modern' negotiates protocol 2026-07-28 (per-request envelope), 'legacy'
 * speaks the 2025 handshake (the SDK client's default, and what most MCP hosts still send).
 */
async function httpClient(m: TestMailroom, token: string, opts: { era?: 'modern' | 'legacy'; fetch?: Fetch } = {}): Promise<Client> {
  const client = new Client({ name: 'mailroom-test', version: '1.0.0' }, opts.era === 'modern' ? { versionNegotiation: { mode: 'auto' } } : {});
  const transport = new StreamableHTTPClientTransport(new URL(`${m.api.base}/mcp`), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
  });
  await client.connect(transport);
  return client;
}

async function call(client: Client, name: string, args: Record<string, unknown>, options?: Parameters<Client['callTool']>[1]): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args }, options)) as CallToolResult;
}

/** A successful call's structured content (fails the test with the tool's text otherwise). */
async function ok(client: Client, name: string, args: Record<string, unknown>): Promise<any> {
  const r = await call(client, name, args);
  assert.ok(!r.isError, `${name} failed: ${textOf(r)}`);
  assert.ok(r.structuredContent, `${name} returned structuredContent`);
  return r.structuredContent;
}

function textOf(r: CallToolResult): string {
  return r.content.map((c) => (c.type === 'text' ? c.text : `[${c.type}]`)).join('\n');
}

async function token(m: TestMailroom, scopes: string[], inboxIds?: string[]): Promise<string> {
  const r = await m.api('POST', '/v1/tokens', { scopes, ...(inboxIds ? { inbox_ids: inboxIds } : {}), name: 'mcp-test' });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.token;
}

/** Whether the REST API has a route (a 404 "no route" problem means it is not built yet). */
async function hasRoute(m: TestMailroom, path: string): Promise<boolean> {
  const r = await m.api('GET', path);
  return !(r.status === 404 && /no route/.test(r.body?.detail ?? ''));
}

for (const engine of ENGINES) {
  describe(`${engine}: mcp`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let admin: Client;
    before(async () => {
      m = await startTestMailroom(engine);
      admin = await httpClient(m, m.adminToken, { era: 'modern' });
    });
    after(async () => {
      await admin?.close();
      await m?.destroy();
    });

    test('Streamable HTTP /mcp: sixteen tools with annotations; create inboxes, send, read the agent view, the thread and attachments on the receiving side', async () => {
      const { tools } = await admin.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), TOOLS);
      for (const t of tools) {
        for (const hint of ['readOnlyHint', 'destructiveHint', 'idempotentHint', 'openWorldHint'] as const) {
          assert.equal(typeof t.annotations?.[hint], 'boolean', `${t.name} sets ${hint}`);
        }
        assert.equal(t.inputSchema.type, 'object');
        assert.ok(t.outputSchema, `${t.name} has an outputSchema`);
        assert.ok(t.description && t.description.length < 600, `${t.name} has a short description`);
      }
      const byName = Object.fromEntries(tools.map((t) => [t.name, t.annotations!]));
      assert.equal(byName.delete_inbox.destructiveHint, true);
      assert.equal(byName.send_email.openWorldHint, true);
      assert.equal(byName.send_email.readOnlyHint, false);
      assert.equal(byName.reply_to_email.openWorldHint, true);
      // A draft is not sent: it reaches nobody outside Mailroom.
      assert.equal(byName.create_draft.openWorldHint, false);
      assert.equal(byName.create_draft.readOnlyHint, false);
      for (const n of ['list_inboxes', 'list_messages', 'search_messages', 'get_message', 'get_thread', 'get_attachment', 'wait_for_email', 'list_events', 'list_drafts']) {
        assert.equal(byName[n].readOnlyHint, true, `${n} is read-only`);
      }

      const sender = await ok(admin, 'create_inbox', { username: 'mcp-sender', display_name: 'MCP Sender', client_id: 'mcp/sender' });
      assert.equal(sender.address, 'mcp-sender@mailroom.test');
      assert.equal(sender.created, true);
      const again = await ok(admin, 'create_inbox', { username: 'mcp-sender', client_id: 'mcp/sender' });
      assert.equal(again.id, sender.id);
      assert.equal(again.created, false);
      const receiver = await ok(admin, 'create_inbox', { username: 'mcp-receiver' });
      const listed = await ok(admin, 'list_inboxes', { limit: 50 });
      assert.ok(listed.data.some((i: any) => i.id === receiver.id));

      const csv = 'name,score\nada,42\n';
      const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 1, 2, 3, 254, 255]);
      const sent = await ok(admin, 'send_email', {
        inbox_id: sender.id, to: receiver.address, subject: 'Handoff via MCP', text: 'Please research lead 42.\n',
        attachments: [
          { filename: 'scores.csv', content_type: 'text/csv', content: Buffer.from(csv).toString('base64') },
          { filename: 'logo.png', content_type: 'image/png', content: png.toString('base64') },
        ],
      });
      assert.match(sent.id, /^msg_/);
      assert.equal(sent.replayed, false);
      assert.match(sent.idempotency_key, /^mcp-/, 'a key is generated when the caller gives none');

      // The receiving side, through the tools only.
      const page = await waitFor(async () => {
        const p = await ok(admin, 'list_messages', { inbox_id: receiver.id });
        return p.data.length ? p : null;
      }, 20_000, 'the message to arrive');
      const [msg] = page.data;
      assert.equal(msg.subject, 'Handoff via MCP');
      assert.equal(msg.from.address, sender.address);
      assert.equal(msg.direction, 'inbound');

      const view = await call(admin, 'get_message', { message_id: msg.id });
      assert.ok(!view.isError, textOf(view));
      const text = textOf(view);
      assert.match(text, /Injection risk: /, 'the verdict line');
      assert.match(text, /<(UNTRUSTED-[0-9a-f]{16})>\n[^]*Please research lead 42\.[^]*\n<\/\1>/, 'the sender text inside the fence');
      assert.equal((view.structuredContent as any).view, 'agent');

      const structured = await ok(admin, 'get_message', { message_id: msg.id, view: 'structured' });
      assert.equal(structured.message.text.trim(), 'Please research lead 42.');
      assert.equal(structured.message.attachments.length, 2);

      const thread = await ok(admin, 'get_thread', { thread_id: msg.thread_id });
      assert.equal(thread.id, msg.thread_id);
      assert.equal(thread.messages.length, 1);
      assert.match(thread.messages[0].agent_view, /UNTRUSTED-/);

      const csvAtt = structured.message.attachments.find((a: any) => a.filename === 'scores.csv');
      const pngAtt = structured.message.attachments.find((a: any) => a.filename === 'logo.png');
      const gotCsv = await call(admin, 'get_attachment', { message_id: msg.id, attachment_id: csvAtt.id });
      assert.ok(!gotCsv.isError, textOf(gotCsv));
      assert.equal((gotCsv.structuredContent as any).encoding, 'text');
      assert.equal((gotCsv.structuredContent as any).text, csv);
      assert.match(textOf(gotCsv), /ada,42/);
      const gotPng = await ok(admin, 'get_attachment', { message_id: msg.id, attachment_id: pngAtt.id });
      assert.equal(gotPng.encoding, 'base64');
      assert.equal(gotPng.filename, 'logo.png');
      assert.deepEqual(Buffer.from(gotPng.content_base64, 'base64'), png);

      // The reply threads back into the sender's inbox.
      const reply = await ok(admin, 'reply_to_email', { message_id: msg.id, text: 'On it.', idempotency_key: 'mcp-reply-1' });
      assert.equal(reply.subject, 'Re: Handoff via MCP');
      assert.equal(reply.thread_id, msg.thread_id);
      const [back] = await waitForMessages(m, sender.id, 2); // its own outbound copy + the reply
      assert.equal(back.subject, 'Re: Handoff via MCP');
      assert.equal(back.thread_id, sent.thread_id);

      const found = await ok(admin, 'search_messages', { inbox_id: receiver.id, q: 'research lead' });
      assert.deepEqual(found.data.map((x: any) => x.id), [msg.id]);
      const none = await ok(admin, 'search_messages', { inbox_id: receiver.id, q: 'zzz-no-match' });
      assert.equal(none.data.length, 0);
      assert.match(textOf(await call(admin, 'search_messages', { inbox_id: receiver.id, q: 'zzz-no-match' })), /^No messages matching "zzz-no-match"\.$/);

      const gone = await ok(admin, 'delete_inbox', { inbox_id: receiver.id });
      assert.deepEqual(gone, { inbox_id: receiver.id, deleted: true });
      const missing = await call(admin, 'list_messages', { inbox_id: receiver.id });
      assert.equal(missing.isError, true);
      assert.match(textOf(missing), /^not_found: /);
    });

    test('/mcp without a bearer token, or with an invalid one, is 401 with WWW-Authenticate: Bearer', async () => {
      const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} });
      const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
      const none = await fetch(`${m.api.base}/mcp`, { method: 'POST', headers, body });
      assert.equal(none.status, 401);
      assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer\b/);
      assert.equal((await none.json()).code, 'unauthorized');
      const bad = await fetch(`${m.api.base}/mcp`, { method: 'POST', headers: { ...headers, authorization: 'Bearer mr_notarealtoken' }, body });
      assert.equal(bad.status, 401);
      assert.match(bad.headers.get('www-authenticate') ?? '', /^Bearer\b/);
      const big = await fetch(`${m.api.base}/mcp`, { method: 'POST', headers: { ...headers, authorization: `Bearer ${m.adminToken}` }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { pad: 'x'.repeat(1024 * 1024) } }) });
      assert.equal(big.status, 413);
    });

    test('send_email retried with the same idempotency_key after a timed-out first attempt sends once', async () => {
      const from = (await m.api('POST', '/v1/inboxes', { username: 'mcp-idem' })).body;
      const to = (await m.api('POST', '/v1/inboxes', { username: 'mcp-idem-to' })).body;
      // The first client's tools/call reaches the server and is answered, but the answer is lost:
      // to the agent it is a timeout.
      let dropped = 0;
      const lossy: Fetch = async (input, init) => {
        const res = await fetch(input, init);
        if (typeof init?.body === 'string' && init.body.includes('"tools/call"')) {
          await res.arrayBuffer();
          dropped++;
          throw new DOMException('The operation timed out.', 'TimeoutError');
        }
        return res;
      };
      const first = await httpClient(m, m.adminToken, { era: 'legacy', fetch: lossy });
      const args = { inbox_id: from.id, to: to.address, subject: 'Only once', text: 'One copy.', idempotency_key: 'lead-42-first-touch' };
      await assert.rejects(first.callTool({ name: 'send_email', arguments: args }));
      await first.close();
      assert.equal(dropped, 1);

      const second = await ok(admin, 'send_email', args);
      assert.equal(second.replayed, true);
      assert.equal(second.idempotency_key, 'lead-42-first-touch');
      const outbound = (await m.api('GET', `/v1/inboxes/${from.id}/messages?direction=outbound`)).body.data;
      assert.equal(outbound.length, 1, 'exactly one message was sent');
      assert.equal(second.id, outbound[0].id, 'the retry returned the original message');
      await waitForMessages(m, to.id, 1);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal((await m.api('GET', `/v1/inboxes/${to.id}/messages`)).body.data.length, 1, 'one copy arrived');

      // The same key with a different request is refused, as in REST.
      const changed = await call(admin, 'send_email', { ...args, text: 'Another text.' });
      assert.equal(changed.isError, true);
      assert.match(textOf(changed), /^idempotency_key_reused: /);
    });

    test('A9 scope matrix: every MCP tool refuses a token without its scope (insufficient_scope) and the matrix covers every listed tool', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'mcp-matrix' })).body;
      const fake = 'msg_00000000000000000000000000';
      const TOOL_SCOPES: Record<string, [scope: string, args: Record<string, unknown>]> = {
        create_inbox: ['inboxes:write', {}],
        list_inboxes: ['inboxes:read', {}],
        delete_inbox: ['inboxes:write', { inbox_id: inbox.id }],
        send_email: ['messages:send', { inbox_id: inbox.id, to: 'x@example.com', subject: 's', text: 't' }],
        reply_to_email: ['messages:send', { message_id: fake, text: 't' }],
        list_messages: ['messages:read', { inbox_id: inbox.id }],
        search_messages: ['messages:read', { inbox_id: inbox.id, q: 'x' }],
        get_message: ['messages:read', { message_id: fake }],
        get_thread: ['messages:read', { thread_id: 'thr_00000000000000000000000000' }],
        get_attachment: ['messages:read', { message_id: fake, attachment_id: 'att_00000000000000000000000000' }],
        wait_for_email: ['messages:read', { inbox_id: inbox.id, timeout_seconds: 1 }],
        list_events: ['messages:read', {}],
        a2a_request: ['messages:send', { inbox_id: inbox.id, to: 'x@example.com', intent: 'x.y', payload: {}, wait_seconds: 0 }],
        a2a_respond: ['messages:send', { message_id: fake, payload: {} }],
        // Either scope admits (a|b): a draft-only token writes drafts; a reader lists them.
        create_draft: ['drafts:write|messages:send', { inbox_id: inbox.id, to: 'x@example.com', text: 't' }],
        list_drafts: ['drafts:write|messages:read', {}],
      };
      const listed = (await admin.listTools()).tools.map((t) => t.name).sort();
      assert.deepEqual(listed, Object.keys(TOOL_SCOPES).sort(), 'the matrix must list exactly the served tools');
      const ALL = ['inboxes:read', 'inboxes:write', 'messages:read', 'messages:send', 'drafts:write', 'webhooks:write'];
      for (const [tool, [scopes, args]] of Object.entries(TOOL_SCOPES)) {
        const admits = scopes.split('|');
        const client = await httpClient(m, await token(m, ALL.filter((x) => !admits.includes(x))), { era: 'legacy' });
        try {
          const r = await call(client, tool, args);
          assert.equal(r.isError, true, `${tool} without ${scopes}`);
          assert.match(textOf(r), new RegExp(`^insufficient_scope: .*"${admits[0]}"`), `${tool} without ${scopes}: ${textOf(r)}`);
        } finally {
          await client.close();
        }
      }
    });

    test('drafts over MCP: a draft-only token writes a draft (create_draft, idempotent by client_id) and lists it; send_email is refused to it', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'mcp-drafter' })).body;
      const drafter = await httpClient(m, await token(m, ['inboxes:read', 'messages:read', 'drafts:write'], [inbox.id]), { era: 'legacy' });
      try {
        const d = await ok(drafter, 'create_draft', { inbox_id: inbox.id, to: 'prospect@example.com', subject: 'Proposal', text: 'For your approval.', client_id: 'mcp-draft-1' });
        assert.equal(d.status, 'pending');
        assert.equal((await ok(drafter, 'create_draft', { inbox_id: inbox.id, to: 'prospect@example.com', text: 'again', client_id: 'mcp-draft-1' })).id, d.id);
        const listed = await ok(drafter, 'list_drafts', { inbox_id: inbox.id, status: 'pending' });
        assert.deepEqual(listed.data.map((x: any) => x.id), [d.id]);
        const send = await call(drafter, 'send_email', { inbox_id: inbox.id, to: 'prospect@example.com', subject: 'x', text: 'y' });
        assert.equal(send.isError, true);
        assert.match(textOf(send), /^insufficient_scope/);
        const bad = await call(drafter, 'create_draft', { inbox_id: inbox.id, to: 'prospect@example.com', subject: 'a\r\nBcc: x@evil.example', text: 'y' });
        assert.equal(bad.isError, true);
        assert.match(textOf(bad), /^header_injection/);
      } finally {
        await drafter.close();
      }
    });

    test('a token without messages:send gets isError with insufficient_scope from send_email; invalid arguments are a tool error too', async () => {
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'mcp-readonly' })).body;
      const readOnly = await httpClient(m, await token(m, ['inboxes:read', 'messages:read']), { era: 'legacy' });
      try {
        const r = await call(readOnly, 'send_email', { inbox_id: inbox.id, to: 'someone@example.com', subject: 'x', text: 'y' });
        assert.equal(r.isError, true);
        assert.equal(textOf(r), 'insufficient_scope: this token lacks the "messages:send" scope');
        const listed = await ok(readOnly, 'list_inboxes', {});
        assert.ok(listed.data.some((i: any) => i.id === inbox.id));
        const bad = await call(readOnly, 'get_message', { message_id: 'msg_x', view: 'html' });
        assert.equal(bad.isError, true);
      } finally {
        await readOnly.close();
      }
      // A token restricted to one inbox never learns that others exist.
      const other = (await m.api('POST', '/v1/inboxes', { username: 'mcp-other' })).body;
      const scoped = await httpClient(m, await token(m, ['inboxes:read', 'messages:read', 'messages:send'], [inbox.id]), { era: 'modern' });
      try {
        const listed = await ok(scoped, 'list_inboxes', {});
        assert.deepEqual(listed.data.map((i: any) => i.id), [inbox.id]);
        const r = await call(scoped, 'list_messages', { inbox_id: other.id });
        assert.match(textOf(r), /^not_found: /);
      } finally {
        await scoped.close();
      }
    });

    test('stdio: `mailroom mcp` serves the tools against MAILROOM_URL with MAILROOM_TOKEN; without a token it exits 2', async () => {
      const transport = new StdioClientTransport({
        command: process.execPath, args: [BIN, 'mcp'], cwd: ROOT, stderr: 'pipe',
        env: { PATH: process.env.PATH ?? '', MAILROOM_URL: m.api.base, MAILROOM_TOKEN: m.adminToken },
      });
      let stderr = '';
      transport.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
      const client = new Client({ name: 'mailroom-test', version: '1.0.0' });
      await client.connect(transport);
      try {
        const { tools } = await client.listTools();
        assert.deepEqual(tools.map((t) => t.name).sort(), TOOLS);
        const inbox = (await m.api('POST', '/v1/inboxes', { username: 'mcp-stdio' })).body;
        const listed = await ok(client, 'list_inboxes', { limit: 200 });
        assert.ok(listed.data.some((i: any) => i.id === inbox.id));
        const missing = await call(client, 'get_thread', { thread_id: 'thr_nope' });
        assert.equal(missing.isError, true);
        assert.match(textOf(missing), /^not_found: /);
      } finally {
        await client.close();
      }
      assert.match(stderr, /serving MCP on stdio/);

      const child = spawn(process.execPath, [BIN, 'mcp'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', MAILROOM_URL: m.api.base }, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => { out += d; });
      child.stderr.on('data', (d) => { err += d; });
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      assert.equal(code, 2);
      assert.match(err, /MAILROOM_TOKEN is required/);
      assert.equal(out, '', 'nothing on stdout, the protocol channel');
    });

    test('wait_for_email returns the message that arrives while it waits, with progress meanwhile; list_events sees message.received', async () => {
      assert.ok(await hasRoute(m, '/v1/events'), 'GET /v1/events exists');
      const waiter = (await m.api('POST', '/v1/inboxes', { username: 'mcp-waiter' })).body;
      const peer = (await m.api('POST', '/v1/inboxes', { username: 'mcp-peer' })).body;

      const nothing = await ok(admin, 'wait_for_email', { inbox_id: waiter.id, timeout_seconds: 1 });
      assert.deepEqual(nothing, { timed_out: true, message: null });

      const started = Date.now();
      const progress: number[] = [];
      const waiting = call(admin, 'wait_for_email', { inbox_id: waiter.id, from: peer.address, timeout_seconds: 60 }, {
        timeout: 90_000, resetTimeoutOnProgress: true, onprogress: (p) => { progress.push(p.progress); },
      });
      await new Promise((r) => setTimeout(r, 6000));
      const sent = await m.api('POST', `/v1/inboxes/${peer.id}/messages`, { to: waiter.address, subject: 'Are you there?', text: 'Ping from the peer.' });
      assert.equal(sent.status, 202, JSON.stringify(sent.body));
      const r = await waiting;
      assert.ok(!r.isError, textOf(r));
      const s = r.structuredContent as any;
      assert.equal(s.timed_out, false);
      assert.equal(s.message.subject, 'Are you there?');
      assert.equal(s.message.inbox_id, waiter.id);
      assert.equal(s.message.from.address, peer.address);
      assert.match(s.agent_view, /<UNTRUSTED-[0-9a-f]{16}>\nPing from the peer\./);
      assert.ok(Date.now() - started >= 6000 && Date.now() - started < 30_000, 'answered on arrival');
      assert.ok(progress.length >= 1 && progress[0] >= 4, `progress was reported while waiting: ${progress}`);

      const events = await ok(admin, 'list_events', { types: ['message.received'], inbox_id: waiter.id });
      const received = events.data.find((e: any) => e.message_id === s.message.id);
      assert.ok(received, `message.received for ${s.message.id} in ${JSON.stringify(events.data)}`);
      assert.equal(received.type, 'message.received');
      assert.equal(received.inbox_id, waiter.id);
      assert.equal(received.thread_id, s.message.thread_id);
      assert.ok(events.data.every((e: any) => e.type === 'message.received' && e.inbox_id === waiter.id));
      // Resuming after the last cursor returns nothing new.
      const later = await ok(admin, 'list_events', { after: events.next_cursor ?? received.cursor, inbox_id: waiter.id });
      assert.equal(later.data.length, 0);
    });
  });
}
