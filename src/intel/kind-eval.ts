import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseMessage } from '../mime/parse.ts';
import { messageKind, type Kind } from './kind.ts';

/**
 * Message-kind accuracy on the sisimai sample set: every labelled bounce file should come out
 * `bounce`, the feedback (ARF) files `complaint`, the vacation files `auto_reply` or
 * `out_of_office`, and the two not-bounce files anything but `bounce`. Shared by `npm run eval`.
 */
export interface KindReport { groups: { name: string; total: number; right: number; misses: string[] }[] }

export async function runKindEval(corpora: string): Promise<KindReport | null> {
  const root = path.join(corpora, 'sisimai-set-of-emails');
  const tsv = path.join(root, 'expected.tsv');
  if (!existsSync(tsv)) return null;
  const reasonOf = new Map<string, string>();
  for (const line of readFileSync(tsv, 'utf8').split('\n').slice(1)) {
    const [file, , , , reason] = line.split('\t');
    if (file && !reasonOf.has(file)) reasonOf.set(file, reason);
  }
  const groups = new Map<string, { name: string; total: number; right: number; misses: string[] }>();
  const record = (name: string, file: string, ok: boolean, got: Kind) => {
    const g = groups.get(name) ?? { name, total: 0, right: 0, misses: [] };
    g.total++;
    if (ok) g.right++;
    else if (g.misses.length < 10) g.misses.push(`${file}→${got}`);
    groups.set(name, g);
  };
  const kindOf = async (file: string) => {
    const raw = readFileSync(file);
    // The envelope sender of a report is the null path; of anything else, unknown here.
    return (await messageKind(await parseMessage(raw), raw, '')).kind;
  };
  for (const [file, reason] of reasonOf) {
    const p = path.join(root, 'bsd', file);
    if (!existsSync(p)) continue;
    const got = await kindOf(p);
    if (reason === 'vacation') record('vacation → auto_reply | out_of_office', file, got === 'auto_reply' || got === 'out_of_office', got);
    else if (reason === 'feedback') record('feedback → complaint', file, got === 'complaint', got);
    else record('bounce (incl. delivered DSNs) → bounce', file, got === 'bounce', got);
  }
  const nb = path.join(root, 'not-bounce');
  if (existsSync(nb)) for (const f of readdirSync(nb)) {
    const got = await kindOf(path.join(nb, f));
    record('not-bounce → not bounce', f, got !== 'bounce', got);
  }
  return { groups: [...groups.values()] };
}
