/**
 * The `diagnostic` a verdict reports: the remote server's words, on one line, at most 500
 * characters. For non-DSN bounces it is the recipient's block minus the line that only names the
 * recipient, preferring the lines that quote the server (reply codes, "said:").
 */

export const MAX_DIAGNOSTIC = 500;

const collapse = (s: string): string => s.replace(/\s+/g, ' ').trim();

export function clipDiagnostic(s: string | null): string | null {
  if (!s) return null;
  const c = collapse(s);
  if (!c) return null;
  return c.length > MAX_DIAGNOSTIC ? c.slice(0, MAX_DIAGNOSTIC - 1) + '…' : c;
}

// Lines that quote what the remote server answered.
const SERVER_WORDS = /(?:said|says|responded|reply|response|error|diagnostic[- ]code)\s*:|(?:^|\s)[245]\d\d[\s-]|(?<![\d.])[245]\.\d{1,3}\.\d{1,3}(?![\d])|<<<|\(reason:/i;

export function diagnosticFromBlock(block: string, address: string | null): string | null {
  if (!block.trim()) return null;
  const lines = block.split('\n').map((l) => l.trim()).filter(Boolean);
  // Drop the line that only names the recipient.
  const body = lines.filter((l) => !(address && l.replace(/[<>:"]/g, '').trim().toLowerCase() === address));
  const first = body.findIndex((l) => SERVER_WORDS.test(l));
  if (first < 0) return clipDiagnostic(body.join(' '));
  // The quoting line and its continuation lines (until a line that starts something new).
  const picked = [body[first]];
  for (let i = first + 1; i < body.length && picked.length < 6; i++) {
    if (/^(?:giving up|---|\*\*\*|i'm not going|this is|please|for more|if you|the following)/i.test(body[i])) break;
    picked.push(body[i]);
  }
  return clipDiagnostic(picked.join(' '));
}
