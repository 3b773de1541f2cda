import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { ENGINES, skipEngine, startTestMailroom, waitFor, type TestMailroom } from './helpers/mailroom.ts';

/**
 * The campaign commands of the CLI against a running server, with the example campaign and lead
 * list shipped in examples/campaigns (senders pointed at this server's inboxes), and `mailroom
 * demo` end to end.
 */
const exec = promisify(execFile);
const BIN = path.resolve('bin/mailroom.js');

async function cli(args: string[], env: Record<string, string>, timeout = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err: any) {
    return { code: err.code ?? 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

for (const engine of ENGINES) {
  describe(`${engine}: mailroom campaign commands`, { skip: await skipEngine(engine) }, () => {
    let m: TestMailroom;
    let env: Record<string, string>;
    let dir: string;
    before(async () => {
      m = await startTestMailroom(engine);
      env = { MAILROOM_URL: m.api.base, MAILROOM_TOKEN: m.adminToken };
      dir = await mkdtemp(path.join(tmpdir(), 'mailroom-campaign-cli-'));
    });
    after(async () => {
      await m?.destroy();
      await rm(dir, { recursive: true, force: true });
    });

    test('campaign create from the example YAML and CSV, then show, runs, trace and dlq list', async () => {
      const ada = (await m.api('POST', '/v1/inboxes', { username: 'ada' })).body;
      const grace = (await m.api('POST', '/v1/inboxes', { username: 'grace' })).body;
      const yaml = (await readFile('examples/campaigns/outreach.yaml', 'utf8'))
        .replace('ada@outreach.example.com', ada.address).replace('grace@outreach.example.com', grace.address);
      const file = path.join(dir, 'outreach.yaml');
      await writeFile(file, yaml);

      const created = await cli(['campaign', 'create', file, '--leads', 'examples/campaigns/leads.csv', '--json'], env);
      assert.equal(created.code, 0, created.stderr);
      const c = JSON.parse(created.stdout);
      const csvRows = (await readFile('examples/campaigns/leads.csv', 'utf8')).trim().split('\n').length - 1;
      assert.equal(c.funnel.leads, csvRows, 'every lead of the CSV became a run');
      assert.deepEqual(c.senders.map((s: any) => s.address).sort(), [ada.address, grace.address].sort());

      const show = await cli(['campaign', 'show', c.id], env);
      assert.equal(show.code, 0, show.stderr);
      assert.match(show.stdout, /leads\s+10/);
      assert.match(show.stdout, /sent step 3\s+0/);
      const runs = await cli(['campaign', 'runs', c.id], env);
      assert.match(runs.stdout, /^ID\s+EMAIL\s+STATUS/);
      // Research needs no window: every run gets past it at once; its trace shows the call.
      const run = await waitFor(async () => (await m.api('GET', `/v1/campaigns/${c.id}/runs`)).body.data.find((r: any) => r.stage !== 'research'), 15_000, 'a run past research');
      const trace = await cli(['trace', run.id], env);
      assert.equal(trace.code, 0, trace.stderr);
      assert.match(trace.stdout, new RegExp(`run ${run.id}  lead ${run.lead.email.replace(/[.+]/g, '\\$&')}`));
      assert.match(trace.stdout, /agent\s+research/);
      assert.match(trace.stdout, /handoff\s+research → personalize/);
      const dlq = await cli(['dlq', 'list'], env);
      assert.equal(dlq.code, 0);
      assert.equal(dlq.stdout.trim(), '(none)');
      assert.equal((await cli(['campaign', 'pause', c.id, '--json'], env)).code, 0);
      assert.equal((await m.api('GET', `/v1/campaigns/${c.id}`)).body.status, 'paused');
    });

    test('a campaign file with a mistake is refused by the CLI with its line, before anything reaches the server', async () => {
      const file = path.join(dir, 'broken.yaml');
      await writeFile(file, ['name: broken', 'senders:', '  - inbox: nobody@mailroom.test', 'steps:', '  - subject: Hi', '    text: Hello', '    delay_business_days: [1]', ''].join('\n'));
      const r = await cli(['campaign', 'create', file], env);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /broken\.yaml:7:\d+: steps\[0\]\.delay_business_days: /);
      assert.equal((await m.api('GET', '/v1/campaigns')).body.data.filter((x: any) => x.name === 'broken').length, 0);
    });
  });
}

describe('mailroom demo', () => {
  test('the demo campaign: every lead ends as its persona implies, each step reaches each prospect once, and the summary says so', async () => {
    const t0 = Date.now();
    const r = await cli(['demo', '--json'], { MAILROOM_LOG_LEVEL: 'error' }, 240_000);
    assert.equal(r.code, 0, `${r.stderr}\n${r.stdout.slice(-2000)}`);
    const s = JSON.parse(r.stdout);
    console.log(`  demo: ${((Date.now() - t0) / 1000).toFixed(1)} s wall, ${JSON.stringify({ sent: s.sent_per_step, replies: s.replies, prevented: s.duplicates_prevented, deferred: s.deferred_by_rate_limit })}`);
    assert.equal(s.leads, 50);
    assert.equal(s.outcomes_as_expected, 50, s.unexpected.join('\n'));
    assert.equal(s.world.duplicates_received, 0);
    assert.equal(s.duplicates_prevented, s.sent_per_step.reduce((a: number, b: number) => a + b, 0), 'every step the second orchestrator re-sent was refused or replayed');
    assert.equal(s.sent_per_step[0], 50);
    assert.ok(s.escalated > 0 && s.replies.interested > 0 && s.bounced.at_rcpt > 0 && s.bounced.async_dsn > 0);
    assert.ok(Object.keys(s.follow_ups_cancelled).length >= 4, 'follow-ups were cancelled for several reasons');
  });
});
