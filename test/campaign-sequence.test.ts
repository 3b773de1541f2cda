import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { builtinSequence, decideSequence } from '../src/orchestrator/agents/sequence.ts';
import { isInWindow } from '../src/orchestrator/calendar.ts';
import { SequenceDecision, SequenceInput, type RoleContext } from '../src/orchestrator/roles.ts';
import { SendWindow } from '../src/orchestrator/spec.ts';

/**
 * The built-in sequencing agent (src/orchestrator/agents/sequence.ts): when the next step goes out,
 * or that the sequence is over. Every input is validated against SequenceInput and every answer
 * against SequenceDecision, as the engine does at each call. 1 Jan 2027 is a Friday; Berlin is
 * UTC+1 in January, New York UTC−5.
 */

const WINDOW = SendWindow.parse({}); // mon–fri 09:00–17:00
const HOUR = 3_600_000;

function input(over: {
  email?: string; timezone?: string; sent?: { step: number; at: string }[]; ooo?: string | null;
  next?: number; count?: number; max?: number; delay?: number; window?: SendWindow; now: string;
}): SequenceInput {
  return SequenceInput.parse({
    lead: { email: over.email ?? 'maria@keller.example.de', first_name: 'Maria' },
    timezone: over.timezone ?? 'Europe/Berlin',
    history: { sent: over.sent ?? [], out_of_office_until: over.ooo ?? null },
    policy: {
      next_step: over.next ?? 0, step_count: over.count ?? 3, max_steps: over.max ?? over.count ?? 3,
      delay_business_days: over.delay ?? 2, send_window: over.window ?? WINDOW,
    },
    now: over.now,
  });
}

/** Decide, check the answer against the role's output schema, and insist on a send. */
function send(i: SequenceInput): { at: number; reason: string } {
  const out = SequenceDecision.parse(decideSequence(i));
  assert.equal(out.action, 'send', JSON.stringify(out));
  if (out.action !== 'send') throw new Error('unreachable');
  assert.ok(out.reason && out.reason.length > 0);
  return { at: Date.parse(out.send_at), reason: out.reason };
}

describe('built-in sequencing agent', () => {
  test('stops with max_steps when every allowed step is sent', () => {
    for (const i of [
      input({ next: 3, count: 3, now: '2027-01-04T10:00:00Z' }),
      input({ next: 2, count: 3, max: 2, now: '2027-01-04T10:00:00Z' }),
      input({ next: 5, count: 3, max: 3, now: '2027-01-04T10:00:00Z' }),
      // More steps allowed than defined: there is still nothing left to send.
      input({ next: 3, count: 3, max: 10, now: '2027-01-04T10:00:00Z' }),
    ]) {
      assert.deepEqual(SequenceDecision.parse(decideSequence(i)), { action: 'stop', reason: 'max_steps' });
    }
    assert.equal(decideSequence(input({ next: 1, count: 3, max: 2, sent: [{ step: 0, at: '2027-01-04T10:00:00Z' }], now: '2027-01-04T10:00:00Z' })).action, 'send');
  });

  test('first step inside the window: now, plus a spread that stays in the window', () => {
    const now = Date.parse('2027-01-04T09:00:00Z'); // Mon 10:00 Berlin
    const { at, reason } = send(input({ now: '2027-01-04T09:00:00Z' }));
    assert.ok(at >= now && at < now + 4 * HOUR, new Date(at).toISOString());
    assert.ok(isInWindow(new Date(at), 'Europe/Berlin', WINDOW));
    assert.match(reason, /^step 1 of 3 at Mon 2027-01-04 \d\d:\d\d Europe\/Berlin: in the send window now \(first step\)$/);
  });

  test('first step outside the window: the next opening, early in it', () => {
    // Saturday: Monday 09:00–13:00 Berlin (08:00Z–12:00Z).
    const sat = send(input({ now: '2027-01-09T14:00:00Z' }));
    assert.ok(sat.at >= Date.parse('2027-01-11T08:00:00Z') && sat.at < Date.parse('2027-01-11T12:00:00Z'), new Date(sat.at).toISOString());
    assert.match(sat.reason, /first window from now \(first step\)/);
    assert.match(sat.reason, /at Mon 2027-01-11 (09|10|11|12):/);
    // Monday 07:00 in New York (12:00Z) is before the window: 09:00–13:00 EST that day.
    const ny = send(input({ email: 'sam@acme.example', timezone: 'America/New_York', now: '2027-01-04T12:00:00Z' }));
    assert.ok(ny.at >= Date.parse('2027-01-04T14:00:00Z') && ny.at < Date.parse('2027-01-04T18:00:00Z'), new Date(ny.at).toISOString());
    // The same instant is Monday 21:00 in Tokyo: the window has closed, Tuesday 09:00 JST (00:00Z) is next.
    const tokyo = send(input({ email: 'yuki@sakura.example.co.jp', timezone: 'Asia/Tokyo', now: '2027-01-04T12:00:00Z' }));
    assert.ok(tokyo.at >= Date.parse('2027-01-05T00:00:00Z') && tokyo.at < Date.parse('2027-01-05T04:00:00Z'), new Date(tokyo.at).toISOString());
  });

  test('a follow-up waits the business-day delay after the last step, then takes the window', () => {
    // Step 1 sent Mon 10:00 Berlin; 2 business days → Wed 10:00, inside the window.
    const wed = send(input({ next: 1, sent: [{ step: 0, at: '2027-01-04T09:00:00Z' }], now: '2027-01-04T09:05:00Z' }));
    assert.ok(wed.at >= Date.parse('2027-01-06T09:00:00Z') && wed.at < Date.parse('2027-01-06T13:00:00Z'), new Date(wed.at).toISOString());
    assert.match(wed.reason, /^step 2 of 3 at Wed 2027-01-06 .*: in the send window right after the 2-business-day delay since step 1, sent Mon 2027-01-04 10:00$/);
    // Sent Thu 16:30 → due Mon 16:30: inside, with only 30 minutes left for the spread.
    const mon = send(input({ next: 1, sent: [{ step: 0, at: '2027-01-07T15:30:00Z' }], now: '2027-01-07T15:31:00Z' }));
    assert.ok(mon.at >= Date.parse('2027-01-11T15:30:00Z') && mon.at < Date.parse('2027-01-11T16:00:00Z'), new Date(mon.at).toISOString());
    // Sent Fri 18:00 (after hours) with a 1-day delay → due Mon 18:00, closed → Tue morning.
    const tue = send(input({ next: 1, delay: 1, sent: [{ step: 0, at: '2027-01-08T17:00:00Z' }], now: '2027-01-08T17:00:00Z' }));
    assert.ok(tue.at >= Date.parse('2027-01-12T08:00:00Z') && tue.at < Date.parse('2027-01-12T12:00:00Z'), new Date(tue.at).toISOString());
    assert.match(tue.reason, /first window after the 1-business-day delay since step 1/);
  });

  test('the delay counts from the step sent last, whatever the order of the history', () => {
    const sent = [{ step: 1, at: '2027-01-11T09:00:00Z' }, { step: 0, at: '2027-01-04T09:00:00Z' }];
    const { at, reason } = send(input({ next: 2, sent, delay: 3, now: '2027-01-11T09:10:00Z' }));
    // Mon 11th + 3 business days = Thu 14th 10:00 Berlin.
    assert.ok(at >= Date.parse('2027-01-14T09:00:00Z') && at < Date.parse('2027-01-14T13:00:00Z'), new Date(at).toISOString());
    assert.match(reason, /^step 3 of 3 .*3-business-day delay since step 2/);
  });

  test('a delay already over (the run was paused, or the engine is catching up) means now', () => {
    const now = Date.parse('2027-01-20T10:00:00Z'); // Wed 11:00 Berlin
    const { at, reason } = send(input({ next: 1, sent: [{ step: 0, at: '2027-01-04T09:00:00Z' }], now: '2027-01-20T10:00:00Z' }));
    assert.ok(at >= now && at < Date.parse('2027-01-20T16:00:00Z'));
    assert.match(reason, /in the send window now \(the 2-business-day delay since step 1, sent Mon 2027-01-04 10:00, has passed\)/);
    const zero = send(input({ next: 1, delay: 0, sent: [{ step: 0, at: '2027-01-04T09:00:00Z' }], now: '2027-01-04T09:00:00Z' }));
    assert.ok(zero.at >= Date.parse('2027-01-04T09:00:00Z') && zero.at < Date.parse('2027-01-04T13:00:00Z'));
  });

  test('never before now, even when the history claims the step went out in the future', () => {
    const now = Date.parse('2027-01-04T09:00:00Z');
    const { at } = send(input({ next: 1, delay: 0, sent: [{ step: 0, at: '2026-12-01T09:00:00Z' }], now: '2027-01-04T09:00:00Z' }));
    assert.ok(at >= now);
  });

  test('an out-of-office return date holds the step until that local day, in the window', () => {
    // Delay would end Wed 6th; the lead is back Thursday 14th: Thu 09:00–13:00 Berlin.
    const { at, reason } = send(input({ next: 1, sent: [{ step: 0, at: '2027-01-04T09:00:00Z' }], ooo: '2027-01-14', now: '2027-01-05T12:00:00Z' }));
    assert.ok(at >= Date.parse('2027-01-14T08:00:00Z') && at < Date.parse('2027-01-14T12:00:00Z'), new Date(at).toISOString());
    assert.match(reason, /first window after the out-of-office return date 2027-01-14$/);
    // The return date is the recipient's: back on Thursday in New York is 14:00Z at the earliest.
    const ny = send(input({ email: 'sam@acme.example', timezone: 'America/New_York', next: 1, sent: [{ step: 0, at: '2027-01-04T15:00:00Z' }], ooo: '2027-01-14', now: '2027-01-05T12:00:00Z' }));
    assert.ok(ny.at >= Date.parse('2027-01-14T14:00:00Z') && ny.at < Date.parse('2027-01-14T18:00:00Z'), new Date(ny.at).toISOString());
    // Back on a Saturday: the first window after it is Monday.
    const sat = send(input({ next: 1, sent: [{ step: 0, at: '2027-01-04T09:00:00Z' }], ooo: '2027-01-16', now: '2027-01-05T12:00:00Z' }));
    assert.ok(sat.at >= Date.parse('2027-01-18T08:00:00Z') && sat.at < Date.parse('2027-01-18T12:00:00Z'));
  });

  test('an out-of-office date that is already past, or before the delay ends, changes nothing', () => {
    const base = { next: 1, sent: [{ step: 0, at: '2027-01-04T09:00:00Z' }], now: '2027-01-04T09:05:00Z' };
    const plain = send(input(base));
    const early = send(input({ ...base, ooo: '2027-01-05' }));
    assert.equal(early.at, plain.at);
    assert.doesNotMatch(early.reason, /out-of-office/);
    const past = send(input({ ...base, ooo: '2026-12-24' }));
    assert.equal(past.at, plain.at);
  });

  test('an unreadable out-of-office date is noted in the reason, not fatal', () => {
    const { reason } = send(input({ next: 1, sent: [{ step: 0, at: '2027-01-04T09:00:00Z' }], ooo: '2027-02-30', now: '2027-01-04T09:05:00Z' }));
    assert.match(reason, /out-of-office date "2027-02-30" unreadable, ignored/);
  });

  test('deterministic: the same input gives the same time; leads and steps are spread apart', () => {
    const a = input({ now: '2027-01-09T14:00:00Z' });
    assert.deepEqual(decideSequence(a), decideSequence(a));
    const times = new Set<number>();
    for (let i = 0; i < 200; i++) times.add(send(input({ email: `lead${i}@x.example.de`, now: '2027-01-09T14:00:00Z' })).at);
    assert.ok(times.size > 180, `${times.size} distinct send times for 200 leads`);
    const s0 = send(input({ now: '2027-01-09T14:00:00Z' })).at;
    const s1 = send(input({ next: 1, delay: 0, sent: [{ step: 0, at: '2027-01-09T14:00:00Z' }], now: '2027-01-09T14:00:00Z' })).at;
    assert.notEqual(s0, s1, 'the step is part of the spread key');
  });

  test('a narrow window on chosen days, and a half-hour zone', () => {
    const w = SendWindow.parse({ days: ['tue', 'thu'], start: '13:30', end: '14:00' });
    const { at } = send(input({ email: 'arjun@tata.example.in', timezone: 'Asia/Kolkata', window: w, now: '2027-01-04T03:00:00Z' }));
    // Tue 5th 13:30–13:45 IST = 08:00Z–08:15Z.
    assert.ok(at >= Date.parse('2027-01-05T08:00:00Z') && at < Date.parse('2027-01-05T08:15:00Z'), new Date(at).toISOString());
  });

  test('through the agent interface, and unreadable times are agent failures', async () => {
    const ctx: RoleContext = { campaignId: 'cmp_1', runId: 'run_1', traceId: 'tr_1', signal: new AbortController().signal };
    const out = await builtinSequence.sequence(input({ now: '2027-01-04T09:00:00Z' }), ctx);
    assert.equal(SequenceDecision.parse(out).action, 'send');
    assert.deepEqual(await builtinSequence.sequence(input({ next: 3, now: '2027-01-04T09:00:00Z' }), ctx), { action: 'stop', reason: 'max_steps' });
    await assert.rejects(builtinSequence.sequence(input({ now: 'soon' }), ctx), /now is not a time/);
    await assert.rejects(builtinSequence.sequence(input({ next: 1, sent: [{ step: 0, at: 'yesterday' }], now: '2027-01-04T09:00:00Z' }), ctx), /history\.sent\[0\]\.at is not a time/);
  });
});
