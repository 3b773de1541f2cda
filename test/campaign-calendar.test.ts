import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  addBusinessDays, clockNow, isInWindow, leadTimeZone, localParts, nextWindowStart, realAt, realDelayMs, startOfLocalDate,
  timeZoneForDomain, windowSlot, type CampaignClock,
} from '../src/orchestrator/calendar.ts';
import { isTimeZone, SendWindow, type Weekday } from '../src/orchestrator/spec.ts';

/**
 * Campaign time (src/orchestrator/calendar.ts): pure unit tests. Expected instants are written out
 * by hand in UTC, and window membership is checked against an oracle that asks Intl directly (a
 * different locale and code path from the module), so a wrong offset cannot pass by agreeing with
 * itself. DST facts used below (2027): Berlin springs forward Sun 28 Mar 01:00Z (02:00 CET → 03:00
 * CEST) and falls back Sun 31 Oct 01:00Z (03:00 CEST → 02:00 CET); New York springs forward Sun 14
 * Mar 07:00Z and falls back Sun 7 Nov 06:00Z. 1 Jan 2027 is a Friday.
 */

const d = (iso: string) => new Date(iso);
const win = (w: Partial<SendWindow> = {}): SendWindow => SendWindow.parse(w);
const WEEKDAY_NAMES: Record<string, Weekday> = { Mon: 'mon', Tue: 'tue', Wed: 'wed', Thu: 'thu', Fri: 'fri', Sat: 'sat', Sun: 'sun' };

/** The oracle: what a wall clock in `tz` shows at `at`, straight from Intl. */
const oracles = new Map<string, Intl.DateTimeFormat>();
function wall(at: Date, tz: string): { date: string; weekday: Weekday; hm: string; minutes: number } {
  let f = oracles.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', { timeZone: tz, weekday: 'short', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    oracles.set(tz, f);
  }
  const p = Object.fromEntries(f.formatToParts(at).map((x) => [x.type, x.value]));
  return { date: `${p.year}-${p.month}-${p.day}`, weekday: WEEKDAY_NAMES[p.weekday], hm: `${p.hour}:${p.minute}`, minutes: Number(p.hour) * 60 + Number(p.minute) };
}
const toMin = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3));
function oracleInWindow(at: Date, tz: string, w: SendWindow): boolean {
  const x = wall(at, tz);
  return w.days.includes(x.weekday) && x.minutes >= toMin(w.start) && x.minutes < Math.min(toMin(w.end), 1440);
}

/** A small seeded PRNG (mulberry32): property loops that fail the same way every run. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('campaign clock', () => {
  const c: CampaignClock = { scale: 1440, originReal: 1_700_000_000_000, originSim: Date.parse('2027-01-04T08:00:00Z') };

  test('clockNow runs scale times faster from the origin', () => {
    assert.equal(clockNow(c, c.originReal).toISOString(), '2027-01-04T08:00:00.000Z');
    // 60 real seconds at 1440× are one simulated day.
    assert.equal(clockNow(c, c.originReal + 60_000).toISOString(), '2027-01-05T08:00:00.000Z');
    assert.equal(clockNow({ ...c, scale: 1 }, c.originReal + 5).getTime(), c.originSim + 5);
  });

  test('realAt inverts clockNow, rounding up so a job that wakes then finds its time due', () => {
    assert.equal(realAt(c, d('2027-01-05T08:00:00Z')), c.originReal + 60_000);
    const rand = rng(1);
    for (const scale of [1, 3, 7.3, 1440, 86_400, 999_999.7]) {
      const k: CampaignClock = { ...c, scale };
      for (let i = 0; i < 300; i++) {
        const sim = new Date(c.originSim + Math.floor((rand() - 0.2) * 30 * 86_400_000));
        const r = realAt(k, sim);
        assert.ok(Number.isInteger(r));
        assert.ok(clockNow(k, r) >= sim, `scale ${scale}: clock at realAt must have reached ${sim.toISOString()}`);
        assert.ok(clockNow(k, r - 1) < sim, `scale ${scale}: realAt must be the first such millisecond`);
      }
    }
    assert.throws(() => realAt({ ...c, scale: 0 }, d('2027-01-05T00:00:00Z')), RangeError);
  });

  test('realDelayMs is the real wait, never negative', () => {
    assert.equal(realDelayMs(c, d('2027-01-05T08:00:00Z'), c.originReal), 60_000);
    assert.equal(realDelayMs(c, d('2027-01-05T08:00:00Z'), c.originReal + 15_000), 45_000);
    assert.equal(realDelayMs(c, d('2027-01-01T00:00:00Z'), c.originReal), 0);
    // Scale 1 is real time: the wait is the difference itself.
    const real: CampaignClock = { scale: 1, originReal: 0, originSim: 0 };
    assert.equal(realDelayMs(real, new Date(10_000), 4_000), 6_000);
  });
});

describe('time zone of a recipient', () => {
  test('ccTLDs, including second-level forms, map to the most populous zone', () => {
    const cases: Record<string, string> = {
      'keller.de': 'Europe/Berlin', 'northbank.co.uk': 'Europe/London', 'acme.com.au': 'Australia/Sydney', 'sakura.co.jp': 'Asia/Tokyo',
      'ipe.com.br': 'America/Sao_Paulo', 'shop.us': 'America/New_York', 'maple.ca': 'America/Toronto', 'x.in': 'Asia/Kolkata',
      'x.co.in': 'Asia/Kolkata', 'x.com.mx': 'America/Mexico_City', 'x.ru': 'Europe/Moscow', 'x.co.nz': 'Pacific/Auckland',
      'x.com.cn': 'Asia/Shanghai', 'x.co.za': 'Africa/Johannesburg', 'mail.sub.example.fr': 'Europe/Paris',
      'X.DE.': 'Europe/Berlin', 'x.com.co': 'America/Bogota', 'x.org.ai': 'America/Anguilla',
    };
    for (const [domain, zone] of Object.entries(cases)) assert.equal(timeZoneForDomain(domain), zone, domain);
  });

  test('generic TLDs and ccTLDs sold as generic names say nothing', () => {
    for (const domain of ['acme.com', 'acme.org', 'acme.net', 'acme.io', 'acme.co', 'acme.ai', 'acme.me', 'acme.tv', 'acme.dev', 'acme.app', 'acme.eu', 'acme.example', 'sub.acme.io', 'localhost', '']) {
      assert.equal(timeZoneForDomain(domain), null, domain);
    }
  });

  test('at least the 60 most common ccTLDs are covered, each with a zone this runtime knows', () => {
    const common = [
      'cn', 'de', 'uk', 'nl', 'ru', 'br', 'au', 'fr', 'it', 'pl', 'in', 'jp', 'ca', 'es', 'ch', 'se', 'be', 'dk', 'at', 'cz', 'mx', 'ar',
      'za', 'no', 'ir', 'kr', 'tw', 'gr', 'hu', 'pt', 'fi', 'ro', 'ua', 'tr', 'nz', 'sk', 'ie', 'cl', 'il', 'sg', 'id', 'my', 'hk', 'th',
      'vn', 'ph', 'pk', 'ng', 'eg', 'ke', 'sa', 'ae', 'pe', 'by', 'kz', 'lt', 'lv', 'ee', 'bg', 'hr', 'rs', 'si', 'lu', 'is', 'us',
    ];
    assert.ok(common.length >= 60);
    for (const tld of common) {
      const zone = timeZoneForDomain(`example.${tld}`);
      assert.ok(zone, `.${tld} has a zone`);
      assert.ok(isTimeZone(zone), `.${tld} → ${zone} is a zone Intl knows`);
    }
  });

  test('leadTimeZone: the lead, then the domain, then the default', () => {
    assert.deepEqual(leadTimeZone({ email: 'a@x.de', timezone: 'Asia/Tokyo' }, 'UTC'), { zone: 'Asia/Tokyo', source: 'lead' });
    assert.deepEqual(leadTimeZone({ email: 'a@x.de' }, 'UTC'), { zone: 'Europe/Berlin', source: 'domain' });
    assert.deepEqual(leadTimeZone({ email: 'a@x.com' }, 'America/Chicago'), { zone: 'America/Chicago', source: 'default' });
    // An invalid zone on the lead (data that bypassed the schema) is skipped, not thrown.
    assert.deepEqual(leadTimeZone({ email: 'a@x.co.uk', timezone: 'Mars/Olympus' }, 'UTC'), { zone: 'Europe/London', source: 'domain' });
    assert.deepEqual(leadTimeZone({ email: 'not-an-address' }, 'UTC'), { zone: 'UTC', source: 'default' });
  });
});

describe('local time', () => {
  test('localParts across zones, including half- and quarter-hour offsets', () => {
    assert.deepEqual(localParts(d('2027-01-04T08:30:00Z'), 'Europe/Berlin'), { date: '2027-01-04', weekday: 'mon', minutes: 9 * 60 + 30 });
    assert.deepEqual(localParts(d('2027-07-05T08:30:00Z'), 'Europe/Berlin'), { date: '2027-07-05', weekday: 'mon', minutes: 10 * 60 + 30 });
    assert.deepEqual(localParts(d('2027-01-04T03:00:00Z'), 'America/New_York'), { date: '2027-01-03', weekday: 'sun', minutes: 22 * 60 });
    assert.deepEqual(localParts(d('2027-01-04T03:30:00Z'), 'Asia/Kolkata'), { date: '2027-01-04', weekday: 'mon', minutes: 9 * 60 });
    assert.deepEqual(localParts(d('2027-01-04T03:15:00Z'), 'Asia/Kathmandu'), { date: '2027-01-04', weekday: 'mon', minutes: 9 * 60 });
    assert.deepEqual(localParts(d('2027-01-04T23:59:59.999Z'), 'UTC'), { date: '2027-01-04', weekday: 'mon', minutes: 1439 });
  });

  test('startOfLocalDate: local midnight, or the first valid time when midnight is skipped', () => {
    assert.equal(startOfLocalDate('2027-01-14', 'Europe/Berlin').toISOString(), '2027-01-13T23:00:00.000Z');
    assert.equal(startOfLocalDate('2027-07-14', 'Europe/Berlin').toISOString(), '2027-07-13T22:00:00.000Z');
    assert.equal(startOfLocalDate('2027-03-28', 'Europe/Berlin').toISOString(), '2027-03-27T23:00:00.000Z');
    assert.equal(startOfLocalDate('2027-01-14', 'Asia/Kolkata').toISOString(), '2027-01-13T18:30:00.000Z');
    assert.equal(startOfLocalDate('2027-01-14', 'America/New_York').toISOString(), '2027-01-14T05:00:00.000Z');
    // Chile springs forward at midnight: 2024-09-08 00:00 does not exist; the day starts at 01:00 (−03).
    assert.equal(startOfLocalDate('2024-09-08', 'America/Santiago').toISOString(), '2024-09-08T04:00:00.000Z');
    assert.throws(() => startOfLocalDate('2027-02-30', 'UTC'), RangeError);
    assert.throws(() => startOfLocalDate('14.01.2027', 'UTC'), RangeError);
  });
});

describe('send windows', () => {
  const w = win(); // mon–fri 09:00–17:00

  test('isInWindow: start inclusive, end exclusive, days in the recipient zone', () => {
    const tz = 'Europe/Berlin';
    assert.equal(isInWindow(d('2027-01-04T08:00:00Z'), tz, w), true); // Mon 09:00
    assert.equal(isInWindow(d('2027-01-04T07:59:59Z'), tz, w), false); // Mon 08:59:59
    assert.equal(isInWindow(d('2027-01-04T15:59:59Z'), tz, w), true); // Mon 16:59:59
    assert.equal(isInWindow(d('2027-01-04T16:00:00Z'), tz, w), false); // Mon 17:00
    assert.equal(isInWindow(d('2027-01-09T10:00:00Z'), tz, w), false); // Saturday
    // The same instant is Monday morning in Tokyo and Sunday evening in New York.
    assert.equal(isInWindow(d('2027-01-04T01:00:00Z'), 'Asia/Tokyo', w), true);
    assert.equal(isInWindow(d('2027-01-04T01:00:00Z'), 'America/New_York', w), false);
    const late = win({ days: ['sat'], start: '22:00', end: '24:00' });
    assert.equal(isInWindow(d('2027-01-09T23:59:59Z'), 'UTC', late), true);
    assert.equal(isInWindow(d('2027-01-10T00:00:00Z'), 'UTC', late), false);
  });

  test('nextWindowStart: itself inside; later today; tomorrow; over the weekend; only the listed days', () => {
    const tz = 'Europe/Berlin';
    assert.equal(nextWindowStart(d('2027-01-04T10:17:03Z'), tz, w).toISOString(), '2027-01-04T10:17:03.000Z');
    assert.equal(nextWindowStart(d('2027-01-04T05:00:00Z'), tz, w).toISOString(), '2027-01-04T08:00:00.000Z');
    assert.equal(nextWindowStart(d('2027-01-04T16:00:00Z'), tz, w).toISOString(), '2027-01-05T08:00:00.000Z');
    assert.equal(nextWindowStart(d('2027-01-08T17:30:00Z'), tz, w).toISOString(), '2027-01-11T08:00:00.000Z'); // Fri evening → Mon
    assert.equal(nextWindowStart(d('2027-01-09T12:00:00Z'), tz, w).toISOString(), '2027-01-11T08:00:00.000Z'); // Sat → Mon
    const tueThu = win({ days: ['tue', 'thu'], start: '13:30', end: '14:00' });
    assert.equal(nextWindowStart(d('2027-01-05T13:00:00Z'), tz, tueThu).toISOString(), '2027-01-07T12:30:00.000Z'); // Tue 14:00 → Thu 13:30
    assert.equal(nextWindowStart(d('2027-01-04T03:00:00Z'), 'Asia/Kolkata', w).toISOString(), '2027-01-04T03:30:00.000Z');
    assert.equal(nextWindowStart(d('2027-01-04T03:00:00Z'), 'Asia/Kathmandu', w).toISOString(), '2027-01-04T03:15:00.000Z');
  });

  test('nextWindowStart keeps 09:00 local across a DST change (Berlin, New York)', () => {
    // Friday after the window → Monday 09:00, which is an hour earlier in UTC than the Friday's.
    assert.equal(nextWindowStart(d('2027-03-26T17:00:00Z'), 'Europe/Berlin', w).toISOString(), '2027-03-29T07:00:00.000Z');
    assert.equal(nextWindowStart(d('2027-03-12T23:00:00Z'), 'America/New_York', w).toISOString(), '2027-03-15T13:00:00.000Z');
    assert.equal(nextWindowStart(d('2027-10-29T17:00:00Z'), 'Europe/Berlin', w).toISOString(), '2027-11-01T08:00:00.000Z');
    assert.equal(nextWindowStart(d('2027-11-05T22:00:00Z'), 'America/New_York', w).toISOString(), '2027-11-08T14:00:00.000Z');
  });

  test('a window opening inside a DST gap opens at the first valid local time after it', () => {
    const sunday = win({ days: ['sun'], start: '02:30', end: '05:00' });
    assert.equal(nextWindowStart(d('2027-03-27T23:00:00Z'), 'Europe/Berlin', sunday).toISOString(), '2027-03-28T01:00:00.000Z'); // 03:00 CEST
    const ny = win({ days: ['sun'], start: '02:15', end: '05:00' });
    assert.equal(nextWindowStart(d('2027-03-14T04:00:00Z'), 'America/New_York', ny).toISOString(), '2027-03-14T07:00:00.000Z'); // 03:00 EDT
    // A window wholly inside the gap does not exist that day: the next Sunday's opens instead.
    const lost = win({ days: ['sun'], start: '02:00', end: '02:45' });
    assert.equal(nextWindowStart(d('2027-03-27T23:00:00Z'), 'Europe/Berlin', lost).toISOString(), '2027-04-04T00:00:00.000Z');
  });

  test('in a fall-back overlap a window can open twice; the one still ahead is next', () => {
    const w2 = win({ days: ['sun'], start: '02:00', end: '02:30' });
    // 00:40Z is 02:40 CEST (window closed); the clocks then go back and 02:00 CET (01:00Z) opens it again.
    assert.equal(nextWindowStart(d('2027-10-31T00:40:00Z'), 'Europe/Berlin', w2).toISOString(), '2027-10-31T01:00:00.000Z');
    assert.equal(isInWindow(d('2027-10-31T01:10:00Z'), 'Europe/Berlin', w2), true);
    const slot = windowSlot(d('2027-10-31T01:10:00Z'), 'Europe/Berlin', w2, 'k');
    assert.ok(slot.getTime() >= Date.parse('2027-10-31T01:10:00Z') && slot.getTime() < Date.parse('2027-10-31T01:30:00Z'));
  });

  test('windowSlot: deterministic per key, spread over the first two hours after the window opens', () => {
    const tz = 'Europe/Berlin';
    const sat = d('2027-01-09T12:00:00Z');
    const open = Date.parse('2027-01-11T08:00:00Z');
    assert.equal(windowSlot(sat, tz, w, 'ada@x.de:0').getTime(), windowSlot(sat, tz, w, 'ada@x.de:0').getTime());
    const offsets = Array.from({ length: 1000 }, (_, i) => windowSlot(sat, tz, w, `lead${i}@x.de:0`).getTime() - open);
    for (const o of offsets) {
      assert.ok(o >= 0 && o < 2 * 3_600_000, `offset ${o} within 09:00–11:00`);
      assert.equal(o % 1000, 0, 'whole seconds');
    }
    // 1000 keys over 7,200 seconds: about 70 birthday collisions are expected, not hundreds.
    assert.ok(new Set(offsets).size > 880, 'keys spread, not bunched');
    const mean = offsets.reduce((a, b) => a + b, 0) / offsets.length / (2 * 3_600_000);
    assert.ok(mean > 0.45 && mean < 0.55, `roughly uniform (mean fraction ${mean})`);
    const quarters = [0, 0, 0, 0];
    for (const o of offsets) quarters[Math.floor(o / 1_800_000)]++;
    for (const q of quarters) assert.ok(q > 200 && q < 300, `each half hour gets its share: ${quarters.join(', ')}`);
  });

  test('windowSlot inside the window: never before `at`, never past the end, `at` itself when no room', () => {
    const tz = 'UTC';
    const at = d('2027-01-04T16:50:00Z');
    for (let i = 0; i < 500; i++) {
      const s = windowSlot(at, tz, w, `k${i}`).getTime();
      assert.ok(s >= at.getTime() && s < Date.parse('2027-01-04T17:00:00Z'));
    }
    const edge = d('2027-01-04T16:59:59.500Z');
    assert.equal(windowSlot(edge, tz, w, 'k').toISOString(), edge.toISOString());
    // Already inside: due now, so at most 15 minutes of spread (not hours).
    const early = d('2027-01-04T10:00:00Z');
    for (let i = 0; i < 200; i++) assert.ok(windowSlot(early, tz, w, `k${i}`).getTime() < Date.parse('2027-01-04T10:15:00Z'));
  });

  test('property: over many zones, windows, keys and start times the slot is ≥ at, inside the window, early in it', () => {
    const zones = ['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Asia/Kathmandu', 'Australia/Sydney', 'America/Santiago', 'Pacific/Auckland', 'Asia/Tokyo'];
    const windows = [
      win(),
      win({ days: ['tue', 'thu'], start: '13:30', end: '14:00' }),
      win({ days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: '00:00', end: '24:00' }),
      win({ days: ['sat', 'sun'], start: '22:00', end: '24:00' }),
      win({ days: ['sun'], start: '02:15', end: '03:30' }),
      win({ days: ['mon', 'wed', 'fri', 'sun'], start: '01:00', end: '02:30' }),
    ];
    // Random instants over two years, plus some an hour either side of each DST change.
    const rand = rng(42);
    const starts: number[] = [];
    for (let i = 0; i < 150; i++) starts.push(Date.parse('2026-06-01T00:00:00Z') + Math.floor(rand() * 730 * 86_400_000));
    for (const t of ['2027-03-28T01:00:00Z', '2027-10-31T01:00:00Z', '2027-03-14T07:00:00Z', '2027-11-07T06:00:00Z', '2027-04-04T02:00:00Z', '2027-09-05T04:00:00Z']) {
      for (let m = -120; m <= 120; m += 17) starts.push(Date.parse(t) + m * 60_000 + 123);
    }
    let checked = 0;
    for (const t of starts) {
      const tz = zones[Math.floor(rand() * zones.length)];
      const wi = windows[Math.floor(rand() * windows.length)];
      const at = new Date(t);
      const key = `lead${Math.floor(rand() * 1e6)}@example.com:${checked % 3}`;
      const next = nextWindowStart(at, tz, wi);
      const slot = windowSlot(at, tz, wi, key);
      const ctx = `${at.toISOString()} ${tz} ${wi.days.join(',')} ${wi.start}–${wi.end} ${key}`;
      assert.ok(next >= at && slot >= next, `${ctx}: at ≤ next ≤ slot`);
      assert.ok(oracleInWindow(next, tz, wi), `${ctx}: next ${next.toISOString()} is inside`);
      assert.ok(oracleInWindow(slot, tz, wi), `${ctx}: slot ${slot.toISOString()} is inside`);
      assert.equal(isInWindow(at, tz, wi), oracleInWindow(at, tz, wi), `${ctx}: isInWindow agrees with Intl`);
      if (next > at) {
        assert.ok(!oracleInWindow(new Date(next.getTime() - 60_000), tz, wi), `${ctx}: the window was closed a minute before it opened`);
        // Nothing in between is open: step through in 10-minute strides (every window here is ≥ 30 min).
        for (let s = t; s < next.getTime(); s += 10 * 60_000) assert.ok(!oracleInWindow(new Date(s), tz, wi), `${ctx}: skipped an opening at ${new Date(s).toISOString()}`);
        // First half of the window (an hour's slack for an opening that a DST change shortens or lengthens).
        const length = (Math.min(toMin(wi.end), 1440) - toMin(wi.start)) * 60_000;
        assert.ok(slot.getTime() - next.getTime() < (length + 3_600_000) / 2, `${ctx}: slot early in the window`);
      }
      checked++;
    }
    assert.equal(checked, starts.length);
  });

  test('a window that never opens is an error, not a hang', () => {
    assert.throws(() => nextWindowStart(d('2027-01-04T00:00:00Z'), 'UTC', { days: [], start: '09:00', end: '17:00' }), RangeError);
    assert.throws(() => nextWindowStart(d('2027-01-04T00:00:00Z'), 'UTC', { days: ['mon'], start: '24:00', end: '24:30' }), RangeError);
  });
});

describe('business days', () => {
  test('whole days skip the weekend and keep the local time of day', () => {
    const tz = 'Europe/Berlin';
    assert.equal(addBusinessDays(d('2027-01-08T09:00:00Z'), tz, 1).toISOString(), '2027-01-11T09:00:00.000Z'); // Fri → Mon
    assert.equal(addBusinessDays(d('2027-01-07T09:00:00Z'), tz, 2).toISOString(), '2027-01-11T09:00:00.000Z'); // Thu → Mon
    assert.equal(addBusinessDays(d('2027-01-09T09:00:00Z'), tz, 1).toISOString(), '2027-01-11T09:00:00.000Z'); // Sat → Mon
    assert.equal(addBusinessDays(d('2027-01-10T09:00:00Z'), tz, 1).toISOString(), '2027-01-11T09:00:00.000Z'); // Sun → Mon
    assert.equal(addBusinessDays(d('2027-01-04T09:00:00Z'), tz, 5).toISOString(), '2027-01-11T09:00:00.000Z'); // Mon → next Mon
    assert.equal(addBusinessDays(d('2027-01-04T09:00:00Z'), tz, 10).toISOString(), '2027-01-18T09:00:00.000Z');
    assert.equal(addBusinessDays(d('2027-01-04T09:00:00.250Z'), tz, 0).toISOString(), '2027-01-04T09:00:00.250Z');
  });

  test('the weekend is the recipient’s: Friday 23:30 in New York is Saturday in UTC', () => {
    // Fri 2027-01-08 23:30 EST = Sat 04:30Z; one business day later is Mon 23:30 EST.
    assert.equal(addBusinessDays(d('2027-01-09T04:30:00Z'), 'America/New_York', 1).toISOString(), '2027-01-12T04:30:00.000Z');
    // Mon 2027-01-11 01:00 in Tokyo is Sun 16:00Z: in UTC that would be a weekend start.
    assert.equal(addBusinessDays(d('2027-01-10T16:00:00Z'), 'Asia/Tokyo', 1).toISOString(), '2027-01-11T16:00:00.000Z');
    assert.equal(addBusinessDays(d('2027-01-08T04:30:00Z'), 'Asia/Kolkata', 1).toISOString(), '2027-01-11T04:30:00.000Z');
  });

  test('across a DST change the local time stays, the UTC time moves', () => {
    // Fri 26 Mar 10:00 CET (09:00Z) + 1 → Mon 29 Mar 10:00 CEST (08:00Z).
    assert.equal(addBusinessDays(d('2027-03-26T09:00:00Z'), 'Europe/Berlin', 1).toISOString(), '2027-03-29T08:00:00.000Z');
    // Fri 5 Nov 10:00 EDT (14:00Z) + 1 → Mon 8 Nov 10:00 EST (15:00Z).
    assert.equal(addBusinessDays(d('2027-11-05T14:00:00Z'), 'America/New_York', 1).toISOString(), '2027-11-08T15:00:00.000Z');
  });

  test('a fractional part adds that fraction of 24 hours after the whole days', () => {
    const tz = 'Europe/Berlin';
    assert.equal(addBusinessDays(d('2027-01-08T09:00:00Z'), tz, 1.5).toISOString(), '2027-01-11T21:00:00.000Z');
    assert.equal(addBusinessDays(d('2027-01-08T09:00:00Z'), tz, 0.25).toISOString(), '2027-01-08T15:00:00.000Z');
    assert.throws(() => addBusinessDays(d('2027-01-08T09:00:00Z'), tz, -1), RangeError);
    assert.throws(() => addBusinessDays(d('2027-01-08T09:00:00Z'), tz, Number.NaN), RangeError);
  });

  test('property: the result is a weekday at the same local time, with the right count of weekdays between', () => {
    const rand = rng(7);
    for (let i = 0; i < 200; i++) {
      const tz = ['Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Australia/Sydney'][i % 4];
      const at = new Date(Date.parse('2027-01-01T00:00:00Z') + Math.floor(rand() * 365 * 86_400_000));
      const n = 1 + Math.floor(rand() * 12);
      const out = addBusinessDays(at, tz, n);
      const a = wall(at, tz);
      const b = wall(out, tz);
      assert.ok(!['sat', 'sun'].includes(b.weekday), `${at.toISOString()} +${n} in ${tz} lands on ${b.weekday}`);
      // Same wall time unless the original time does not exist on the target day (a DST gap).
      if (b.hm !== a.hm) assert.ok(Math.abs(b.minutes - a.minutes) <= 60, `${at.toISOString()} ${tz}: ${a.hm} → ${b.hm}`);
      let weekdays = 0;
      for (let day = Date.parse(`${a.date}T12:00:00Z`) + 86_400_000; day <= Date.parse(`${b.date}T12:00:00Z`); day += 86_400_000) {
        const wd = new Date(day).getUTCDay();
        if (wd !== 0 && wd !== 6) weekdays++;
      }
      assert.equal(weekdays, n, `${at.toISOString()} +${n} in ${tz}: ${a.date} → ${b.date}`);
    }
  });
});
