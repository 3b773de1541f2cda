/**
 * `npm run eval`: scores the bounce classifier (src/outbound/bounces) against sisimai's labelled
 * sample set, and the injection scorer (src/intel/injection.ts) against BIPIA's composed emails,
 * in the shared corpora. A report, not a gate: it always exits 0 and ends with
 * "TARGETS MET" or "TARGETS MISSED: …" (also when the corpus is missing, after an error message).
 *   MAILROOM_CORPORA=/path/to/corpora   corpus root (default: ../shared/corpora beside the repo)
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  corporaRoot, corpusPresent, missedTargets, ratio, runCorpus, score, SISIMAI_SET, TARGETS, type Miss,
} from '../src/outbound/bounces/corpus-eval.ts';
import { BIPIA, INJECTION_TARGETS, runBenignMailCheck, runInjectionEval } from '../src/intel/injection-eval.ts';
import { runKindEval } from '../src/intel/kind-eval.ts';
import { runReplyEval } from '../src/intel/reply-eval.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const corpora = corporaRoot(repoRoot);

if (!corpusPresent(corpora)) {
  console.error(`eval: corpus not found: expected ${path.join(corpora, SISIMAI_SET, 'expected.tsv')}.`);
  console.error('Set MAILROOM_CORPORA to the directory that holds sisimai-set-of-emails/ (default: ../shared/corpora beside the repository).');
  // Still a report (exit 0): one that says nothing could be measured.
  console.log(`TARGETS MISSED: corpus not found at ${corpora}`);
  process.exit(0);
}

const started = performance.now();
let lastProgress = started;
const { results, notBounce } = await runCorpus(corpora, (done, total) => {
  // Progress only once the run has taken a while, at most twice a second, on stderr.
  const now = performance.now();
  if (now - started > 2000 && now - lastProgress > 500) {
    lastProgress = now;
    process.stderr.write(`\r  classified ${done}/${total} files…`);
  }
});
if (lastProgress !== started) process.stderr.write('\n');
const rep = score(results, notBounce);
const elapsed = (performance.now() - started) / 1000;

const pct = (x: { hit: number; total: number }) => `${(100 * ratio(x)).toFixed(1)}%`.padStart(6);
const line = (label: string, x: { hit: number; total: number }, note = '') => console.log(`  ${label.padEnd(34)} ${pct(x)}  (${x.hit}/${x.total})${note}`);

console.log(`Bounce classifier vs ${SISIMAI_SET} (${corpora})`);
console.log(`  ${rep.files} files in ${elapsed.toFixed(1)} s; slowest ${rep.slowest.file} ${rep.slowest.ms.toFixed(0)} ms\n`);
line('detection (files, bounce|delayed)', rep.detection, `   target ≥ ${TARGETS.detection * 100}%`);
line('reason (recipient rows)', rep.reason, `   target ≥ ${TARGETS.reason * 100}%`);
line('hard/soft (recipient rows)', rep.hardSoft);
line('delivered DSN → delivered', rep.delivered);
line('vacation → auto_reply', rep.vacation, rep.vacation.countedAsBounce ? `   ${rep.vacation.countedAsBounce} counted as bounce!` : '   none counted as bounce');
line('feedback → complaint', rep.feedback, `   feedback_type right: ${rep.feedback.typeHit}/${rep.feedback.total}`);
line('not-bounce → not_bounce', rep.notBounce, `   ${rep.notBounce.files.map((f) => `${f.file}=${f.kind}`).join(', ')}`);

const top = <T,>(counts: Map<T, number>, n: number): [T, number][] => [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, n);

if (rep.reasonMisses.length) {
  console.log('\nReason misses: expected → got (top 20)');
  const conf = new Map<string, number>();
  for (const m of rep.reasonMisses) conf.set(`${m.expected} → ${m.got}`, (conf.get(`${m.expected} → ${m.got}`) ?? 0) + 1);
  for (const [k, n] of top(conf, 20)) console.log(`  ${String(n).padStart(3)}  ${k}`);
}

const all: Miss[] = [...rep.detectionMisses, ...rep.reasonMisses, ...rep.hardMisses];
if (all.length) {
  console.log('\nMisses per engine (files are bsd/, crlf/ and cr/ copies)');
  const engines = new Map<string, { detection: number; reason: number; hard: number; rows: number; samples: Set<string> }>();
  const rowsPerEngine = new Map<string, number>();
  for (const r of results) rowsPerEngine.set(r.engine, (rowsPerEngine.get(r.engine) ?? 0) + r.rows.length);
  const bump = (m: Miss, key: 'detection' | 'reason' | 'hard') => {
    const e = engines.get(m.engine) ?? { detection: 0, reason: 0, hard: 0, rows: rowsPerEngine.get(m.engine) ?? 0, samples: new Set<string>() };
    e[key]++;
    e.samples.add(`${m.dir === 'bsd' ? '' : m.dir + '/'}${m.file}${m.index ? '#' + m.index : ''}${key === 'detection' ? '' : ` ${m.expected}→${m.got}`}`);
    engines.set(m.engine, e);
  };
  rep.detectionMisses.forEach((m) => bump(m, 'detection'));
  rep.reasonMisses.forEach((m) => bump(m, 'reason'));
  rep.hardMisses.forEach((m) => bump(m, 'hard'));
  console.log(`  ${'engine'.padEnd(16)} ${'rows'.padStart(5)} ${'detect'.padStart(7)} ${'reason'.padStart(7)} ${'hard'.padStart(5)}  examples`);
  for (const [engine, e] of [...engines.entries()].sort((a, b) => (b[1].reason + b[1].detection) - (a[1].reason + a[1].detection))) {
    const ex = [...e.samples].slice(0, 3).join('; ');
    console.log(`  ${engine.padEnd(16)} ${String(e.rows).padStart(5)} ${String(e.detection).padStart(7)} ${String(e.reason).padStart(7)} ${String(e.hard).padStart(5)}  ${ex}`);
  }
}

const missed = missedTargets(rep);

// Message kind on the same sample set.
const kinds = await runKindEval(corpora);
if (kinds) {
  console.log('\nMessage kind (sisimai samples; intel/kind.ts)');
  for (const g of kinds.groups) {
    console.log(`  ${g.name.padEnd(40)} ${(100 * g.right / g.total).toFixed(1).padStart(5)}%  (${g.right}/${g.total})${g.misses.length ? `  misses: ${g.misses.slice(0, 4).join(', ')}` : ''}`);
  }
}

// Reply extraction (discourse email_reply_trimmer corpus; mailgun talon).
const replies = (await runReplyEval(corpora)).corpora;
console.log('\nReply extraction (exact match after trimming whitespace)');
for (const r of replies) {
  console.log(`  ${r.corpus.padEnd(40)} ${(100 * r.rate).toFixed(1).padStart(5)}%  (${r.exact}/${r.total})${r.failures.length ? `  misses: ${r.failures.slice(0, 4).join(', ')}` : ''}`);
}
const discourse = replies.find((r) => /discourse/.test(r.corpus));
if (!discourse) missed.push('reply-extraction corpus not found');
else if (discourse.rate < 0.85) missed.push(`reply extraction ${(100 * discourse.rate).toFixed(1)}% < 85% on discourse`);

// Prompt injection (BIPIA composed samples): flagged = level medium or high.
const inj = runInjectionEval(corpora);
console.log('\nPrompt injection (bipia-email composed samples; flagged = level medium or high)');
if (!inj) {
  console.log(`  corpus not found: ${path.join(corpora, BIPIA)}`);
  missed.push('injection corpus not found');
} else {
  const p100 = (x: number) => `${(100 * x).toFixed(1)}%`;
  console.log(`  recall          ${p100(inj.recall).padStart(6)}  (${inj.caught}/${inj.injected})   target ≥ ${p100(INJECTION_TARGETS.recall)}`);
  console.log(`  false positives ${p100(inj.fpr).padStart(6)}  (${inj.falsePositives}/${inj.benign})   target ≤ ${p100(INJECTION_TARGETS.fpr)}`);
  console.log(`  precision       ${p100(inj.precision).padStart(6)}   F1 ${inj.f1.toFixed(2)}`);
  console.log(`  hard negatives flagged: ${inj.hardFalsePositives.length}/${inj.hardNegatives} (benign mail about instructions, AI, passwords)${inj.hardFalsePositives.length ? `: ${inj.hardFalsePositives.join(' | ')}` : ''}`);
  if (inj.hardNegatives && inj.hardFalsePositives.length / inj.hardNegatives > INJECTION_TARGETS.fpr) missed.push(`injection hard negatives flagged ${inj.hardFalsePositives.length}/${inj.hardNegatives}`);
  console.log(`  own attack texts caught: ${inj.ownAttacks - inj.ownMisses.length}/${inj.ownAttacks} (written apart from BIPIA's train list)${inj.ownMisses.length ? `; missed: ${inj.ownMisses.join(' | ')}` : ''}`);
  const benignMail = await runBenignMailCheck(corpora);
  console.log(`  real benign mail flagged: ${benignMail.flagged.length}/${benignMail.files} (reply and MIME corpora)${benignMail.flagged.length ? `: ${benignMail.flagged.slice(0, 8).join(' | ')}` : ''}`);
  if (benignMail.files && benignMail.flagged.length / benignMail.files > INJECTION_TARGETS.fpr) missed.push(`real benign mail flagged ${benignMail.flagged.length}/${benignMail.files}`);
  console.log('  recall by attack category:');
  for (const [cat, c] of [...inj.byCategory].sort((a, b) => b[1].total - a[1].total)) console.log(`    ${cat.padEnd(28)} ${c.caught}/${c.total}`);
  if (inj.recall < INJECTION_TARGETS.recall) missed.push(`injection recall ${p100(inj.recall)} < ${p100(INJECTION_TARGETS.recall)}`);
  if (inj.fpr > INJECTION_TARGETS.fpr) missed.push(`injection false-positive rate ${p100(inj.fpr)} > ${p100(INJECTION_TARGETS.fpr)}`);
}
console.log(missed.length ? `\nTARGETS MISSED: ${missed.join('; ')}` : '\nTARGETS MET');
