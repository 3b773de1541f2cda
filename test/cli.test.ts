import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { loadConfig } from '../src/config/config.ts';
import { startMailroom } from '../src/server.ts';
import { createLogger } from '../src/log.ts';
import { apiClient, ENGINES, skipEngine, startTestMailroom, testEnv, waitForMessages, type TestMailroom } from './helpers/mailroom.ts';
import { SmtpClient, message } from './helpers/smtp.ts';

const exec = promisify(execFile);
const BIN = path.resolve('bin/mailroom.js');

async function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err: any) {
    return { code: err.code ?? 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

for (const engine of ENGINES) {
  describe(`${engine}: mailroom CLI against a running server`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let env: Record<string, string>;
    before(async () => {
      m = await startTestMailroom(engine);
      env = { MAILROOM_URL: m.api.base, MAILROOM_TOKEN: m.adminToken };
    });
    after(async () => { await m?.destroy(); });

    test('inbox create / list / delete, with --json and as a table', async () => {
      const created = await cli(['inbox', 'create', '--username', 'cli-bot', '--display-name', 'CLI Bot', '--json'], env);
      assert.equal(created.code, 0, created.stderr);
      const inbox = JSON.parse(created.stdout);
      assert.equal(inbox.address, 'cli-bot@mailroom.test');
      const human = await cli(['inbox', 'create', '--domain', 'agents.test'], env);
      assert.equal(human.code, 0);
      assert.match(human.stdout, /^[a-z]+-[a-z]+-\d{4}@agents\.test  \(inb_[0-9a-z]{26}\)\n$/);
      const table = await cli(['inbox', 'list'], env);
      assert.match(table.stdout, /^ID\s+ADDRESS\s+DISPLAY_NAME\s+CREATED_AT\n/);
      assert.match(table.stdout, /cli-bot@mailroom\.test\s+CLI Bot/);
      const listed = JSON.parse((await cli(['inbox', 'list', '--json'], env)).stdout);
      assert.ok(listed.data.some((x: any) => x.id === inbox.id));
      const taken = await cli(['inbox', 'create', '--username', 'cli-bot'], env);
      assert.equal(taken.code, 1);
      assert.match(taken.stderr, /already taken \(username_taken, HTTP 409\)/);
      assert.equal((await cli(['inbox', 'delete', inbox.id], env)).code, 0);
      assert.equal((await cli(['inbox', 'delete', inbox.id], env)).code, 1);
    });

    test('messages list / show / show --raw', async () => {
      const inbox = JSON.parse((await cli(['inbox', 'create', '--username', 'cli-mail', '--json'], env)).stdout);
      const c = await SmtpClient.connect(m.smtpPort);
      await c.cmd('EHLO t');
      const data = message({ to: inbox.address, subject: 'CLI subject', body: 'The body text.' });
      assert.equal((await c.send('s@example.com', [inbox.address], data)).data?.code, 250);
      await c.quit();
      const [msg] = await waitForMessages(m, inbox.id);
      const list = await cli(['messages', 'list', inbox.id], env);
      assert.match(list.stdout, new RegExp(`${msg.id}.*sender@example\\.com\\s+CLI subject`));
      const show = await cli(['messages', 'show', msg.id], env);
      assert.match(show.stdout, /^From: {5}Sender <sender@example\.com>$/m);
      assert.match(show.stdout, /^Subject: {2}CLI subject$/m);
      assert.match(show.stdout, /The body text\./);
      const raw = await cli(['messages', 'show', msg.id, '--raw'], env);
      assert.ok(raw.stdout.startsWith('Received: '));
      assert.ok(raw.stdout.endsWith(data.toString('latin1')));
    });

    test('domain add prints the DNS records to publish; domain list / show; send queues a message', async () => {
      const added = await cli(['domain', 'add', 'Example.ORG'], env);
      assert.equal(added.code, 0, added.stderr);
      assert.match(added.stdout, /^example\.org  not verified/m);
      assert.match(added.stdout, /TXT mr\d{6}\._domainkey\.example\.org  v=DKIM1; k=rsa; p=[A-Za-z0-9+/]+=*/);
      assert.match(added.stdout, /TXT _dmarc\.example\.org  v=DMARC1; p=none/);
      assert.match(added.stdout, /MX  example\.org  10  mx\.mailroom\.test/);
      const shown = JSON.parse((await cli(['domain', 'show', 'example.org', '--json'], env)).stdout);
      assert.equal(shown.name, 'example.org');
      assert.equal(shown.records.length, 4);
      const list = await cli(['domain', 'list'], env);
      assert.match(list.stdout, /example\.org/);
      assert.match(list.stdout, /mailroom\.test/, 'served domains have a key from the first start');
      const bad = await cli(['domain', 'add', 'not a domain'], env);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /invalid_request/);

      const inbox = JSON.parse((await cli(['inbox', 'create', '--username', 'cli-sender', '--json'], env)).stdout);
      const sent = await cli(['send', inbox.id, '--to', 'someone@example.org', '--subject', 'hi', '--text', 'hello', '--idempotency-key', 'cli-1', '--json'], env);
      assert.equal(sent.code, 0, sent.stderr);
      const msg = JSON.parse(sent.stdout);
      assert.equal(msg.delivery.status, 'queued');
      const again = JSON.parse((await cli(['send', inbox.id, '--to', 'someone@example.org', '--subject', 'hi', '--text', 'hello', '--idempotency-key', 'cli-1', '--json'], env)).stdout);
      assert.equal(again.id, msg.id, 'the same idempotency key sends once');
      const refused = await cli(['send', inbox.id, '--to', 'not-an-address'], env);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /invalid_address/);
    });

    test('token create / list / revoke; a restricted token works from the CLI', async () => {
      const inbox = JSON.parse((await cli(['inbox', 'create', '--username', 'cli-token', '--json'], env)).stdout);
      const made = await cli(['token', 'create', '--scope', 'inboxes:read', '--scope', 'messages:read', '--inbox', inbox.id, '--name', 'reader', '--json'], env);
      assert.equal(made.code, 0, made.stderr);
      const tok = JSON.parse(made.stdout);
      assert.deepEqual(tok.inbox_ids, [inbox.id]);
      const asReader = await cli(['inbox', 'list', '--json'], { ...env, MAILROOM_TOKEN: tok.token });
      assert.deepEqual(JSON.parse(asReader.stdout).data.map((x: any) => x.id), [inbox.id]);
      const denied = await cli(['inbox', 'create'], { ...env, MAILROOM_TOKEN: tok.token });
      assert.equal(denied.code, 1);
      assert.match(denied.stderr, /insufficient_scope/);
      assert.match((await cli(['token', 'list'], env)).stdout, new RegExp(`${tok.id}\\s+reader\\s+${tok.prefix}`));
      assert.equal((await cli(['token', 'revoke', tok.id], env)).code, 0);
      assert.match((await cli(['inbox', 'list'], { ...env, MAILROOM_TOKEN: tok.token })).stderr, /unauthorized/);
    });

    test('usage errors exit 2 with help; an unreachable server is named clearly', async () => {
      const none = await cli([], env);
      assert.equal(none.code, 2);
      assert.match(none.stdout, /Usage:/);
      const bad = await cli(['inbox', 'explode'], env);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /unknown command "inbox explode"/);
      const noScope = await cli(['token', 'create'], env);
      assert.equal(noScope.code, 2);
      assert.match(noScope.stderr, /--scope is required/);
      const badScope = await cli(['token', 'create', '--scope', 'root'], env);
      assert.match(badScope.stderr, /unknown scope root/);
      const down = await cli(['inbox', 'list'], { ...env, MAILROOM_URL: 'http://127.0.0.1:9' });
      assert.equal(down.code, 1);
      assert.match(down.stderr, /cannot reach Mailroom at http:\/\/127\.0\.0\.1:9/);
      assert.match((await cli(['--version'], env)).stdout, /^\d+\.\d+\.\d+\n$/);
    });
  });
}

describe('pglite: token create on a stopped server writes the data directory directly', { skip: ENGINES.includes('pglite') ? false : 'pglite not selected' }, () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(path.join(tmpdir(), 'mailroom-cli-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  test('the token is usable once the server starts on that directory', async () => {
    const env = { MAILROOM_DATA_DIR: dir, MAILROOM_HTTP_PORT: '9', MAILROOM_TOKEN: 'unused-because-offline-xxxx', MAILROOM_LOG_LEVEL: 'silent' };
    const made = await cli(['token', 'create', '--scope', 'admin', '--json'], env);
    assert.equal(made.code, 0, made.stderr);
    const tok = JSON.parse(made.stdout);
    const config = loadConfig(testEnv('pglite', dir, 'unused'));
    const server = await startMailroom(config, { log: createLogger('silent') });
    try {
      const api = apiClient(`http://127.0.0.1:${server.httpPort}`, tok.token);
      assert.equal((await api('GET', '/v1/inboxes')).status, 200);
      // While the server holds the directory, the offline path refuses clearly.
      const locked = await cli(['token', 'create', '--scope', 'admin'], env);
      assert.equal(locked.code, 1);
      assert.match(locked.stderr, /in use by another Mailroom process/);
    } finally {
      await server.stop();
    }
  });
});
