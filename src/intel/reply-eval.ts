/**
 * Reply-extraction evaluation on the third-party corpora in ../shared/corpora (see its README):
 * - discourse-email-reply-trimmer: emails/X.txt → trimmed/X.txt (plain-text trimming);
 * - mailgun-talon: fixtures/standard_replies/*.eml → expected_standard_replies.tsv (parsed with
 *   mailparser, then extractReply on the text/html parts).
 * Exact match after normalising CRLF to LF and trimming surrounding whitespace.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { extractReply } from './reply/index.ts';

export interface CorpusResult {
  corpus: string;
  total: number;
  exact: number;
  rate: number;
  failures: string[];
}

export interface ReplyEvalResult {
  corpora: CorpusResult[];
}

const norm = (s: string): string => s.replace(/\r\n?/g, '\n').trim();

function result(corpus: string, total: number, failures: string[]): CorpusResult {
  const exact = total - failures.length;
  return { corpus, total, exact, rate: total === 0 ? 0 : exact / total, failures };
}

export function evalDiscourse(corporaRoot: string): CorpusResult | null {
  const dir = path.join(corporaRoot, 'discourse-email-reply-trimmer');
  if (!existsSync(path.join(dir, 'emails')) || !existsSync(path.join(dir, 'trimmed'))) return null;
  const failures: string[] = [];
  let total = 0;
  for (const name of readdirSync(path.join(dir, 'emails')).sort()) {
    const expectedPath = path.join(dir, 'trimmed', name);
    if (!existsSync(expectedPath)) continue;
    total++;
    const input = readFileSync(path.join(dir, 'emails', name), 'utf8');
    const got = extractReply(input, null).text;
    if (norm(got) !== norm(readFileSync(expectedPath, 'utf8'))) failures.push(name);
  }
  return result('discourse-email-reply-trimmer', total, failures);
}

export async function evalTalon(corporaRoot: string): Promise<CorpusResult | null> {
  const dir = path.join(corporaRoot, 'mailgun-talon');
  const tsv = path.join(dir, 'expected_standard_replies.tsv');
  if (!existsSync(tsv)) return null;
  const failures: string[] = [];
  let total = 0;
  for (const row of readFileSync(tsv, 'utf8').split('\n').slice(1)) {
    if (!row.trim()) continue;
    const tab = row.indexOf('\t');
    const file = row.slice(0, tab);
    const expected = JSON.parse(row.slice(tab + 1)) as string;
    const emlPath = path.join(dir, 'fixtures', 'standard_replies', file);
    if (!existsSync(emlPath)) continue;
    total++;
    const parsed = await simpleParser(readFileSync(emlPath));
    const html = typeof parsed.html === 'string' ? parsed.html : null;
    const got = extractReply(parsed.text ?? null, html).text;
    if (norm(got) !== norm(expected)) failures.push(file);
  }
  return result('mailgun-talon/standard_replies', total, failures);
}

/**
 * mailgun-talon html_replies/*.html: every fixture's reply is "Hi. I am fine.\n\nThanks,\nAlex"; talon's
 * own test compares with all whitespace removed, and so does this one.
 */
export function evalTalonHtml(corporaRoot: string): CorpusResult | null {
  const dir = path.join(corporaRoot, 'mailgun-talon', 'fixtures', 'html_replies');
  if (!existsSync(dir)) return null;
  const squash = (s: string): string => s.replace(/\s+/gu, '');
  const expected = squash('Hi. I am fine.\n\nThanks,\nAlex');
  const failures: string[] = [];
  let total = 0;
  for (const name of readdirSync(dir).sort()) {
    if (!name.endsWith('.html')) continue;
    total++;
    const got = extractReply(null, readFileSync(path.join(dir, name), 'utf8')).text;
    if (squash(got) !== expected) failures.push(name);
  }
  return result('mailgun-talon/html_replies (whitespace-insensitive)', total, failures);
}

export async function runReplyEval(corporaRoot: string): Promise<ReplyEvalResult> {
  const corpora: CorpusResult[] = [];
  const d = evalDiscourse(corporaRoot);
  if (d) corpora.push(d);
  const t = await evalTalon(corporaRoot);
  if (t) corpora.push(t);
  const h = evalTalonHtml(corporaRoot);
  if (h) corpora.push(h);
  return { corpora };
}
