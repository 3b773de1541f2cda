import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { classifyBounce, type BounceVerdict } from './classify.ts';

/**
 * Scoring the classifier against sisimai's labelled sample set (see the corpora README, section
 * "sisimai-set-of-emails"). Shared by `npm run eval` and the corpus test so both measure the same
 * thing. Labels are matched to verdict recipients by order within a file: the label table has no
 * addresses, and sisimai lists recipients in the order the report does.
 */

export const SISIMAI_SET = 'sisimai-set-of-emails';
/** Label values that are not failures: success DSNs, auto-replies and complaints. */
const NON_FAILURE = new Set(['delivered', 'vacation', 'feedback']);

export interface LabelRow { file: string; index: number; status: string; replyCode: string; reason: string; hard: boolean | null; feedbackType: string; engine: string }

export interface FileResult { dir: string; file: string; engine: string; rows: LabelRow[]; verdict: BounceVerdict; ms: number }

export interface Miss { dir: string; file: string; engine: string; index: number; expected: string; got: string }

export interface EvalReport {
  files: number;
  detection: { hit: number; total: number };
  hardSoft: { hit: number; total: number };
  reason: { hit: number; total: number };
  delivered: { hit: number; total: number };
  vacation: { hit: number; total: number; countedAsBounce: number };
  feedback: { hit: number; total: number; typeHit: number };
  notBounce: { hit: number; total: number; files: { file: string; kind: string }[] };
  detectionMisses: Miss[];
  reasonMisses: Miss[];
  hardMisses: Miss[];
  slowest: { file: string; ms: number };
}

export function readLabels(corpus: string): Map<string, LabelRow[]> {
  const tsv = readFileSync(path.join(corpus, 'expected.tsv'), 'utf8');
  const byFile = new Map<string, LabelRow[]>();
  for (const line of tsv.split('\n').slice(1)) {
    if (!line.trim()) continue;
    const c = line.split('\t');
    const hard = /^(?:1|true)$/i.test(c[5]) ? true : /^(?:0|false)$/i.test(c[5]) ? false : null;
    const row: LabelRow = { file: c[0], index: Number(c[1]), status: c[2], replyCode: c[3], reason: c[4], hard, feedbackType: c[6] ?? '', engine: c[7] ?? '' };
    byFile.set(row.file, [...(byFile.get(row.file) ?? []), row]);
  }
  return byFile;
}

/** The corpus directory: $MAILROOM_CORPORA or ../shared/corpora beside the repository. */
export function corporaRoot(repoRoot: string): string {
  return process.env.MAILROOM_CORPORA ? path.resolve(process.env.MAILROOM_CORPORA) : path.resolve(repoRoot, '..', 'shared', 'corpora');
}

export function corpusPresent(corpora: string): boolean {
  return existsSync(path.join(corpora, SISIMAI_SET, 'expected.tsv'));
}

/** Runs every labelled sample (bsd/, crlf/, cr/) and the not-bounce samples through the classifier. */
export async function runCorpus(corpora: string, onProgress?: (done: number, total: number) => void): Promise<{ results: FileResult[]; notBounce: FileResult[] }> {
  const corpus = path.join(corpora, SISIMAI_SET);
  const labels = readLabels(corpus);
  const jobs: { dir: string; file: string }[] = [];
  for (const dir of ['bsd', 'crlf', 'cr']) {
    if (!existsSync(path.join(corpus, dir))) continue;
    for (const file of readdirSync(path.join(corpus, dir)).sort()) if (labels.has(file)) jobs.push({ dir, file });
  }
  const nb = existsSync(path.join(corpus, 'not-bounce')) ? readdirSync(path.join(corpus, 'not-bounce')).sort().map((file) => ({ dir: 'not-bounce', file })) : [];
  const total = jobs.length + nb.length;
  const run = async (j: { dir: string; file: string }): Promise<FileResult> => {
    const raw = readFileSync(path.join(corpus, j.dir, j.file));
    const t0 = performance.now();
    const verdict = await classifyBounce(raw);
    const rows = labels.get(j.file) ?? [];
    return { ...j, engine: rows[0]?.engine ?? '', rows, verdict, ms: performance.now() - t0 };
  };
  const results: FileResult[] = [];
  const notBounce: FileResult[] = [];
  let done = 0;
  for (const j of jobs) {
    results.push(await run(j));
    onProgress?.(++done, total);
  }
  for (const j of nb) {
    notBounce.push(await run(j));
    onProgress?.(++done, total);
  }
  return { results, notBounce };
}

const isFailureRow = (r: LabelRow): boolean => !NON_FAILURE.has(r.reason);

export function score(results: FileResult[], notBounce: FileResult[]): EvalReport {
  const rep: EvalReport = {
    files: results.length + notBounce.length,
    detection: { hit: 0, total: 0 }, hardSoft: { hit: 0, total: 0 }, reason: { hit: 0, total: 0 },
    delivered: { hit: 0, total: 0 }, vacation: { hit: 0, total: 0, countedAsBounce: 0 }, feedback: { hit: 0, total: 0, typeHit: 0 },
    notBounce: { hit: 0, total: notBounce.length, files: [] },
    detectionMisses: [], reasonMisses: [], hardMisses: [], slowest: { file: '', ms: 0 },
  };
  for (const r of [...results, ...notBounce]) if (r.ms > rep.slowest.ms) rep.slowest = { file: `${r.dir}/${r.file}`, ms: r.ms };
  for (const res of results) {
    const { verdict: v, rows } = res;
    const kind = v.kind;
    const failureRows = rows.filter(isFailureRow);
    if (failureRows.length) {
      rep.detection.total++;
      const detected = kind === 'bounce' || kind === 'delayed';
      if (detected) rep.detection.hit++;
      else rep.detectionMisses.push({ dir: res.dir, file: res.file, engine: res.engine, index: 0, expected: 'bounce', got: kind });
      failureRows.forEach((row, i) => {
        const got = detected ? v.recipients[i] : undefined;
        rep.reason.total++;
        if (got && got.reason === row.reason) rep.reason.hit++;
        else rep.reasonMisses.push({ dir: res.dir, file: res.file, engine: res.engine, index: row.index, expected: row.reason, got: got ? got.reason : `(${kind}, no recipient ${i + 1})` });
        if (row.hard !== null) {
          rep.hardSoft.total++;
          if (got && got.hard === row.hard) rep.hardSoft.hit++;
          else rep.hardMisses.push({ dir: res.dir, file: res.file, engine: res.engine, index: row.index, expected: row.hard ? 'hard' : 'soft', got: got ? (got.hard ? 'hard' : 'soft') : `(${kind})` });
        }
      });
    }
    if (rows.some((r) => r.reason === 'delivered')) {
      rep.delivered.total++;
      if (kind === 'delivered') rep.delivered.hit++;
    }
    if (rows.some((r) => r.reason === 'vacation')) {
      rep.vacation.total++;
      if (kind === 'auto_reply') rep.vacation.hit++;
      if (kind === 'bounce' || kind === 'delayed') rep.vacation.countedAsBounce++;
    }
    const fb = rows.filter((r) => r.reason === 'feedback');
    if (fb.length) {
      rep.feedback.total++;
      if (kind === 'complaint') rep.feedback.hit++;
      if (kind === 'complaint' && v.feedback_type === fb[0].feedbackType) rep.feedback.typeHit++;
    }
  }
  for (const res of notBounce) {
    if (res.verdict.kind === 'not_bounce') rep.notBounce.hit++;
    rep.notBounce.files.push({ file: res.file, kind: res.verdict.kind });
  }
  return rep;
}

export const ratio = (x: { hit: number; total: number }): number => (x.total ? x.hit / x.total : 1);

export const TARGETS = { detection: 0.95, reason: 0.9 };

/** Human-readable list of the targets not met; empty when all are. */
export function missedTargets(rep: EvalReport): string[] {
  const out: string[] = [];
  if (ratio(rep.detection) < TARGETS.detection) out.push(`detection ${(100 * ratio(rep.detection)).toFixed(1)}% < ${TARGETS.detection * 100}%`);
  if (ratio(rep.reason) < TARGETS.reason) out.push(`reason ${(100 * ratio(rep.reason)).toFixed(1)}% < ${TARGETS.reason * 100}%`);
  if (rep.notBounce.hit < rep.notBounce.total) out.push(`${rep.notBounce.total - rep.notBounce.hit} not-bounce sample(s) misclassified`);
  if (rep.vacation.countedAsBounce) out.push(`${rep.vacation.countedAsBounce} vacation sample(s) counted as bounces`);
  return out;
}
