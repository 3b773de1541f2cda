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

export function isSignature(line: string): boolean {
  if (line.length > MAX_MARKER_LINE) return false;
  const stripped = line.replace(/\[([^\]]+)\]\([^)]+\)/g, '$1');
  return SIGNATURE_REGEXES.some((r) => r.test(stripped));
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

const EMBEDDED_REGEXES: RegExp[] = [
  ...ON_DATE_SOMEONE_WROTE_REGEXES,
  ...ON_DATE_WROTE_SOMEONE_REGEXES,
  ...DATE_SOMEONE_WROTE_REGEXES,
  DATE_SOMEONE_EMAIL_REGEX,
  ...SOMEONE_WROTE_ON_DATE_REGEXES,
  ISO_DATE_SOMEONE_REGEX,
  ...SOMEONE_VIA_SOMETHING_WROTE_REGEXES,
  SOMEONE_EMAIL_WROTE_REGEX,
  POSTED_BY_SOMEONE_ON_DATE_REGEX,
  ...FORWARDED_EMAIL_REGEXES,
];

export function isEmbeddedEmail(line: string): boolean {
  if (line.length > MAX_MARKER_LINE) return false;
  return EMBEDDED_REGEXES.some((r) => r.test(line));
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

export function isEmailHeader(line: string): boolean {
  if (line.length > MAX_MARKER_LINE) return false;
  return EMAIL_HEADER_REGEXES.some((r) => r.test(line));
}

export function isQuote(line: string): boolean {
  return /^[\t\p{Zs}]*>/u.test(line);
}
