import { returnDate } from '../../intel/kind.ts';
import { DEFAULT_RESPONSES, type ReplyClass } from '../spec.ts';
import type { RespondAgent, RespondInput, ResponseDecision } from '../roles.ts';

/**
 * The built-in response agent: classifies a reply with no model and no network, from Mailroom's own
 * verdicts first and the sender's words second, and picks the action the campaign allows for that
 * class (`input.allowed`, else DEFAULT_RESPONSES). It reads `extracted_text` (the new part of the
 * reply) and, when that is empty, the fenced body of `agent_view` — never HTML.
 *
 * 1. The message kind decides machine mail: bounce → bounce; complaint → unsubscribe (a spam
 *    report is the strongest "stop", and suppression is what it needs); out_of_office → with the
 *    return date; auto_reply, list, transactional → auto_reply — except an automatic notice that
 *    the person has left, which is wrong_person with the referral it names (the most useful thing a
 *    campaign can learn from an auto-reply, and the classic departed-employee autoresponder).
 * 2. Phrases, in an order that resolves the usual conflicts (first hit wins):
 *    unsubscribe > wrong person (stated: "no longer with", "not the right person") >
 *    not interested (stated: "not interested", "no thanks", "not right now") > wrong person (a
 *    referral: "you should talk to …", unless the text is an absence notice's "for urgent matters
 *    contact …") > interested > out of office (text) > automatic reply (text) > a question >
 *    not interested (soft: "we already use …", "no budget") > a bare "yes"/"sure" (interested, less
 *    sure) > unclear (question, low confidence, so a human looks). "Ada left Acme" counts as stated
 *    wrong person through the lead's company name. So "not interested right now but ask me in Q3" is not_interested although it
 *    asks for later; "interested — can you send pricing?" is interested although it asks; "we already
 *    use X — how is yours different?" is a question a human should answer, not a stop.
 * Negation is handled by matching the negated phrase as its own, earlier class ("not … interested"
 * with up to three words between, within a clause), never by looking for "interested" alone first.
 *
 * Text is normalised once (NFKD without marks, lower case, one kind of apostrophe and space), so
 * "intéressé" and "interesse" match one pattern. Every pattern is linear: no nested quantifiers,
 * bounded gaps only ({0,3} words, {0,40} characters), no `.*` between two phrases. Only the first
 * MAX_TEXT characters are read: what a reply means is at its top, and the extractor has already
 * dropped the quoted history.
 */

export const MAX_TEXT = 20_000;

export interface TextClassification {
  classification: ReplyClass;
  confidence: number;
  /** The phrases that decided it (as matched, normalised), or a word on why nothing did. */
  evidence: string[];
  return_date: string | null;
  referral: { email: string | null; name: string | null } | null;
}

// ---- normalisation ----

export function normalizeReplyText(s: string): string {
  return s
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/[\u2018\u2019\u02bc`\u00b4]/g, "'")
    .replace(/[\u201c\u201d\u201e\u00ab\u00bb]/g, '"')
    .replace(/https?:\/\/\S+/g, ' ') // a URL's "?" is not a question
    .replace(/\s+/g, ' ')
    .trim();
}

// ---- phrases (on normalised text) ----

const UNSUBSCRIBE: RegExp[] = [
  /\bunsub(?:scrib(?:e|ed|ing))?\b/,
  /\bremove (?:me|us|my (?:e-?mail|address|details|name|data|contact)|this (?:e-?mail|address))\b/,
  /\btake (?:me|us|my (?:e-?mail|address|name)) off\b/,
  /\boff (?:of )?(?:your|the|this|all) (?:[a-z-]+ )?lists?\b/,
  /\b(?:stop|quit|cease) (?:e-?mailing|mailing|contacting|messaging|writing|sending|spamming|bothering|pestering)\b/,
  /\b(?:do not|don't|dont|never) (?:e-?mail|contact|write to|message|spam|bother) (?:me|us)\b/,
  /(?:^|[.!?] )(?:please )?stop(?: it| this| now| please)?(?:[.!]+|$)/,
  /\bplease stop\b(?! by\b)/, /^(?:please )?remove(?: me| us)?(?: please)?[.! ]*$/,
  /\bopt(?:ed|ing)? (?:me |us )?out\b/,
  /\bno (?:more|further) (?:e-?mails|mails|messages|follow[- ]?ups|contact)\b/,
  /\bleave (?:me|us) alone\b/,
  /\b(?:this is|that's|that is|marked (?:as|it as)|report(?:ed|ing)? (?:this |you |it )?(?:as|for)) spam\b/,
  /\bdelete (?:my|our) (?:data|details|information|personal data|e-?mail|address|contact)\b/,
  // German, French, Spanish
  /\b(?:abmelden|abbestellen|austragen)\b/, /\bentfernen sie mich\b/, /\bkeine (?:weiteren )?(?:e-?mails|mails|nachrichten|werbung)\b/,
  /\bnicht mehr (?:kontaktieren|anschreiben|schreiben)\b/,
  /\bdesinscri/, /\bdesabonn/, /\b(?:retirez|supprimez|enlevez)[- ]moi\b/, /\bne (?:plus|pas) me (?:contacter|recontacter|ecrire|envoyer)\b/,
  /\bne me (?:contactez|recontactez|ecrivez|envoyez) plus\b/, /\b(?:arretez|cessez) de (?:m'|me |nous )/,
  /\bdar(?:me|nos)? de baja\b/, /\bdenme de baja\b/, /\b(?:eliminen|borren|quiten|saquen)me\b/, /\bno me (?:escriban|contacten|envien|manden) mas\b/,
  /\bdejen de (?:escribirme|enviarme|contactarme|mandarme)\b/,
];

const WRONG_PERSON_STATED: RegExp[] = [
  /\bnot (?:the|a) (?:right|correct|best|appropriate|relevant|proper|ideal) (?:person|contact|one|people|guy|team|department)\b/,
  /\b(?:don't|do not) think (?:i'm|i am) the (?:right|best|correct|appropriate) (?:person|contact|one)\b/,
  /\bnot sure (?:if |whether |that )?(?:i'm|i am) the (?:right|best|correct|appropriate) (?:person|contact|one)\b/,
  /\bwrong (?:person|contact|guy|department|team|address|e-?mail)\b/,
  /\bno longer (?:with|at|work(?:s|ing)? (?:at|for|with|on|here|there)|employed|part of|in (?:this|that|the) role|responsible|handl)/,
  /\b(?:has|have|i've|he's|she's|they've) (?:since |recently )?left (?:the|this|our|that) (?:company|organi[sz]ation|firm|business|team|role)\b/,
  /\bi (?:recently |since )?left (?:the|this|that|my) (?:company|organi[sz]ation|firm|business|role|position|job)\b/,
  /\b(?:i've|i have) (?:since |recently )?moved on\b/, /\bmoved on (?:from|to)\b/, /\b(?:i've|i have|i) retired\b/,
  /\b(?:i'm|i am) not (?:involved|responsible|in charge) (?:in|for|with|of)\b/,
  /\bi (?:don't|do not|no longer) (?:handle|deal with|manage|own|work on|look after|oversee|cover|make (?:those|these|such|purchasing|buying) decisions)\b/,
  /\b(?:is not|isn't|not) (?:in )?my (?:area|department|responsibility|remit|role|domain|wheelhouse|decision|call|purview)\b/,
  // German, French, Spanish
  /\bnicht (?:der|die) (?:richtige|zustandige|passende)n? (?:ansprechpartner(?:in)?|person|kontakt)\b/, /\bnicht (?:mehr )?zustandig\b/,
  /\bnicht mehr (?:bei|im unternehmen|in der firma|fur)\b/, /\b(?:habe|hat) (?:das unternehmen|die firma) verlassen\b/,
  /\bpas (?:la|le) bon(?:ne)? (?:personne|interlocut(?:eur|rice)|contact)\b/, /\bne (?:fais|fait) plus partie\b/, /\bne travaille plus\b/,
  /\b(?:j'ai|a) quitte (?:l'entreprise|la societe)\b/, /\bje ne (?:m'occupe|gere) (?:pas|plus)\b/,
  /\bno soy la persona (?:adecuada|indicada|correcta)\b/, /\bya no (?:trabajo|trabaja|formo parte|forma parte)\b/, /\bya no estoy en la (?:empresa|compania)\b/,
];

// "You should talk to X": a referral. Not when it is "contact me / us / again / back".
const NOT_ELSEWHERE = String.raw`(?!me\b|us\b|you\b|your\b|anyone\b|anybody\b|again\b|back\b|later\b|next\b|after\b|in\b|directly\b)`;
const WRONG_PERSON_REFERRAL: RegExp[] = [
  new RegExp(String.raw`\b(?:you (?:should|could|might|may|want|need|would|'d)|you'd|you'll want|please|best (?:to|is to|would be to)|better (?:to|off)|suggest|recommend|try)\b[^.!?]{0,40}?\b(?:(?:reach(?:ing)? out|talk(?:ing)?|speak(?:ing)?|get(?:ting)? in touch|connect(?:ing)?|writ(?:e|ing)) (?:to|with)|contact(?:ing)?|e-?mail(?:ing)?) ${NOT_ELSEWHERE}`),
  /\b(?:(?:i've|i have|i'll|i will|i'm|i am) )?(?:forward(?:ed|ing)?|pass(?:ed|ing)?) (?:this|it|your (?:e-?mail|message|note)) (?:on )?(?:to|along)\b/,
  /\b(?:i've |i have |i'll |i will |i'm |i am )?(?:cc'?(?:ed|ing|'d)?|copied|copying|loop(?:ed|ing)? in|add(?:ed|ing)) (?:in )?(?:my colleague|our|the right|the person|my (?:boss|manager|colleague))\b/,
  /\b(?:is|would be|'s) (?:the|a|your) (?:right|best|better|correct|appropriate) (?:person|contact|one)\b/,
  /\bis (?:who|the (?:person|one)) you(?:'ll|'d)? (?:want|need|should)\b/,
  /\b(?:this|that|it|your (?:e-?mail|message|request|note)) (?:should|would|needs to|has to) (?:go|be sent|be directed|be addressed) to\b/,
  /\b(?:he|she|they|who) (?:handles|owns|manages|looks after|is responsible for|takes care of|is in charge of|leads|makes) (?:this|that|these|those|the|such|our|all|purchasing|procurement|vendor)\b/,
  /\bwenden sie sich (?:bitte )?an\b/, /\b(?:adressez|adresse)[- ]vous a\b/, /\bcontactez plutot\b/, /\b(?:pongase|ponte) en contacto con\b/, /\bcontacte (?:a|con) (?!nosotros\b)/,
];

const NOT_INTERESTED_STATED: RegExp[] = [
  /(?:\bnot|n't|\bnever|\bno longer|\bhardly)\s+(?:[a-z']+\s+){0,3}?interested\b/,
  /\b(?:un|dis)interested\b/, /\bno interest\b/,
  /\b(?:not|isn't|is not|wasn't) (?:a |the )?(?:good |great |right |strong )?fit\b/,
  /\bnot (?:for us|for me|relevant|a priority|something (?:we|i)(?:'re| are| am)? (?:need|want|looking for|interested in))\b/,
  /\b(?:we're|we are) all set\b/, /\b(?:we're|we are|i'm|i am) (?:good|fine|covered),? (?:for now|thanks|thank you)\b/,
  /\bno,? thank(?:s| you)\b/, /\bno,? sorry\b/, /^(?:no|nope|nah)[.! ]*$/,
  /\b(?:we'll|we will|i'll|i will|going to|gonna|have to|must|will) pass\b/, /\bpass (?:on this|on that|for now|this time)\b/,
  /\b(?:it's|that's|its|thats) a (?:hard |firm )?no\b/, /\ba no (?:from|for) (?:us|me)\b/,
  /\bnot (?:right now|now|for now|at (?:this time|the moment|present|this point|this stage)|this (?:year|quarter|time))\b/,
  /\bnot (?:looking|in the market|shopping|buying|considering)\b/,
  /\b(?:decline|declining)\b/,
  /\b(?:don't|do not|doesn't|does not) (?:need|require|want) (?:this|it|that|your|any|such|more|another|additional|a new|an additional)\b/,
  // German, French, Spanish
  /\bkein(?:e|en)? (?:interesse|bedarf)\b/, /\bnicht interessiert\b/, /\bnein,? danke\b/, /\bbrauchen (?:wir|ich) nicht\b/, /\b(?:zur zeit|derzeit|momentan|aktuell) nicht\b/,
  /\bpas interess/, /\bne (?:m'|nous |me )interesse(?:nt)? pas\b/, /\b(?:pas|aucun|sans) d?'?interet\b/, /\bnon,? merci\b/, /\bpas (?:pour le moment|pour l'instant|maintenant)\b/, /\bpas besoin\b/,
  /\bno (?:me|nos) interesa\b/, /\bno (?:estoy|estamos) interesad[oa]s?\b/, /\bno,? gracias\b/, /\bno (?:lo )?necesitamos\b/, /\b(?:por ahora|de momento|por el momento) no\b/,
];

// Weaker: a reason not to buy, or "later". Loses to interest and to a question.
const NOT_INTERESTED_SOFT: RegExp[] = [
  /\balready (?:have|use|using|work with|working with|signed|chose|chosen|went with|partner)\b/,
  /\bhappy with (?:our|my|the) (?:current|existing|present)\b/,
  /\bno (?:budget|need)\b/,
  /\b(?:maybe|perhaps|try|ask|check back|reach out|circle back|follow up|contact (?:me|us)|ping (?:me|us)) (?:again )?(?:in|next) (?:q[1-4]|a few months|six months|the new year|next year|year|quarter|spring|summer|autumn|fall|winter)\b/,
];

const INTERESTED: RegExp[] = [
  /\binterested\b/, /\binteresting\b/,
  /\bsounds (?:good|great|interesting|promising|like a plan|perfect)\b/,
  /\blet's (?:talk|chat|do (?:it|this)|connect|meet|set (?:it|something|a time|up)|schedule|book|find a time|hop on|jump on|get)\b/,
  /\blet us (?:talk|chat|meet|connect|schedule)\b/,
  /\bhappy to (?:chat|talk|connect|meet|learn|hear|take a look|jump on|hop on|set up|schedule|see|try|discuss|explore)\b/,
  /\b(?:would|'d) (?:love|like|be happy|be glad|be keen) to (?:learn|hear|see|know more|talk|chat|discuss|connect|set up|schedule|try|get|meet|find out|explore|book|take a look)\b/,
  /\b(?:send|share|forward)(?: (?:me|us|over|some|the|your|a|an|more|any|further)){0,4} (?:pricing|prices|price list|deck|details|info|information|more|brochure|case stud(?:y|ies)|proposal|quote|demo|one-pager|overview|materials?)\b/,
  /\b(?:book|schedule|set up|arrange|organi[sz]e) (?:a |an |some )?(?:call|meeting|demo|chat|time|intro|session|trial)\b/,
  /\b(?:calendly|calendar link|my calendar|send (?:me |us )?(?:an |a )?invite|works for me|does (?:monday|tuesday|wednesday|thursday|friday|tomorrow|next week) work)\b/,
  /\b(?:available|free) (?:on|next|this|tomorrow|monday|tuesday|wednesday|thursday|friday)\b/,
  /\btell me more\b/, /\b(?:great|perfect|good) timing\b/, /\btiming is (?:perfect|great|good|right)\b/,
  /\blet me know when (?:you(?:'re| are)? (?:can|could|free|available|have)|works|suits)\b/, /\b(?:count (?:me|us) in|sign (?:me|us) up)\b/, /\b(?:i'm|we're) in(?:[.!,]| -|$)/, /\b(?:keen|eager) to\b/,
  /\bhow (?:do|can) (?:we|i) (?:get started|start|sign up|try)\b/, /\b(?:can|could) we (?:get|find|grab|book|schedule|set up|talk|chat|meet|hop on|jump on)\b/,
  /\bgrab (?:a |some )?(?:call|coffee|time|\d+ ?min)/, /\byes,? please\b/, /\b(?:a|the) (?:demo|trial|pilot)\b/,
  // German, French, Spanish
  /\binteressiert\b/, /\binteresse\b/, /\bklingt (?:gut|interessant|spannend|vielversprechend)\b/, /\bmehr (?:erfahren|infos?|informationen)\b/, /\btermin\b/, /\bgerne?\b/,
  /\binteresse(?:e|s|es)?\b/, /\bca m'interesse\b/, /\bavec plaisir\b/, /\bvolontiers\b/, /\brendez-vous\b/, /\bj'aimerais (?:en savoir|avoir|recevoir|voir|discuter)\b/, /\bplus d'informations\b/,
  /\b(?:me|nos) interesa\b/, /\binteresad[oa]s?\b/, /\bsuena (?:bien|interesante)\b/, /\bcon gusto\b/, /\bhablemos\b/, /\bme gustaria (?:saber|conocer|recibir|ver|hablar|agendar)\b/, /\bmas informacion\b/, /\bagendar\b/,
];
// A bare "yes"/"sure" opening: interest, but less certain.
const INTERESTED_WEAK: RegExp[] = [/^(?:yes|yep|yeah|sure|absolutely|definitely|ok|okay|si|oui|ja)\b/];

const OUT_OF_OFFICE: RegExp[] = [
  /\bout of (?:the )?office\b/, /\bon (?:annual |parental |maternity |paternity |sick |medical |long-term )?leave\b/,
  /\bon (?:vacation|holiday|holidays|pto|sabbatical)\b/,
  /\b(?:i am|i'm|i will be|i'll be) (?:currently )?(?:away|out|travell?ing) (?:until|till|through|from|of)\b/,
  /\blimited access to (?:my )?e-?mail\b/, /\bin my absence\b/, /\bwhile i(?:'m| am) (?:away|out)\b/,
  /\babwesen/, /\bim urlaub\b/, /\bausser haus\b/, /\bnicht im buro\b/,
  /\babsente? (?:du|jusqu)/, /\ben conges?\b/, /\bhors du bureau\b/, /\ben vacances\b/,
  /\bfuera de la oficina\b/, /\bde vacaciones\b/, /\bausente\b/,
];

const AUTO_REPLY: RegExp[] = [
  /\b(?:automated|automatic|auto-generated|auto) (?:reply|response|message|e-?mail|acknowledge?ment|notification)\b/,
  /\b(?:we|i) have received your (?:e-?mail|message|request|inquiry|enquiry)\b/,
  /\bticket (?:number|no|id|#)|\b(?:case|ticket|request) #?\d{3,}/,
  /\bdo not reply to this (?:e-?mail|message)\b/, /\bthis (?:mailbox|inbox|address) is (?:not monitored|unmonitored)\b/,
  /\bautomatische antwort\b/, /\breponse automatique\b/, /\brespuesta automatica\b/,
];

const QUESTION_OPENER = /(?:^|[.!] )(?:who|what|why|how|where|when|which|can you|could you|would you|do you|does (?:it|this|your)|is (?:it|this|there)|are you)\b/;
const WONDERING = /\b(?:wondering|curious) (?:if|whether|about|how|what|why)\b/;

function matches(list: RegExp[], text: string): string[] {
  const out: string[] = [];
  for (const re of list) {
    const m = re.exec(text);
    if (m) out.push(m[0].trim() || m[0]);
  }
  return out;
}

// ---- referrals (on the original text: names are capitalised) ----

const EMAIL_LOCAL = /[A-Za-z0-9._%+'-]/;
const EMAIL_DOMAIN = /[A-Za-z0-9.-]/;

/**
 * Email addresses in the text, found from each "@" outwards with bounded scans: the usual
 * `[\w.]+@[\w.]+` regex is quadratic on a long run of word characters without an "@".
 */
export function emailsIn(text: string, limit = 20): { email: string; start: number; end: number }[] {
  const out: { email: string; start: number; end: number }[] = [];
  let at = text.indexOf('@');
  while (at >= 0 && out.length < limit) {
    let s = at;
    while (s > 0 && at - s < 64 && EMAIL_LOCAL.test(text[s - 1])) s--;
    let e = at + 1;
    while (e < text.length && e - at < 255 && EMAIL_DOMAIN.test(text[e])) e++;
    while (e > at + 1 && text[e - 1] === '.') e--; // the full stop of a sentence
    while (s < at && text[s] === '.') s++;
    const candidate = text.slice(s, e);
    if (s < at && /^[^@]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$/.test(candidate)) out.push({ email: candidate.toLowerCase(), start: s, end: e });
    at = text.indexOf('@', at + 1);
  }
  return out;
}

const NAME_WORD = String.raw`\p{Lu}[\p{L}'’-]*`;
const NAME_RE = new RegExp(String.raw`${NAME_WORD}(?:[ \t]+(?:(?:de|da|del|der|van|von|la|le|di|du)[ \t]+)?${NAME_WORD}){0,3}`, 'gu');
const NOT_A_NAME = new Set(['i', 'the', 'our', 'my', 'your', 'please', 'thanks', 'thank', 'hi', 'hello', 'dear', 'best', 'regards', 'cheers', 'he', 'she', 'they',
  'we', 'it', 'this', 'that', 'mr', 'ms', 'mrs', 'dr', 'sales', 'procurement', 'team', 'support', 'hr', 'it', 'marketing', 'legal', 'finance', 'operations', 'ops',
  'ceo', 'cto', 'cfo', 'coo', 'cmo', 'vp', 'head', 'director', 'manager', 'also', 'but', 'and', 'or', 'she\'s', 'he\'s', 'who', 'you', 'in', 'on', 'at', 'for',
  'frau', 'herr', 'herrn', 'mme', 'madame', 'monsieur', 'sr', 'sra', 'senor', 'señor', 'señora', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday', 'q1', 'q2', 'q3', 'q4', 'email', 'e-mail', 'mail',
  'i\'m', 'try', 'contact', 'ask', 'write', 'talk', 'speak', 'reach', 'send', 'see', 'cc', 'sorry', 'yes', 'no', 'not']);

/** A person's name in this span: capitalised words, leading titles and function words dropped. */
function cleanName(span: string): string | null {
  const words = span.trim().split(/[ \t]+/);
  while (words.length && NOT_A_NAME.has(words[0].toLowerCase().replace(/[.’']+$/g, ''))) words.shift();
  while (words.length && NOT_A_NAME.has(words[words.length - 1].toLowerCase())) words.pop();
  const name = words.join(' ').replace(/['’-]+$/, '');
  return name.length >= 2 && /\p{Ll}/u.test(name) ? name : null; // "ACME" or "IT" is not a person
}

// Read on a lower-cased 60-character window ending where a capitalised span starts.
const CUE_BEFORE_NAME = /(?:(?:talk|speak|reach out|get in touch|contact|e-?mail|write|forward(?:ed|ing)? (?:it|this|your [a-z]+)|pass(?:ed|ing)? (?:it|this) (?:on|along)|cc'?(?:ed|ing|'d)?|copied|copying|loop(?:ed|ing)? in|introduce you|ask|try) (?:to |with )?(?:(?:my|our|her|his|their) [a-z ]{1,40},? )?|(?:replacement|successor|right person|best person|contact person) (?:is|would be),? |(?:adressez-vous|adresse-toi) à |contactez(?: plutôt)? |wenden sie sich (?:bitte )?an |(?:hable|hablar|contacte|contactar) (?:con|a) )$/;
// Not a bare "is": "Ada is no longer here" names the person who left, not the one to talk to.
const CUE_AFTER_NAME = /^,? (?:\([^)]{0,60}\) )?(?:(?:is|would be|'s) (?:the (?:right|best|better|correct|appropriate|person|one|contact)|your (?:best|person|contact|go-to)|who you|in charge|responsible)|who (?:handles|owns|manages|runs|leads|took over)|handles|owns|manages|looks after|runs|took over|has taken over|now (?:handles|leads|owns))\b/;

/**
 * Who the reply points to instead: the first address that is not excluded, with the name written
 * next to it; else a capitalised name next to a cue. `excludeNames` (the lead's own names) are
 * never the referral: a reply about the lead ("Ada has left") names her, not her successor.
 */
export function findReferral(text: string, exclude: Set<string>, excludeNames: Set<string> = new Set()): { email: string | null; name: string | null } | null {
  const other = (name: string | null) => (name && !name.toLowerCase().split(' ').some((w) => excludeNames.has(w)) ? name : null);
  const emails = emailsIn(text).filter((e) => !exclude.has(e.email) && !/^(?:no-?reply|do-?not-?reply|mailer-daemon|postmaster)@/.test(e.email));
  if (emails.length) {
    const e = emails[0];
    const before = text.slice(Math.max(0, e.start - 60), e.start).replace(/[\s(<:,\-–—]+$|\s+at\s*$/g, '');
    const after = text.slice(e.end, e.end + 60);
    const pre = [...before.matchAll(NAME_RE)].pop();
    const preName = pre && pre.index! + pre[0].length === before.length ? cleanName(pre[0]) : null;
    const post = /^\s*[>)]?\s*[(\-–—,]\s*(\p{Lu}[^()<>\n,;]{0,60})/u.exec(after);
    const postName = post ? cleanName(post[1].replace(/\).*$/, '').match(NAME_RE)?.[0] ?? '') : null;
    return { email: e.email, name: other(preName) ?? other(postName) };
  }
  // No address: a name after "talk to …" or before "… is the right person". Only the first 200
  // capitalised spans are tried; each check reads a bounded window around the span.
  let tried = 0;
  for (const m of text.matchAll(NAME_RE)) {
    if (++tried > 200) break;
    const start = m.index!;
    const before = text.slice(Math.max(0, start - 60), start).toLowerCase().replace(/\s+/g, ' ');
    const after = text.slice(start + m[0].length, start + m[0].length + 80).toLowerCase().replace(/\s+/g, ' ');
    if (CUE_BEFORE_NAME.test(before) || CUE_AFTER_NAME.test(after)) {
      const name = other(cleanName(m[0]));
      if (name) return { email: null, name };
    }
  }
  return null;
}

// ---- the text classifier ----

export interface ClassifyTextOptions {
  /** Addresses that are not referrals (the sender, the lead, our own inbox). */
  exclude?: Iterable<string>;
  /** Date the reply's relative dates resolve against (an absence notice's "until May 5"). */
  reference?: Date | null;
  /** The lead's company: "Ada left Acme in May" says wrong person as plainly as "left the company". */
  company?: string | null;
  /** The lead's first and last name: never a referral. */
  names?: Iterable<string>;
}

function decide(classification: ReplyClass, confidence: number, evidence: string[], extra: Partial<TextClassification> = {}): TextClassification {
  return { classification, confidence, evidence, return_date: null, referral: null, ...extra };
}

/** Classify the words of a reply (no kind, no verdicts). Linear in the text; reads all of it. */
export function classifyReplyText(raw: string, opts: ClassifyTextOptions = {}): TextClassification {
  const text = normalizeReplyText(raw);
  if (!text) return decide('question', 0.2, ['no text']);
  const exclude = new Set([...(opts.exclude ?? [])].map((a) => a.toLowerCase()));
  const names = new Set([...(opts.names ?? [])].flatMap((n) => n.toLowerCase().split(/\s+/)).filter((w) => w.length > 1));
  const referral = () => findReferral(raw, exclude, names);

  const unsub = matches(UNSUBSCRIBE, text);
  if (unsub.length) return decide('unsubscribe', unsub.length > 1 ? 0.97 : 0.92, unsub);

  const stated = matches(WRONG_PERSON_STATED, text);
  const company = opts.company ? normalizeReplyText(opts.company).slice(0, 100) : '';
  if (company) {
    const escaped = company.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const left = new RegExp(`\\b(?:left|no longer (?:at|with|part of|working (?:at|for))) ${escaped}(?![a-z0-9])`).exec(text);
    if (left) stated.push(left[0]);
  }
  if (stated.length) return decide('wrong_person', 0.9, stated, { referral: referral() });

  const no = matches(NOT_INTERESTED_STATED, text);
  if (no.length) return decide('not_interested', no.length > 1 ? 0.93 : 0.88, no);

  const away = matches(OUT_OF_OFFICE, text);
  const referred = away.length ? [] : matches(WRONG_PERSON_REFERRAL, text);
  if (referred.length) {
    const r = referral();
    return decide('wrong_person', r ? 0.85 : 0.7, referred, { referral: r });
  }

  const yes = matches(INTERESTED, text);
  if (yes.length) return decide('interested', yes.length > 1 ? 0.92 : 0.82, yes);

  if (away.length) {
    const date = opts.reference ? returnDate(raw.slice(0, 2000), opts.reference) : null;
    return decide('out_of_office', 0.8, away, { return_date: date });
  }

  const auto = matches(AUTO_REPLY, text);
  if (auto.length) return decide('auto_reply', 0.75, auto);

  const asks = text.includes('?') ? ['?'] : matches([QUESTION_OPENER, WONDERING], text);
  if (asks.length) return decide('question', asks[0] === '?' ? 0.75 : 0.6, asks);

  const soft = matches(NOT_INTERESTED_SOFT, text);
  if (soft.length) return decide('not_interested', 0.65, soft);

  const weakYes = matches(INTERESTED_WEAK, text);
  if (weakYes.length) return decide('interested', 0.6, weakYes);

  return decide('question', 0.3, ['nothing recognisable: a person should read it']);
}

// ---- the agent ----

/** The sender's words from an agent view: what stands between its fence lines. */
export function fencedText(agentView: string): string {
  const m = /^The text between <([^<>\s]{1,100})> and <\/\1>/m.exec(agentView);
  if (!m) return '';
  const open = `\n<${m[1]}>\n`;
  const start = agentView.indexOf(open, m.index);
  const end = agentView.lastIndexOf(`\n</${m[1]}>`);
  if (start < 0 || end < start) return '';
  const body = agentView.slice(start + open.length, end);
  return body === '(no text)' ? '' : body;
}

/** Mailroom's own "Kind:" line of an agent view (above the fence), for a reply whose kind is not given. */
function viewKind(agentView: string): { kind: string; back: string | null } | null {
  const fenceAt = agentView.search(/^The text between </m);
  const header = fenceAt < 0 ? agentView.slice(0, 4000) : agentView.slice(0, fenceAt);
  const m = /^Kind: ([a-z_]+)(?: \(back (\d{4}-\d{2}-\d{2})\))?/m.exec(header);
  return m && m[1] !== 'unknown' ? { kind: m[1], back: m[2] ?? null } : null;
}

const ISO_DAY = /^\d{4}-\d{2}-\d{2}$/;
const LABEL: Record<ReplyClass, string> = {
  interested: 'Interested', not_interested: 'Not interested', question: 'Question or unclear', out_of_office: 'Out of office',
  wrong_person: 'Wrong person', unsubscribe: 'Unsubscribe', auto_reply: 'Automatic reply', bounce: 'Bounce',
};

function referenceDate(input: RespondInput): Date | null {
  let latest = -Infinity;
  for (const m of input.thread) {
    const t = Date.parse(m.at);
    if (!Number.isNaN(t) && t > latest) latest = t;
  }
  return Number.isFinite(latest) ? new Date(latest) : null;
}

export function classifyReply(input: RespondInput): TextClassification {
  const { reply } = input;
  const words = (reply.extracted_text.trim() ? reply.extracted_text : fencedText(reply.agent_view)).slice(0, MAX_TEXT);
  const fromView = reply.kind ? null : viewKind(reply.agent_view);
  const kind = reply.kind ?? fromView?.kind ?? null;
  const given = reply.return_date ?? fromView?.back ?? null;
  const exclude = [input.lead.email, reply.from ?? '', ...input.thread.flatMap((m) => (m.direction === 'outbound' && m.from ? [m.from] : []))];
  const reference = referenceDate(input);
  const opts = { exclude, reference, company: input.lead.company ?? null, names: [input.lead.first_name ?? '', input.lead.last_name ?? ''] };

  switch (kind) {
    case 'bounce':
      return decide('bounce', 0.99, ['kind: bounce']);
    case 'complaint':
      return decide('unsubscribe', 0.95, ['kind: complaint (a spam report)']);
    case 'out_of_office': {
      const date = given && ISO_DAY.test(given) ? given : reference ? returnDate(words.slice(0, 2000), reference) : null;
      return decide('out_of_office', 0.95, ['kind: out_of_office'], { return_date: date });
    }
    case 'auto_reply':
    case 'list':
    case 'transactional': {
      const t = classifyReplyText(words, opts);
      if (t.classification === 'wrong_person') return { ...t, evidence: [`kind: ${kind}`, ...t.evidence] };
      return decide('auto_reply', kind === 'auto_reply' ? 0.95 : 0.8, [`kind: ${kind}`]);
    }
    default:
      return classifyReplyText(words, opts);
  }
}

const oneLine = (s: string, n: number) => {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
};

export const builtinRespond: RespondAgent = {
  async respond(input) {
    const c = classifyReply(input);
    const { reply } = input;
    const words = reply.extracted_text.trim() ? reply.extracted_text : fencedText(reply.agent_view);
    const notes: string[] = [];
    if (reply.sender !== 'lead' && reply.from) notes.push(`from ${reply.sender === 'company' ? 'a colleague' : 'someone else'}: ${oneLine(reply.from, 120)}`);
    if (c.return_date) notes.push(`back ${c.return_date}`);
    if (c.referral) notes.push(`referral: ${[c.referral.name, c.referral.email].filter(Boolean).join(' ')}`);
    if (reply.injection && !['none', 'low'].includes(reply.injection.level)) notes.push(`injection risk ${reply.injection.level}`);
    if (reply.dmarc === 'fail') notes.push('DMARC fail');
    const why = c.evidence.slice(0, 3).map((e) => `"${oneLine(e, 60)}"`).join(', ');
    const snippet = oneLine(words, 160);
    const summary = `${LABEL[c.classification]} (${why}${notes.length ? `; ${notes.join('; ')}` : ''})${snippet ? `: "${snippet}"` : ''}`;
    const decision: ResponseDecision = {
      classification: c.classification,
      confidence: Math.round(c.confidence * 100) / 100,
      summary: oneLine(summary, 1000),
      return_date: c.return_date,
      referral: c.referral,
      action: input.allowed[c.classification] ?? DEFAULT_RESPONSES[c.classification],
    };
    return decision;
  },
};
