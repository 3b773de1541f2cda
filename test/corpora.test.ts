import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { parseMessage } from '../src/mime/parse.ts';
import { ENGINES, skipEngine, startTestMailroom, waitFor, type TestMailroom } from './helpers/mailroom.ts';
import { SmtpClient, splitTrace, traceBefore, within } from './helpers/smtp.ts';

/**
 * Corpora acceptance: every sample message of the third-party corpora in ../shared/corpora (see its
 * README) goes in over SMTP and comes back out of the API, raw byte-identical and parsed.
 * ../shared sits beside the checkout (CI clones it there); without it the file fails in CI and is
 * skipped elsewhere.
 */
const CORPORA = fileURLToPath(new URL('../../shared/corpora/', import.meta.url));
const SETS = ['nodemailer-mailparser', 'mailgun-flanker', 'cpython-test-email', 'sisimai-set-of-emails'];
const present = SETS.every((s) => existsSync(path.join(CORPORA, s)));
const missing = `corpora not found at ${CORPORA} (expected ${SETS.join(', ')}; CI clones ../shared beside the repo)`;
// In CI a missing corpus is not skipped: loadCorpus() then fails every test with `missing`.
const skipCorpora: boolean | string = present || process.env.CI === 'true' ? false : missing;

/**
 * Message files only. Skipped, after looking at the tree: label/data tables (expected*.tsv, *.json,
 * *.jsonl), READMEs, and flanker's address-lists/ (one address or URL per line, not messages).
 * Everything else in these four sets is a message: *.eml, cpython's data/msg_*.txt, and sisimai's
 * bsd/ (LF), crlf/ (CRLF) and cr/ (CR-only line ends) copies, sent exactly as they are on disk.
 */
function messageFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      if (statSync(p).isDirectory()) {
        if (name !== 'address-lists') walk(p);
      } else if (!/\.(tsv|json|jsonl|md)$/i.test(name) && !/^readme/i.test(name)) {
        out.push(p);
      }
    }
  };
  for (const s of SETS) walk(path.join(CORPORA, s));
  return out;
}

interface CorpusFile { name: string; data: Buffer }

function loadCorpus(): CorpusFile[] {
  if (!present) throw new Error(missing);
  const files = messageFiles().map((p) => ({ name: path.relative(CORPORA, p), data: readFileSync(p) }));
  // 12 + 48 + 48 + 551 message files today; a much smaller count means the walk skipped something.
  assert.ok(files.length >= 650, `expected about 659 corpus messages, found ${files.length}`);
  return files;
}


/** Runs `fn` over `items` with at most `n` in flight. */
async function pool<T>(items: T[], n: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  }));
}

const PER_FILE_MS = 60_000;

describe('corpora: parseMessage on every corpus message', { skip: skipCorpora }, () => {
  test('every file parses without throwing or timing out, with no NUL left in the parsed fields', async () => {
    const files = loadCorpus();
    for (const f of files) {
      const p = await within(parseMessage(f.data), PER_FILE_MS, `parseMessage(${f.name})`);
      assert.ok(!p.warnings.includes('parse_timeout'), `${f.name}: parse timed out`);
      const json = JSON.stringify({ ...p, attachments: p.attachments.map((a) => ({ ...a, content: a.content.length })) });
      assert.ok(!json.includes('\\u0000'), `${f.name}: a NUL survived into the parsed fields`);
    }
  });
});

for (const engine of ENGINES) {
  describe(`${engine}: corpora over SMTP → stored raw + parsed message`, { skip: skipCorpora || (await skipEngine(engine)) }, () => {
    let m: TestMailroom;
    before(async () => { m = await startTestMailroom(engine); });
    after(async () => { await m?.destroy(); });

    test('every corpus message gets 250, then its raw is byte-identical and its parsed message readable', async () => {
      const files = loadCorpus();
      const inbox = (await m.api('POST', '/v1/inboxes', { username: 'corpus' })).body;
      assert.ok(inbox.id, 'inbox created');

      // About 50 sisimai files have bare-LF lines starting "..", which smtp-server unstuffs after a
      // bare LF too; SmtpClient.send stuffs after every LF for that (see dotStuff).
      //
      // Matching stored messages to files: by receipt id. The `250` names the receipt
      // ("queued as rcv_…"), and Mailroom writes the same id into the Received header it prepends
      // ("… with ESMTP id rcv_…"), so the match rests only on what the server itself says — not on
      // anything in the files, which share Message-IDs, lack them, or are the same message with
      // other line ends (sisimai bsd/, crlf/, cr/). Each file also goes to its own sub-address
      // corpus+<n>, kept in the trace's `for <…>` clause, as a cross-check.
      const byReceipt = new Map<string, number>();
      const CONNECTIONS = 8;
      const queue = files.map((_, i) => i).sort((a, b) => files[b].data.length - files[a].data.length);
      let next = 0;
      await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
        const c = await SmtpClient.connect(m.smtpPort);
        try {
          assert.equal((await c.cmd('EHLO corpus.example')).code, 250);
          while (next < queue.length) {
            const i = queue[next++];
            const f = files[i];
            const r = await within(c.send('corpus@example.org', [`corpus+${i}@mailroom.test`], f.data), PER_FILE_MS, `SMTP transaction for ${f.name}`);
            assert.equal(r.data?.code, 250, `${f.name}: ${r.data?.text ?? r.rcpts.map((x) => x.text).join('; ')}`);
            const id = /queued as (rcv_[0-9a-z]+)/.exec(r.data!.text)?.[1];
            assert.ok(id, `${f.name}: no receipt id in "${r.data!.text}"`);
            byReceipt.set(id, i);
          }
        } finally {
          await c.quit();
        }
      }));
      assert.equal(byReceipt.size, files.length);

      // Ingest runs after the 250, from the queue: wait until every message is listed.
      const list = async () => {
        const all: any[] = [];
        let cursor: string | null = null;
        do {
          const page: any = (await m.api('GET', `/v1/inboxes/${inbox.id}/messages?limit=200${cursor ? `&cursor=${cursor}` : ''}`)).body;
          all.push(...page.data);
          cursor = page.next_cursor;
        } while (cursor);
        return all;
      };
      let listed: any[] = [];
      try {
        await waitFor(async () => (listed = await list()).length >= files.length, 180_000, `${files.length} corpus messages to be ingested`);
      } catch (err) {
        // Name the files that never showed up (a parse or ingest that hangs or fails for good).
        const seen = new Set<string>();
        await pool(listed, 16, async (s) => {
          const raw = (await m.api('GET', `/v1/messages/${s.id}/raw`)).bytes;
          const id = /\bid (rcv_[0-9a-z]+)/.exec(splitTrace(raw).trace)?.[1];
          if (id) seen.add(id);
        });
        const lost = [...byReceipt].filter(([id]) => !seen.has(id)).map(([, i]) => files[i].name);
        throw new Error(`${(err as Error).message}; not ingested: ${lost.slice(0, 20).join(', ')}${lost.length > 20 ? ` … (${lost.length})` : ''}`);
      }
      assert.equal(listed.length, files.length, 'one message per file, no duplicates');

      const matched = new Set<number>();
      await pool(listed, 16, async (summary) => {
        const raw = await m.api('GET', `/v1/messages/${summary.id}/raw`);
        assert.equal(raw.status, 200);
        const { trace } = splitTrace(raw.bytes);
        const id = /\bid (rcv_[0-9a-z]+)/.exec(trace)?.[1];
        assert.ok(id && byReceipt.has(id), `message ${summary.id}: trace names no receipt we sent: ${trace}`);
        const i = byReceipt.get(id)!;
        const f = files[i];
        assert.ok(!matched.has(i), `${f.name} stored twice`);
        matched.add(i);
        assert.match(trace, new RegExp(`for <corpus\\+${i}@mailroom\\.test>`), `${f.name}: trace names another recipient`);
        // traceBefore, not splitTrace: flanker enclosed-endless.eml starts with a line of 255 spaces,
        // which reads as a continuation of the trace header.
        assert.ok(traceBefore(raw.bytes, f.data), `${f.name}: stored raw is not the trace header + the bytes sent`);
        assert.equal(summary.size, raw.bytes.length, `${f.name}: size`);

        const msg = await m.api('GET', `/v1/messages/${summary.id}`);
        assert.equal(msg.status, 200, `${f.name}: GET /v1/messages/{id}`);
        assert.match(msg.headers.get('content-type') ?? '', /application\/json/);
        assert.equal(msg.body.id, summary.id);
        assert.ok(Array.isArray(msg.body.parse_warnings) && Array.isArray(msg.body.headers), `${f.name}: parsed fields`);
        assert.ok(!msg.body.parse_warnings.includes('parse_timeout'), `${f.name}: parse timed out`);
      });
      assert.equal(matched.size, files.length);
    });
  });
}
