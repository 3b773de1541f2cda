import { addBusinessDays, isInWindow, localParts, startOfLocalDate, windowSlot } from '../calendar.ts';
import type { SequenceAgent, SequenceDecision, SequenceInput } from '../roles.ts';

/**
 * The built-in sequencing agent: rules, no I/O, no model. Given where a lead's run stands, it says
 * when the next step goes out — or that the sequence is over. Stop conditions that come from events
 * (reply, bounce, unsubscribe…) are the engine's, checked again at send time; this agent only knows
 * the schedule: step count, business-day delays, an out-of-office return date, the send window.
 *
 * The answer is a pure function of the input, so a retried or replayed call gives the same time
 * (the spread within the window is a hash of lead and step, not a random draw).
 */

/** The stop reason when every step the campaign allows has been sent. */
export const MAX_STEPS = 'max_steps';

/** A real YYYY-MM-DD calendar date (2027-02-30 is not). */
function isCalendarDate(s: string): boolean {
  const d = new Date(`${s}T00:00:00Z`);
  return /^\d{4}-\d{2}-\d{2}$/.test(s) && !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === s;
}

function instant(iso: string, what: string): Date {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) throw new Error(`sequence: ${what} is not a time: "${iso}"`);
  return d;
}

/** "Tue 2027-01-12 09:17" in the recipient's zone. */
function localLabel(at: Date, tz: string): string {
  const p = localParts(at, tz);
  const hhmm = `${String(Math.floor(p.minutes / 60)).padStart(2, '0')}:${String(p.minutes % 60).padStart(2, '0')}`;
  return `${p.weekday[0].toUpperCase()}${p.weekday.slice(1)} ${p.date} ${hhmm}`;
}

export function decideSequence(input: SequenceInput): SequenceDecision {
  const { lead, timezone: tz, history, policy } = input;
  const now = instant(input.now, 'now');
  // More steps than the campaign defines cannot be sent either, whatever max_steps says: same stop.
  const limit = Math.min(policy.max_steps, policy.step_count);
  if (policy.next_step >= limit) return { action: 'stop', reason: MAX_STEPS };

  // What set the earliest time: "now" (with an optional note why) or a moment "after" something.
  let earliest = now;
  let after: string | null = null;
  const notes: string[] = [];
  // The delay counts from the step sent last in time (history may list steps in any order).
  const last = history.sent
    .map((s, i) => ({ step: s.step, at: instant(s.at, `history.sent[${i}].at`) }))
    .reduce<{ step: number; at: Date } | null>((a, s) => (a && a.at >= s.at ? a : s), null);
  if (policy.next_step === 0) {
    notes.push('first step');
  } else if (!last) {
    notes.push('no earlier step on record to count the delay from');
  } else {
    const due = addBusinessDays(last.at, tz, policy.delay_business_days);
    const since = `the ${policy.delay_business_days}-business-day delay since step ${last.step + 1}, sent ${localLabel(last.at, tz)}`;
    if (due > now) [earliest, after] = [due, since];
    else notes.push(`${since}, has passed`);
  }

  const ooo = history.out_of_office_until;
  if (ooo !== null) {
    if (!isCalendarDate(ooo)) {
      // An unreadable date from a reply heuristic is not worth failing the run over: note it, go on.
      notes.push(`out-of-office date "${ooo}" unreadable, ignored`);
    } else {
      const back = startOfLocalDate(ooo, tz);
      if (back > earliest) [earliest, after] = [back, `the out-of-office return date ${ooo}`];
    }
  }

  const w = policy.send_window;
  const sendAt = windowSlot(earliest, tz, w, `${lead.email}:${policy.next_step}`);
  const open = isInWindow(earliest, tz, w);
  const why = after === null ? (open ? 'in the send window now' : 'first window from now') : `${open ? 'in the send window right after' : 'first window after'} ${after}`;
  const reason = `step ${policy.next_step + 1} of ${limit} at ${localLabel(sendAt, tz)} ${tz}: ${why}${notes.length ? ` (${notes.join('; ')})` : ''}`;
  return { action: 'send', send_at: sendAt.toISOString(), reason: reason.slice(0, 500) };
}

export const builtinSequence: SequenceAgent = {
  async sequence(input) {
    return decideSequence(input);
  },
};
