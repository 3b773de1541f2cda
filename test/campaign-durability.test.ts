import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { clockNow, realAt } from '../src/orchestrator/calendar.ts';
import type { Prospect } from '../src/orchestrator/demo/personas.ts';
import { allRuns, createScenario, startCampaignWorld, verifyCampaign, waitCompleted, type CampaignWorld } from './helpers/campaign.ts';
import { apiClient, dropSchemas, ENGINES, skipEngine, testEnv, uniqueSchema, waitFor } from './helpers/mailroom.ts';
import { killAllServes, startServe } from './helpers/process.ts';

/**
 * Campaigns survive what production does to them (issue 6): two orchestrator processes on one
 * PostgreSQL, a kill -9 in the middle of the campaign, and a reply that comes six campaign hours
 * after the last send with the process restarted in between. `mailroom serve` runs as real child
 * processes; the simulated world is their relay.
 */
const ADMIN = 'campaign-durability-admin-token-01234';
// A crash between the relay's 250 and the commit that records it can send one message twice (the
// outbox's documented window): at most one copy per message in flight, same Message-ID.
const SEND_CONCURRENCY = 16;

type Serve = Awaited<ReturnType<typeof startServe>>;

for (const engine of ENGINES) {
  describe(`${engine}: campaign durability`, { skip: await skipEngine(engine) }, () => {
    const dirs: string[] = [];
    const schemas: string[] = [];
    const worlds: CampaignWorld[] = [];
    after(async () => {
      await killAllServes();
      for (const w of worlds) await w.stop();
      for (const s of schemas) if (engine === 'postgres') await dropSchemas(s);
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    });

    async function serveEnv(cw: CampaignWorld, schema: string) {
      const dir = await mkdtemp(path.join(tmpdir(), `mailroom-campaign-${engine}-`));
      dirs.push(dir);
      return testEnv(engine, dir, schema, { MAILROOM_ADMIN_TOKEN: ADMIN, MAILROOM_SMTP_RELAY_URL: cw.world.relayUrl, MAILROOM_LOG_LEVEL: 'warn' });
    }

    async function world(): Promise<CampaignWorld> {
      const cw = await startCampaignWorld();
      worlds.push(cw);
      return cw;
    }

    /** A world, a fresh store and one `serve` using the world as its relay. */
    async function launch() {
      const cw = await world();
      const schema = uniqueSchema();
      schemas.push(schema);
      const env = await serveEnv(cw, schema);
      const p: Serve = await startServe(env);
      cw.world.setMailroom({ host: '127.0.0.1', port: p.smtpPort });
      return { cw, env, p, api: apiClient(`http://127.0.0.1:${p.httpPort}`, ADMIN) };
    }

    /** Starts `serve` again on the same store; the world's replies go to its new port. */
    async function restart(cw: CampaignWorld, env: Record<string, string>) {
      const p = await startServe(env);
      cw.world.setMailroom({ host: '127.0.0.1', port: p.smtpPort });
      return { p, api: apiClient(`http://127.0.0.1:${p.httpPort}`, ADMIN) };
    }

    if (engine === 'postgres') {
      test('two orchestrator processes on one PostgreSQL: the same outcome, no step sent twice', async () => {
        const cw = await world();
        const schema = uniqueSchema();
        schemas.push(schema);
        const env = await serveEnv(cw, schema);
        const a = await startServe(env);
        const b = await startServe(env);
        // Replies may land on either process: the world sends them to one, whose ingest wakes runs anywhere.
        cw.world.setMailroom({ host: '127.0.0.1', port: b.smtpPort });
        const api = apiClient(`http://127.0.0.1:${a.httpPort}`, ADMIN);
        const sc = await createScenario(api, cw, { leads: 200 });
        await waitCompleted(() => api, sc.id, 240_000);
        const v = await verifyCampaign(api, cw, sc);
        console.log(`  two processes: ${JSON.stringify(v)}`);
        // Both processes did campaign work: each agent span names the process that ran it.
        const workers = new Set<string>();
        for (const r of (await allRuns(api, sc.id)).slice(0, 60)) {
          for (const e of (await api('GET', `/v1/runs/${r.id}/trace`)).body.timeline) if (e.kind === 'agent') workers.add(e.input.worker);
        }
        assert.deepEqual([...workers].map((w) => w.split(':')[1]).sort(), [String(a.pid), String(b.pid)].sort(), 'runs were worked by both processes');
      });
    }

    test('kill -9 in the middle of a campaign, then restart: the same outcome, nothing lost, no step sent twice', async () => {
      let { cw, env, p, api } = await launch();
      const sc = await createScenario(api, cw, { leads: 200 });
      // Kill while first messages are being sent and replies handled.
      await waitFor(async () => cw.world.received.length >= 60, 60_000, '60 messages at the world');
      await p.kill9();
      const atKill = cw.world.received.length;
      ({ p, api } = await restart(cw, env));
      await waitCompleted(() => api, sc.id, 300_000);
      const v = await verifyCampaign(api, cw, sc, { allowTransportCopies: SEND_CONCURRENCY }).catch((err) => {
        throw new Error(`${err.message}\n--- serve output after the restart:\n${p.output().slice(-3000)}`);
      });
      console.log(`  kill -9 at ${atKill} received: ${JSON.stringify(v)}`);
    });

    test('a reply six campaign hours after the last send, with the process restarted in between, is classified and acted on', async () => {
      let { cw, env, p, api } = await launch();
      const lead: Prospect = { address: 'silent.1@late-reply.example.de', persona: 'silent', first_name: 'Lena', last_name: 'Vogt', company: 'Late Reply', domain: 'late-reply.example.de' };
      const sc = await createScenario(api, cw, { leads: 1, prospects: [lead], finalWaitBusinessDays: 3 });
      const last = await waitFor(async () => cw.world.received.find((w) => w.to === lead.address && w.mailroomHeaders['x-mailroom-step'] === '3'), 120_000, 'the last step at the world');
      const run = (await allRuns(api, sc.id))[0];

      await p.stop();
      // Six campaign hours after the last send (the process is down for most of them).
      const replyAt = new Date(last.simAt.getTime() + 6 * 3_600_000);
      await new Promise((r) => setTimeout(r, Math.max(0, realAt(cw.clock, replyAt) - Date.now())));
      ({ p, api } = await restart(cw, env));
      const stillWaiting = (await api('GET', `/v1/runs/${run.id}`)).body;
      assert.equal(stillWaiting.stage, 'await_reply', 'the run waits for a reply across the restart');
      const injected = await cw.world.inject({ message: last, text: 'Sorry for the slow answer. Yes, we are interested. Could we talk on Thursday?' });
      const hoursLater = (injected.simAt!.getTime() - last.simAt.getTime()) / 3_600_000;
      assert.ok(hoursLater >= 6, `the reply came ${hoursLater.toFixed(1)} campaign hours after the last send`);

      const ended = await waitFor(async () => {
        const r = (await api('GET', `/v1/runs/${run.id}`)).body;
        return r.status === 'done' ? r : null;
      }, 60_000, 'the run to act on the late reply');
      assert.equal(ended.outcome, 'replied');
      assert.equal(ended.reply_class, 'interested');
      const escalation = await waitFor(async () => (await api('GET', `/v1/inboxes/${sc.ownerInboxId}/messages`)).body.data.find((x: any) => x.subject.includes(lead.address)), 15_000, 'the escalation');
      assert.match(escalation.subject, /interested/);
      const trace = (await api('GET', `/v1/runs/${run.id}/trace`)).body.timeline as any[];
      const respond = trace.find((e) => e.kind === 'agent' && e.name === 'respond');
      assert.ok(respond, 'the response agent classified it');
      assert.ok(clockNow(cw.clock) > replyAt);
    });
  });
}
