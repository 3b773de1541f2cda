import { WEEKDAYS, type SendWindow, type Weekday } from './spec.ts';

/**
 * Time for campaigns: the campaign clock (simulated time for demos and tests), the recipient's time
 * zone, send windows and business days. Pure functions over `Date` and IANA zone names, no
 * dependencies beyond Intl: Temporal is not in Node 24, and a tz library would be a second source of
 * zone rules next to the ICU data Intl already ships (and that the spec's zone validation uses).
 *
 * Vocabulary: an *instant* is a `Date` or epoch ms; a *wall time* is a local date and time in a zone,
 * held as "epoch ms as if the local clock were UTC" so calendar arithmetic on it is plain
 * arithmetic (Date.UTC), with no zone involved until it is turned back into an instant.
 */

const MINUTE = 60_000;
const DAY = 86_400_000;

// ---------------------------------------------------------------------------------------------
// The campaign clock
// ---------------------------------------------------------------------------------------------

/** Campaign time runs `scale` times faster than real time; at real `originReal` it read `originSim` (ms epoch). */
export interface CampaignClock {
  scale: number;
  originReal: number;
  originSim: number;
}

/** What the campaign clock reads at real time `realNow`. */
export function clockNow(c: CampaignClock, realNow: number = Date.now()): Date {
  // floor, not Date's truncation toward zero: with a fractional scale the reading must never run ahead.
  return new Date(Math.floor(c.originSim + (realNow - c.originReal) * c.scale));
}

/**
 * The real epoch ms at which the campaign clock reaches `sim`: the first whole millisecond with
 * clockNow(c, realAt(c, sim)) ≥ sim. Rounded up, because a durable job started at this real time
 * must find its campaign time already due — a job that wakes 0.4 ms early would see "not yet" and
 * have to reschedule itself.
 */
export function realAt(c: CampaignClock, sim: Date): number {
  if (!(c.scale > 0) || !Number.isFinite(c.scale)) throw new RangeError(`campaign clock scale must be a positive number, not ${c.scale}`);
  const d = sim.getTime() - c.originSim;
  let r = Math.ceil(d / c.scale);
  // d / scale * scale can come back a hair below d in floating point: step once more if it does.
  while (c.originSim + r * c.scale < sim.getTime()) r++;
  return c.originReal + r;
}

/** Real milliseconds from `realNow` until the campaign clock reaches `sim` (0 if it already has). */
export function realDelayMs(c: CampaignClock, sim: Date, realNow: number = Date.now()): number {
  return Math.max(0, realAt(c, sim) - realNow);
}

// ---------------------------------------------------------------------------------------------
// Which zone a recipient is in
// ---------------------------------------------------------------------------------------------

/**
 * Country-code TLD → the zone where most of the country's population lives (a country with several
 * zones gets its most populous one: .ca → Toronto, .au → Sydney, .br → São Paulo, .ru → Moscow).
 * Second-level forms (.co.uk, .com.au, .co.jp, .com.br) need no entries: the country is always the
 * last label.
 */
const CCTLD_ZONES: Record<string, string> = {
  // Europe
  uk: 'Europe/London', gb: 'Europe/London', ie: 'Europe/Dublin', de: 'Europe/Berlin', at: 'Europe/Vienna',
  ch: 'Europe/Zurich', li: 'Europe/Vaduz', fr: 'Europe/Paris', be: 'Europe/Brussels', nl: 'Europe/Amsterdam',
  lu: 'Europe/Luxembourg', es: 'Europe/Madrid', pt: 'Europe/Lisbon', it: 'Europe/Rome', mt: 'Europe/Malta',
  dk: 'Europe/Copenhagen', se: 'Europe/Stockholm', no: 'Europe/Oslo', fi: 'Europe/Helsinki', is: 'Atlantic/Reykjavik',
  ee: 'Europe/Tallinn', lv: 'Europe/Riga', lt: 'Europe/Vilnius', pl: 'Europe/Warsaw', cz: 'Europe/Prague',
  sk: 'Europe/Bratislava', hu: 'Europe/Budapest', si: 'Europe/Ljubljana', hr: 'Europe/Zagreb', rs: 'Europe/Belgrade',
  ba: 'Europe/Sarajevo', mk: 'Europe/Skopje', al: 'Europe/Tirane', bg: 'Europe/Sofia', ro: 'Europe/Bucharest',
  md: 'Europe/Chisinau', gr: 'Europe/Athens', cy: 'Asia/Nicosia', tr: 'Europe/Istanbul', ua: 'Europe/Kyiv',
  by: 'Europe/Minsk', ru: 'Europe/Moscow',
  // Americas (.us is rarely used; when it is, Eastern time is where most people live)
  us: 'America/New_York', ca: 'America/Toronto', mx: 'America/Mexico_City', br: 'America/Sao_Paulo',
  ar: 'America/Argentina/Buenos_Aires', cl: 'America/Santiago', pe: 'America/Lima', ec: 'America/Guayaquil',
  ve: 'America/Caracas', uy: 'America/Montevideo', py: 'America/Asuncion', bo: 'America/La_Paz',
  cr: 'America/Costa_Rica', pa: 'America/Panama', gt: 'America/Guatemala', do: 'America/Santo_Domingo',
  pr: 'America/Puerto_Rico', jm: 'America/Jamaica',
  // Asia and Pacific
  jp: 'Asia/Tokyo', cn: 'Asia/Shanghai', hk: 'Asia/Hong_Kong', tw: 'Asia/Taipei', kr: 'Asia/Seoul',
  sg: 'Asia/Singapore', my: 'Asia/Kuala_Lumpur', th: 'Asia/Bangkok', vn: 'Asia/Ho_Chi_Minh', ph: 'Asia/Manila',
  id: 'Asia/Jakarta', in: 'Asia/Kolkata', pk: 'Asia/Karachi', bd: 'Asia/Dhaka', lk: 'Asia/Colombo',
  np: 'Asia/Kathmandu', kz: 'Asia/Almaty', uz: 'Asia/Tashkent', ge: 'Asia/Tbilisi', am: 'Asia/Yerevan',
  az: 'Asia/Baku', au: 'Australia/Sydney', nz: 'Pacific/Auckland',
  // Middle East and Africa
  il: 'Asia/Jerusalem', ae: 'Asia/Dubai', sa: 'Asia/Riyadh', qa: 'Asia/Qatar', kw: 'Asia/Kuwait', bh: 'Asia/Bahrain',
  om: 'Asia/Muscat', jo: 'Asia/Amman', lb: 'Asia/Beirut', ir: 'Asia/Tehran', iq: 'Asia/Baghdad', eg: 'Africa/Cairo',
  ma: 'Africa/Casablanca', dz: 'Africa/Algiers', tn: 'Africa/Tunis', ng: 'Africa/Lagos', gh: 'Africa/Accra',
  ke: 'Africa/Nairobi', tz: 'Africa/Dar_es_Salaam', ug: 'Africa/Kampala', et: 'Africa/Addis_Ababa',
  za: 'Africa/Johannesburg', rw: 'Africa/Kigali', sn: 'Africa/Dakar', ci: 'Africa/Abidjan',
};

/**
 * ccTLDs sold worldwide as generic names (.io "I/O", .co "company", .ai, .me, .tv…): a startup at
 * acme.io is no more in the Chagos Islands than acme.com is in the US, so the bare TLD says nothing.
 * Only the country's own second-level forms (acme.com.co, acme.org.ai) do.
 */
const VANITY_CCTLDS: Record<string, string> = {
  io: 'Indian/Chagos', co: 'America/Bogota', ai: 'America/Anguilla', me: 'Europe/Podgorica', tv: 'Pacific/Funafuti',
  fm: 'Pacific/Pohnpei', ly: 'Africa/Tripoli', gg: 'Europe/Guernsey', sh: 'Atlantic/St_Helena', ws: 'Pacific/Apia',
  cc: 'Indian/Cocos', to: 'Pacific/Tongatapu', nu: 'Pacific/Niue', tk: 'Pacific/Fakaofo', la: 'Asia/Vientiane',
  ac: 'Indian/Chagos', im: 'Europe/Isle_of_Man', vc: 'America/St_Vincent', so: 'Africa/Mogadishu', st: 'Africa/Sao_Tome',
};
const COUNTRY_SECOND_LEVELS = new Set(['com', 'net', 'org', 'edu', 'gov', 'co', 'ac', 'mil', 'nom', 'or', 'ne', 'go']);

/** A representative IANA zone for the country of `domain`'s TLD, or null for a generic TLD (.com, .org, .io…). */
export function timeZoneForDomain(domain: string): string | null {
  const labels = domain.trim().toLowerCase().replace(/\.+$/, '').split('.');
  if (labels.length < 2) return null;
  const tld = labels[labels.length - 1];
  const zone = CCTLD_ZONES[tld];
  if (zone) return zone;
  const vanity = VANITY_CCTLDS[tld];
  if (vanity && labels.length >= 3 && COUNTRY_SECOND_LEVELS.has(labels[labels.length - 2])) return vanity;
  return null;
}

/** The zone to send to `lead` in: its own (if valid), else its domain's country, else `fallback`. */
export function leadTimeZone(lead: { email: string; timezone?: string }, fallback: string): { zone: string; source: 'lead' | 'domain' | 'default' } {
  if (lead.timezone && isKnownZone(lead.timezone)) return { zone: lead.timezone, source: 'lead' };
  const at = lead.email.lastIndexOf('@');
  const fromDomain = at >= 0 ? timeZoneForDomain(lead.email.slice(at + 1)) : null;
  if (fromDomain) return { zone: fromDomain, source: 'domain' };
  return { zone: fallback, source: 'default' };
}

// ---------------------------------------------------------------------------------------------
// Zones: instant ↔ wall time
// ---------------------------------------------------------------------------------------------

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    // hourCycle h23: with hour12:false some ICU versions print midnight as "24".
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
    formatters.set(tz, f);
  }
  return f;
}

function isKnownZone(tz: string): boolean {
  try {
    formatter(tz);
    return true;
  } catch {
    return false;
  }
}

/** The wall time (see above) that the clocks in `tz` show at instant `t`, to the millisecond. */
function wallAt(t: number, tz: string): number {
  const p: Record<string, number> = {};
  for (const { type, value } of formatter(tz).formatToParts(t)) if (type !== 'literal') p[type] = Number(value);
  // Intl prints whole seconds; the milliseconds carry over unchanged (no zone offset has them).
  const ms = ((t % 1000) + 1000) % 1000;
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) + ms;
}

/** The zone's UTC offset at instant `t`, in ms (wall − instant). */
function offsetAt(t: number, tz: string): number {
  return wallAt(t, tz) - t;
}

/**
 * The instants at which the clocks in `tz` show `wall`: one normally, two in a fall-back overlap
 * (earlier first), none in a spring-forward gap. The candidates come from the offsets a day either
 * side — every zone has at most one transition within ±24 h of any moment — and only those that
 * read back as `wall` are kept: this is the offset iteration, done exhaustively rather than until
 * it happens to converge.
 */
function instantsOf(wall: number, tz: string): number[] {
  const before = wall - offsetAt(wall - DAY, tz);
  const after = wall - offsetAt(wall + DAY, tz);
  const out: number[] = [];
  for (const t of before <= after ? [before, after] : [after, before]) {
    if (!out.includes(t) && wallAt(t, tz) === wall) out.push(t);
  }
  return out;
}

/**
 * The instant the clocks in `tz` show `wall`; in an overlap the earlier one; in a gap the first valid
 * local time after it, i.e. the transition itself (a 02:30 window start on a day the clocks jump from
 * 02:00 to 03:00 opens at 03:00, not at Temporal's "compatible" 03:30, which would cut half an hour
 * off the window for no reason).
 */
function instantOf(wall: number, tz: string): number {
  const found = instantsOf(wall, tz);
  if (found.length) return found[0];
  // In a gap: the transition lies between the two readings with the old and the new offset. The
  // instant with the new offset reads before `wall`, the one with the old offset after: bisect.
  let lo = wall - offsetAt(wall + DAY, tz);
  let hi = wall - offsetAt(wall - DAY, tz);
  if (lo > hi) [lo, hi] = [hi, lo];
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (wallAt(mid, tz) >= wall) hi = mid;
    else lo = mid;
  }
  return hi;
}

// ---------------------------------------------------------------------------------------------
// Calendar dates (pure wall-time arithmetic)
// ---------------------------------------------------------------------------------------------

function isoDate(wall: number): string {
  return new Date(wall).toISOString().slice(0, 10);
}

function weekdayOf(wall: number): Weekday {
  // getUTCDay: 0 = Sunday; WEEKDAYS starts on Monday.
  return WEEKDAYS[(new Date(wall).getUTCDay() + 6) % 7];
}

function midnightOf(wall: number): number {
  return Math.floor(wall / DAY) * DAY;
}

function parseDate(date: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  const wall = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : NaN;
  if (!m || Number.isNaN(wall) || isoDate(wall) !== date) throw new RangeError(`not a calendar date (YYYY-MM-DD): "${date}"`);
  return wall;
}

function clockMinutes(hhmm: string): number {
  const m = /^(\d{2}):(\d{2})$/.exec(hhmm);
  if (!m) throw new RangeError(`not a time of day (HH:MM): "${hhmm}"`);
  return Number(m[1]) * 60 + Number(m[2]);
}

/** A window's bounds in minutes since local midnight; the schema's "24:xx" ends clamp to the end of the day. */
function windowMinutes(w: SendWindow): { start: number; end: number } {
  const start = clockMinutes(w.start);
  const end = Math.min(clockMinutes(w.end), 1440);
  if (!(start < end) || w.days.length === 0) throw new RangeError(`the send window never opens (${w.days.join(',') || 'no days'} ${w.start}–${w.end})`);
  return { start, end };
}

/** The local date, weekday and minutes since local midnight of instant `at` in `tz`. */
export function localParts(at: Date, tz: string): { date: string; weekday: Weekday; minutes: number } {
  const wall = wallAt(at.getTime(), tz);
  return { date: isoDate(wall), weekday: weekdayOf(wall), minutes: Math.floor((wall - midnightOf(wall)) / MINUTE) };
}

/** The instant a local date begins in `tz` (its midnight, or the first valid time if midnight is skipped). */
export function startOfLocalDate(date: string, tz: string): Date {
  return new Date(instantOf(parseDate(date), tz));
}

// ---------------------------------------------------------------------------------------------
// Send windows
// ---------------------------------------------------------------------------------------------

/** Is `at` inside the window (days and [start, end) in recipient wall time)? */
export function isInWindow(at: Date, tz: string, w: SendWindow): boolean {
  const { start, end } = windowMinutes(w);
  const p = localParts(at, tz);
  return w.days.includes(p.weekday) && p.minutes >= start && p.minutes < end;
}

/**
 * The stretch of real time the window is open on local day `day` (a wall midnight): from its opening
 * instant to the first instant its end shows after that. Null when the window does not exist that
 * day (a day not in w.days, or a window lying wholly inside a DST gap). `notBefore` picks, in a
 * fall-back overlap where the same window opens twice, the occurrence that is still ahead.
 */
function openingOn(day: number, tz: string, w: SendWindow, notBefore: number): { open: number; close: number } | null {
  const { start, end } = windowMinutes(w);
  if (!w.days.includes(weekdayOf(day))) return null;
  const opens = instantsOf(day + start * MINUTE, tz);
  const open = opens.length ? (opens.find((t) => closeAfter(day, tz, end, t) > notBefore) ?? opens[0]) : instantOf(day + start * MINUTE, tz);
  const close = closeAfter(day, tz, end, open);
  return close > open ? { open, close } : null;
}

function closeAfter(day: number, tz: string, end: number, t: number): number {
  const wall = day + end * MINUTE;
  return instantsOf(wall, tz).find((c) => c > t) ?? instantOf(wall, tz);
}

/** The window's opening that contains `t`, or null if `t` is outside the window. */
function openingAround(t: number, tz: string, w: SendWindow): { open: number; close: number } | null {
  if (!isInWindow(new Date(t), tz, w)) return null;
  const day = midnightOf(wallAt(t, tz));
  const o = openingOn(day, tz, w, t);
  if (o && o.open <= t && t < o.close) return o;
  // The second pass through a fall-back overlap (the clocks went back into the window after it had
  // closed): its "opening" was the transition; counting from `t` instead only narrows the spread.
  return { open: t, close: closeAfter(day, tz, windowMinutes(w).end, t) };
}

/** The first opening of the window that ends after `t` (it may already be open at `t`). */
function nextOpening(t: number, tz: string, w: SendWindow): { open: number; close: number } {
  const around = openingAround(t, tz, w);
  if (around) return around;
  const today = midnightOf(wallAt(t, tz));
  // Eight days cover a full week from today; a couple more allow for a window lost in a DST gap.
  for (let i = 0; i <= 10; i++) {
    const o = openingOn(today + i * DAY, tz, w, t);
    if (o && o.open >= t) return o;
  }
  throw new RangeError(`the send window ${w.start}–${w.end} does not open in ${tz} within ten days of ${new Date(t).toISOString()}`);
}

/** `at` if it is inside the window, else the next instant the window opens. */
export function nextWindowStart(at: Date, tz: string, w: SendWindow): Date {
  const o = nextOpening(at.getTime(), tz, w);
  return new Date(Math.max(o.open, at.getTime()));
}

/** A stable hash of `key` to [0, 1): FNV-1a, 32 bits, then a final avalanche so similar keys spread. */
export function spreadFraction(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return (h >>> 0) / 2 ** 32;
}

/** Longest spread after a window opens, and when `at` is already inside one. */
export const SPREAD_AFTER_OPENING_MS = 2 * 3_600_000;
export const SPREAD_INSIDE_MS = 15 * 60_000;

/**
 * A send time ≥ `at` inside the window, spread by `spreadKey`: when the window opens later, over
 * its first two hours (at most half of it), so a campaign's leads do not all go at 09:00:00 (a
 * burst providers notice, and one the rate limits would only smear anyway) and every send lands
 * early enough that a rate-limit delay still leaves room before the window closes. When `at` is
 * already inside the window — the first message of a new campaign, a follow-up due at the time of
 * day its predecessor went — at most 15 minutes are added: it is due now, not in hours. The slot
 * never leaves the window and is never before `at`. Whole seconds of spread: a schedule reads
 * better as 09:17:42 than 09:17:42.613.
 */
export function windowSlot(at: Date, tz: string, w: SendWindow, spreadKey: string): Date {
  const t = at.getTime();
  const o = nextOpening(t, tz, w);
  const from = Math.max(o.open, t);
  const spread = o.open >= t ? Math.min((o.close - o.open) / 2, SPREAD_AFTER_OPENING_MS) : SPREAD_INSIDE_MS;
  const span = Math.min(spread, o.close - from);
  const seconds = Math.floor(span / 1000);
  return new Date(from + Math.floor(spreadFraction(spreadKey) * seconds) * 1000);
}

// ---------------------------------------------------------------------------------------------
// Business days
// ---------------------------------------------------------------------------------------------

/**
 * `days` business days after `at` in `tz`: each whole day moves to the next Monday–Friday local
 * date (so Friday + 1 is Monday, and Saturday + 1 is Monday too), keeping the local time of day;
 * then a fractional part adds that fraction of 24 real hours (2.5 days = two business days and
 * twelve hours — which may land on a weekend or at night: the send window, not this, decides when
 * mail goes out). 0 returns `at`. Public holidays are not known here.
 */
export function addBusinessDays(at: Date, tz: string, days: number): Date {
  if (!(days >= 0) || !Number.isFinite(days)) throw new RangeError(`business days must be a finite number ≥ 0, not ${days}`);
  const whole = Math.floor(days);
  let t = at.getTime();
  if (whole > 0) {
    const wall = wallAt(t, tz);
    let day = midnightOf(wall);
    for (let n = 0; n < whole; ) {
      day += DAY;
      const wd = weekdayOf(day);
      if (wd !== 'sat' && wd !== 'sun') n++;
    }
    t = instantOf(day + (wall - midnightOf(wall)), tz);
  }
  return new Date(t + Math.round((days - whole) * DAY));
}
