import { createHash, randomInt } from 'node:crypto';
import { crc32 } from 'node:zlib';

/**
 * Token format, after GitHub's: `mr_` + 30 random base62 characters + a 6-character base62 CRC32 of
 * the random part. The prefix lets secret scanners find leaked tokens; the checksum lets them (and
 * us) reject a mistyped or made-up token without a database lookup. Only the sha256 is stored.
 */
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
export const TOKEN_PREFIX = 'mr_';
const ENTROPY_LENGTH = 30; // 30 × log2(62) ≈ 178 bits
const CHECKSUM_LENGTH = 6;

function base62(n: number, width: number): string {
  let out = '';
  for (let i = 0; i < width; i++) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

const checksum = (entropy: string): string => base62(crc32(entropy), CHECKSUM_LENGTH);

export function generateToken(): string {
  let entropy = '';
  for (let i = 0; i < ENTROPY_LENGTH; i++) entropy += BASE62[randomInt(62)];
  return `${TOKEN_PREFIX}${entropy}${checksum(entropy)}`;
}

/** True when the string has Mailroom's token shape and a correct checksum. */
export function isWellFormedToken(token: string): boolean {
  if (token.length !== TOKEN_PREFIX.length + ENTROPY_LENGTH + CHECKSUM_LENGTH || !token.startsWith(TOKEN_PREFIX)) return false;
  const body = token.slice(TOKEN_PREFIX.length);
  if (!/^[0-9A-Za-z]+$/.test(body)) return false;
  return checksum(body.slice(0, ENTROPY_LENGTH)) === body.slice(ENTROPY_LENGTH);
}

export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/** What is shown for a token after creation: enough to recognise it, never enough to use it. */
export const displayPrefix = (token: string): string => token.slice(0, TOKEN_PREFIX.length + 6);
