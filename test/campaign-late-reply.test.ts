import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { clockNow, realAt } from '../src/orchestrator/calendar.ts';
import type { Prospect } from '../src/orchestrator/demo/personas.ts';
import { allRuns, campaignServes, createScenario } from './helpers/campaign.ts';
import { ENGINES, skipEngine, waitFor } from './helpers/mailroom.ts';

/**
 * A reply that comes six campaign hours after the last send, with `mailroom serve` stopped and
 * started again in between, still reaches the response agent and is acted on (issue 6). The
 * simulated world is the relay; serve runs as a real child process.
 */
const ADMIN = 'campaign-late-reply-admin-token-012345';

for (const engine of ENGINES) {
  describe(`${engine}: a late reply across a restart`, { skip: await skipEngine(engine) }, () => {
    const serves = campaignServes(engine, ADMIN);
    after(() => serves.cleanup());

    test('a reply six campaign hours after the last send, with the process restarted in between, is classified and acted on', async () => {
      let { cw, env, p, api } = await serves.launch();
      const lead: Prospect = { address: 'silent.1@late-reply.example.de', persona: 'silent', first_name: 'Lena', last_name: 'Vogt', company: 'Late Reply', domain: 'late-reply.example.de' };
      // A long final wait (campaign time runs on while the process restarts: on a loaded machine a
      // restart took long enough for three business days to pass, and the run rightly ended no_reply).
      const sc = await createScenario(api, cw, { leads: 1, prospects: [lead], finalWaitBusinessDays: 15 });
      const last = await waitFor(async () => cw.world.received.find((w) => w.to === lead.address && w.mailroomHeaders['x-mailroom-step'] === '3'), 120_000, 'the last step at the world');
      const run = (await allRuns(api, sc.id))[0];

      await p.stop();
      // Six campaign hours after the last send (the process is down for most of them).
      const replyAt = new Date(last.simAt.getTime() + 6 * 3_600_000);
      await new Promise((r) => setTimeout(r, Math.max(0, realAt(cw.clock, replyAt) - Date.now())));
      ({ p, api } = await serves.restart(cw, env));
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
