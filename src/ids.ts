import { randomBytes } from 'node:crypto';

/**
 * Prefixed, time-ordered identifiers (`msg_01JD…`): a ULID body (48-bit millisecond time +
 * 80 random bits, Crockford base32) so that ordering by id is ordering by creation time, which is
 * what cursor pagination relies on. Hand-written because it is 20 lines and a dependency for it
 * would be larger than the code.
 */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

let lastTime = 0;
let lastRandom = new Uint8Array(10);

function encode(time: number, random: Uint8Array): string {
  let out = '';
  let t = time;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[t % 32] + out;
    t = Math.floor(t / 32);
  }
  // 80 random bits → 16 base32 characters
  let bits = 0;
  let value = 0;
  for (const byte of random) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  return out;
}

/** A new ULID. Within one millisecond the random part is incremented, so ids stay strictly ordered. */
export function ulid(now = Date.now()): string {
  if (now <= lastTime) {
    // Monotonic within the same millisecond (and if the clock steps back): increment the random part.
    const next = new Uint8Array(lastRandom);
    for (let i = next.length - 1; i >= 0; i--) {
      if (next[i] < 255) { next[i]++; break; }
      next[i] = 0;
    }
    lastRandom = next;
    return encode(lastTime, next);
  }
  lastTime = now;
  lastRandom = new Uint8Array(randomBytes(10));
  return encode(now, lastRandom);
}

export type IdPrefix = 'inb' | 'msg' | 'thr' | 'att' | 'tok' | 'rcv' | 'rcp' | 'evt' | 'trc' | 'sup' | 'dom' | 'lim' | 'whk' | 'whd' | 'cmp' | 'led' | 'run' | 'spn' | 'drf' | 'sil';

export const newId = (prefix: IdPrefix): string => `${prefix}_${ulid().toLowerCase()}`;
