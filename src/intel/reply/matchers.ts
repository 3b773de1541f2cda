/**
 * Line matchers for reply trimming.
 *
 * Ported from Discourse's email_reply_trimmer (Ruby, MIT licence, © Discourse / Régis Hanol),
 * https://github.com/discourse/email_reply_trimmer, lib/email_reply_trimmer/*_matcher.rb.
 * The regular expressions are carried over (see NOTICE.md in this folder), translated from Onigmo to
 * JavaScript: POSIX classes become Unicode property classes, Ruby's `/m` (dot matches newline) becomes
 * `s`, and JS `m` is always set because Ruby's `^`/`$` are always line anchors. Atomic groups inside
 * the negative look-aheads become plain groups (same meaning there).
 */

const B = '[\\t\\p{Zs}]'; // [[:blank:]]
const WORD = '[\\p{L}\\p{M}\\p{Nd}\\p{Pc}]'; // [[:word:]]

const rx = (src: string, flags = ''): RegExp => new RegExp(src, `mu${flags}`);

/** Lines longer than this are never treated as markers, headers or signatures (they are real text). */
export const MAX_MARKER_LINE = 600;

/** A literal an expression cannot match without: a line lacking it is not tried. */
type Needs = (line: string) => boolean;
const has = (literal: string): Needs => (line) => line.includes(literal);
const FOUR_DIGITS: Needs = (line) => /\d{4}/.test(line);
const COLON = has(':');

/**
 * Tests one line (no "\n") against a list of expressions, which is most of the trimmer's time (about
 * 60 expressions per line of text). Three shortcuts, all exact:
 * - without `m`, V8 tries a `^`-anchored expression at offset 0 only, with `m` at every offset (3–4×
 *   slower on a 72-character line); the match is the same unless the line holds another JavaScript
 *   line terminator (CR, U+2028, U+2029), and such a line takes the expressions as written;
 * - the expressions with the same flags are joined into one alternation (a line matches the
 *   alternation where it matches one of them): one call instead of a dozen, each about 50 ns;
 * - an expression that cannot match without a literal (an "@", "wrote", four digits, a colon) is not
 *   tried on a line without it: the `^.+…` forms would backtrack over the whole line to fail.
 */
function lineMatcher(rules: { re: RegExp; needs?: Needs }[]): (line: string) => boolean {
  const groups = new Map<string, { needs?: Needs; flags: string; sources: string[] }>();
  const needsIds = new Map<Needs | undefined, number>();
  for (const { re, needs } of rules) {
    const flags = re.flags.replace('m', '');
    if (!needsIds.has(needs)) needsIds.set(needs, needsIds.size);
    const key = `${needsIds.get(needs)}/${flags}`;
    const g = groups.get(key) ?? { needs, flags, sources: [] };
    g.sources.push(re.source);
    groups.set(key, g);
  }
  const fast = [...groups.values()].map(({ needs, flags, sources }) => {
    // All anchored: one anchor before the alternation, so V8 sees an anchored expression.
    const anchored = sources.every((src) => src.startsWith('^'));
    const body = sources.map((src) => `(?:${anchored ? src.slice(1) : src})`).join('|');
    return { needs, re: new RegExp(anchored ? `^(?:${body})` : body, flags) };
  });
  return (line) => {
    if (/[\r\u2028\u2029]/.test(line)) return rules.some(({ re }) => re.test(line));
    for (const { re, needs } of fast) if ((!needs || needs(line)) && re.test(line)) return true;
    return false;
  };
}

export function isEmptyLine(line: string): boolean {
  return /^[\t\p{Zs}]*$/u.test(line);
}

// DelimiterMatcher: "-_,=+~#*ᐧ—"
const DELIMITER = /^[\t\p{Zs}]*[-_,=+~#*ᐧ—]+[\t\p{Zs}]*$/u;
export function isDelimiter(line: string): boolean {
  return DELIMITER.test(line);
}

const SIGNATURE_REGEXES: RegExp[] = [
  // Chinese
  rx(`^${B}*從我的 iPhone 傳送`, 'i'),
  // English
  rx(`^${B}*${WORD}+ from mobile`, 'i'),
  rx(`^${B}*[(<]*Sent (from|via|with|by) .+[)>]*`, 'i'),
  rx(`^${B}*From my .{1,20}`, 'i'),
  rx(`^${B}*Get Outlook for `, 'i'),
  // French
  rx(`^${B}*Envoyé depuis (mon|Yahoo Mail)`, 'i'),
  // German
  rx(`^${B}*Von meinem .+ gesendet`, 'i'),
  rx(`^${B}*Diese Nachricht wurde von .+ gesendet`, 'i'),
  // Italian
  rx(`^${B}*Inviato da `, 'i'),
  // Norwegian
  rx(`^${B}*Sendt fra min `, 'i'),
  // Portuguese
  rx(`^${B}*Enviado do meu `, 'i'),
  // Spanish
  rx(`^${B}*Enviado desde mi `, 'i'),
  // Dutch
  rx(`^${B}*Verzonden met `, 'i'),
  rx(`^${B}*Verstuurd vanaf mijn `, 'i'),
  // Swedish
  rx(`^${B}*från min `, 'i'),
];

const signatureLine = lineMatcher(SIGNATURE_REGEXES.map((re) => ({ re })));

export function isSignature(line: string): boolean {
  if (line.length > MAX_MARKER_LINE) return false;
  const stripped = line.includes('[') ? line.replace(/\[([^\]]+)\]\([^)]+\)/g, '$1') : line;
  return signatureLine(stripped);
}

// EmbeddedEmailMatcher ------------------------------------------------------------------------------

const onDate = (on: string, stop: string, wrote: string, tail = `[\\t\\p{Zs}.:>-]*$`): RegExp =>
  rx(`^[\\t\\p{Zs}<>-]*${on} (?:(?!\\b(?:${stop})\\b).)+?${wrote}${tail}`, 'is');

export const ON_DATE_SOMEONE_WROTE_REGEXES: RegExp[] = [
  // Chinese
  onDate('在', '在|写道', '写道'),
  // Dutch
  onDate('Op', 'Op|het\\svolgende\\sgeschreven|schreef', '(het\\svolgende\\sgeschreven|schreef[^:]+)'),
  // English
  onDate('In message', 'In message|writes', 'writes'),
  onDate('(On|At)', 'On|wrote|writes|says|said', '(wrote|writes|says|said)'),
  // French
  onDate('Le', 'Le|nous\\sa\\sdit|a\\s+écrit', '(nous\\sa\\sdit|a\\s+écrit)'),
  // German
  onDate('Am', 'Am|schrieben\\sSie', 'schrieben\\sSie'),
  onDate('Am', 'Am|geschrieben', '(geschrieben|schrieb[^:]+)'),
  // Italian
  onDate('Il', 'Il|ha\\sscritto', 'ha\\sscritto'),
  // Polish
  onDate('(Dnia|Dňa)', 'Dnia|Dňa|napisał', 'napisał(\\(a\\))?'),
  // Portuguese
  onDate('Em', 'Em|escreveu', 'escreveu'),
  // Spanish
  onDate('El', 'El|escribió', 'escribió'),
];

const ON_DATE_WROTE_SOMEONE_REGEXES: RegExp[] = [
  ['Op', 'schreef'], // Dutch
  ['Am', 'schrieb'], // German
  ['Den', 'skrev'], // Norwegian
  ['søn\\.', 'skrev'], // Danish
].map(([on, wrote]) => rx(`^[\\t\\p{Zs}>]*${on}\\s.+\\s${wrote}\\s[^:]+:`));

export const DATE_SOMEONE_WROTE_REGEXES: RegExp[] = [
  ['пользователь', 'написал'], // Russian
  ['', 'napisał\\(a\\)'], // Polish
  ['', 'пише'], // Ukrainian
].map(([user, wrote]) =>
  user.length === 0
    ? rx(`\\d{4}.{1,80}\\n?.{0,80}?${wrote}:`)
    : rx(`\\d{4}.{1,80}${user}.{0,80}\\n?.{0,80}?${wrote}:`),
);

// `.+[^:]+:` of the original is rewritten as the equivalent `.+[^:]:` (no nested quantifiers).
export const SOMEONE_WROTE_ON_DATE_REGEXES: RegExp[] = [
  rx(`^.+\\bwrote\\b\\s+\\bon\\b.+[^:]:`), // English
  rx(`^.+\\bschrieb\\b\\s+\\bam\\b.+[^:]:`), // German
];

/** The original form, whose `[^:]+` may cross a line break; only used on short multi-line windows. */
export const SOMEONE_WROTE_ON_DATE_MULTILINE_REGEXES: RegExp[] = [
  rx(`^.+\\bwrote\\b\\s+\\bon\\b.+[^:]+:`),
  rx(`^.+\\bschrieb\\b\\s+\\bam\\b.+[^:]+:`),
];

const ISO_DATE_SOMEONE_REGEX = rx(`^[\\t\\p{Zs}>]*20\\d\\d-\\d\\d-\\d\\d \\d\\d:\\d\\d GMT\\+\\d\\d:\\d\\d [\\w\\t\\p{Zs}]+$`);

export const DATE_SOMEONE_EMAIL_REGEX = rx(`\\d{4}.{1,80}\\s?<[^@<>]+@[^@<>.]+\\.[^@<>]+>:?$`);

const SOMEONE_VIA_SOMETHING_WROTE_REGEXES: RegExp[] = ['wrote', 'schrieb'].map((w) =>
  rx(`^.+ via .+ ${w}:?[\\t\\p{Zs}]*$`),
);

const SOMEONE_EMAIL_WROTE_REGEX = rx(`^.+\\b[\\w.+-]+@[\\w.-]+\\.\\w{2,}\\b.+wrote:?$`);

const POSTED_BY_SOMEONE_ON_DATE_REGEX = rx(`^[\\t\\p{Zs}>]*Posted by .+ on \\d{2}\\/\\d{2}\\/\\d{4}$`, 'i');

const FORWARDED_EMAIL_REGEXES: RegExp[] = [
  // English
  rx(`^[\\t\\p{Zs}>]*Begin forwarded message:`, 'i'),
  rx(`^[\\t\\p{Zs}>*]*-{2,}[\\t\\p{Zs}]*(Forwarded|Original|Reply) Message[\\t\\p{Zs}]*-{2,}`, 'i'),
  // French
  rx(`^[\\t\\p{Zs}>]*Début du message transféré :`, 'i'),
  rx(`^[\\t\\p{Zs}>*]*-{2,}[\\t\\p{Zs}]*Message transféré[\\t\\p{Zs}]*-{2,}`, 'i'),
  // German
  rx(`^[\\t\\p{Zs}>*]*-{2,}[\\t\\p{Zs}]*Ursprüngliche Nachricht[\\t\\p{Zs}]*-{2,}`, 'i'),
  // Spanish
  rx(`^[\\t\\p{Zs}>*]*-{2,}[\\t\\p{Zs}]*Mensaje original[\\t\\p{Zs}]*-{2,}`, 'i'),
  // Chinese
  rx(`^[\\t\\p{Zs}>*]*-{2,}[\\t\\p{Zs}]*原始邮件[\\t\\p{Zs}]*-{2,}`, 'i'),
];

const EMBEDDED_RULES: { re: RegExp; needs?: Needs }[] = [
  ...ON_DATE_SOMEONE_WROTE_REGEXES.map((re) => ({ re })),
  ...ON_DATE_WROTE_SOMEONE_REGEXES.map((re) => ({ re })),
  ...DATE_SOMEONE_WROTE_REGEXES.map((re) => ({ re, needs: FOUR_DIGITS })),
  { re: DATE_SOMEONE_EMAIL_REGEX, needs: (l: string) => l.includes('@') && FOUR_DIGITS(l) },
  { re: SOMEONE_WROTE_ON_DATE_REGEXES[0], needs: has('wrote') },
  { re: SOMEONE_WROTE_ON_DATE_REGEXES[1], needs: has('schrieb') },
  { re: ISO_DATE_SOMEONE_REGEX },
  ...SOMEONE_VIA_SOMETHING_WROTE_REGEXES.map((re) => ({ re, needs: has(' via ') })),
  { re: SOMEONE_EMAIL_WROTE_REGEX, needs: (l: string) => l.includes('@') && l.includes('wrote') },
  { re: POSTED_BY_SOMEONE_ON_DATE_REGEX },
  ...FORWARDED_EMAIL_REGEXES.map((re) => ({ re })),
];
const embeddedEmailLine = lineMatcher(EMBEDDED_RULES);

export function isEmbeddedEmail(line: string): boolean {
  if (line.length > MAX_MARKER_LINE) return false;
  return embeddedEmailLine(line);
}

// EmailHeaderMatcher --------------------------------------------------------------------------------

const HEADERS_WITH_DATE: string[][] = [
  ['Sendt'], // Norwegian
  ['Sent', 'Date'], // English
  ['Date', 'Le'], // French
  ['Gesendet'], // German
  ['Enviada em'], // Portuguese
  ['Enviado'], // Spanish
  ['Fecha'], // Spanish (Mexican)
  ['Data'], // Italian
  ['Datum'], // Dutch
  ['Skickat'], // Swedish
  ['发送时间'], // Chinese
  ['Отправлено', 'Дата'], // Russian (not in the original)
];

const HEADERS_WITH_TEXT: string[][] = [
  ['Fra', 'Til', 'Emne'], // Norwegian
  ['From', 'To', 'Cc', 'Reply-To', 'Subject'], // English
  ['De', 'Expéditeur', 'À', 'Destinataire', 'Répondre à', 'Objet'], // French
  ['Von', 'An', 'Betreff'], // German
  ['De', 'Para', 'Assunto'], // Portuguese
  ['De', 'Para', 'Asunto'], // Spanish
  ['Da', 'Risposta', 'A', 'Oggetto'], // Italian
  ['Van', 'Beantwoorden - Aan', 'Aan', 'Onderwerp'], // Dutch
  ['Från', 'Till', 'Ämne'], // Swedish
  ['发件人', '收件人', '主题'], // Chinese
  ['От', 'Кому', 'Копия', 'Тема'], // Russian (not in the original)
];

const EMAIL_HEADER_REGEXES: RegExp[] = [
  ...HEADERS_WITH_DATE.map((h) => rx(`^[\\t\\p{Zs}*]*(?:${h.join('|')})[\\t\\p{Zs}*]*:.*\\d+`)),
  ...HEADERS_WITH_TEXT.map((h) => rx(`^[\\t\\p{Zs}*]*(?:${h.join('|')})[\\t\\p{Zs}*]*:.*${WORD}+`, 'i')),
];

// Every header expression has the colon after the field name.
const emailHeaderLine = lineMatcher(EMAIL_HEADER_REGEXES.map((re) => ({ re, needs: COLON })));

export function isEmailHeader(line: string): boolean {
  if (line.length > MAX_MARKER_LINE) return false;
  return emailHeaderLine(line);
}

export function isQuote(line: string): boolean {
  return /^[\t\p{Zs}]*>/u.test(line);
}

/** The expressions as written, per matcher: what the fast line matchers must agree with (tests). */
export const LINE_EXPRESSIONS = {
  signature: SIGNATURE_REGEXES,
  embedded: EMBEDDED_RULES.map((r) => r.re),
  header: EMAIL_HEADER_REGEXES,
};
