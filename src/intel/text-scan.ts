/** Scans of a message's text for the injection scorer, written as loops where an expression was slow. */

/**
 * The runs of 40 or more base64 characters (hex is a subset: a hex run is found as one), with up to
 * two "=" of padding: the matches of /[A-Za-z0-9+/]{40,}={0,2}/g. A loop, because the expression
 * retried its quantifier at every letter of every word and was an eighth of the scorer's time.
 */
export function* encodedRuns(text: string): Generator<string> {
  const isBase64 = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 43 || c === 47;
  let start = -1;
  for (let i = 0; i <= text.length; i++) {
    if (i < text.length && isBase64(text.charCodeAt(i))) {
      if (start < 0) start = i;
      continue;
    }
    if (start >= 0 && i - start >= 40) {
      let end = i;
      while (end < text.length && end - i < 2 && text.charCodeAt(end) === 61) end++;
      yield text.slice(start, end);
      i = end - 1; // go on after the padding
    }
    start = -1;
  }
}

/** `[...s].reverse().join('')` (code points reversed, a surrogate pair kept whole) without the array. */
export function reverseCodePoints(s: string): string {
  let out = '';
  for (let i = s.length - 1; i >= 0; i--) {
    const c = s.charCodeAt(i);
    if (c >= 0xdc00 && c <= 0xdfff && i > 0) {
      const h = s.charCodeAt(i - 1);
      if (h >= 0xd800 && h <= 0xdbff) { out += s[i - 1] + s[i]; i--; continue; }
    }
    out += s[i];
  }
  return out;
}
