import { after, describe, test } from 'node:test';
import { campaignServes, createScenario, verifyCampaign, waitCompleted, CAMPAIGN_MAX_MS, CAMPAIGN_STALL_MS } from './helpers/campaign.ts';
import { ENGINES, skipEngine, waitFor } from './helpers/mailroom.ts';
import { SEND_CONCURRENCY } from '../src/outbound/worker.ts';

/**
 * kill -9 of `mailroom serve` in the middle of a 200-lead campaign, then a restart on the same
 * store (issue 6): every run goes on from its last commit; the outcome is the one an uninterrupted
 * campaign has; nothing is lost and no step is sent twice.
 */
const ADMIN = 'campaign-crash-admin-token-0123456789';
// A crash between the relay's 250 and the commit that records it can deliver one message twice
// (the outbox's documented window, test/send-crash.test.ts): at most one copy per message in
// flight, with the same Message-ID. The campaign never hands the same step over twice.

for (const engine of ENGINES) {
  describe(`${engine}: kill -9 during a campaign`, { skip: await skipEngine(engine) }, () => {
    const serves = campaignServes(engine, ADMIN);
    after(() => serves.cleanup());

    test('kill -9 in the middle of a campaign, then restart: the same outcome, nothing lost, no step sent twice', { timeout: CAMPAIGN_MAX_MS + 300_000 }, async () => {
      let { cw, env, p, api } = await serves.launch();
      const sc = await createScenario(api, cw, { leads: 200 });
      // Kill while first messages are being sent and replies handled.
      await waitFor(async () => cw.world.received.length >= 60, 120_000, '60 messages at the world');
      await p.kill9();
      const atKill = cw.world.received.length;
      ({ p, api } = await serves.restart(cw, env));
      await waitCompleted(() => api, sc.id, CAMPAIGN_STALL_MS, CAMPAIGN_MAX_MS);
      const v = await verifyCampaign(api, cw, sc, { allowTransportCopies: SEND_CONCURRENCY }).catch((err) => {
        throw new Error(`${err.message}\n--- serve output after the restart:\n${p.output().slice(-3000)}`);
      });
      console.log(`  ${engine} kill -9 at ${atKill} received: ${JSON.stringify(v)}`);
    });
  });
}
