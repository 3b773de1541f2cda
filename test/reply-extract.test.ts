import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { extractReply } from '../src/intel/reply/index.ts';
import { evalDiscourse } from '../src/intel/reply-eval.ts';
import { LINE_EXPRESSIONS, MAX_MARKER_LINE, isEmailHeader, isEmbeddedEmail, isSignature } from '../src/intel/reply/matchers.ts';

describe('extractReply: hand-written cases', () => {
  test('Gmail "On … wrote:" with quoted history', () => {
    const text = 'Sounds good, see you then.\n\nOn Tue, Mar 4, 2025 at 10:12 AM Jane Doe <jane@example.com> wrote:\n> Are we still on for Thursday?\n> \n> Jane\n';
    assert.deepEqual(extractReply(text, null), { text: 'Sounds good, see you then.', method: 'text' });
  });

  test('"On … wrote:" wrapped over two lines', () => {
    const text = 'Yes.\n\nOn Tue, Mar 4, 2025 at 10:12 AM Jane Doe <jane@example.com>\nwrote:\n\n> Are we still on?\n';
    assert.equal(extractReply(text, null).text, 'Yes.');
  });

  test('Outlook "From: … Sent: …" header block (CRLF)', () => {
    const text = 'Approved.\r\n\r\nThanks,\r\nBob\r\n\r\nFrom: Jane Doe <jane@example.com>\r\nSent: Tuesday, March 4, 2025 10:12 AM\r\nTo: Bob <bob@example.com>\r\nSubject: Budget\r\n\r\nCan you approve the budget?\r\n';
    assert.equal(extractReply(text, null).text, 'Approved.\n\nThanks,\nBob');
  });

  test('"-- " signature', () => {
    assert.equal(extractReply('Thanks for the quick fix!\n\n-- \nBob Smith\nACME Corp\n', null).text, 'Thanks for the quick fix!');
  });

  test('"Sent from my iPhone" and a quoted Apple Mail reply', () => {
    const text = 'Will do.\n\nSent from my iPhone\n\n> On Mar 4, 2025, at 10:12, Jane <jane@example.com> wrote:\n> Please call me.\n';
    assert.equal(extractReply(text, null).text, 'Will do.');
  });

  test('forwarded message block', () => {
    const text = 'FYI, see below.\n\n---------- Forwarded message ---------\nFrom: Carol <carol@example.com>\nDate: Mon, Mar 3, 2025 at 9:00 AM\nSubject: Invoice\nTo: Bob <bob@example.com>\n\nInvoice attached.\n';
    assert.equal(extractReply(text, null).text, 'FYI, see below.');
  });

  test('HTML-only reply with div.gmail_quote', () => {
    const html = '<div dir="ltr">Works for me.<br><br>Thanks</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Tue, Mar 4, 2025 at 10:12 AM Jane &lt;jane@example.com&gt; wrote:<br></div><blockquote class="gmail_quote" style="margin:0">Does Friday work?</blockquote></div>';
    assert.deepEqual(extractReply(null, html), { text: 'Works for me.\n\nThanks', method: 'html' });
  });

  test('HTML-only Outlook reply (div#appendonsend, #divRplyFwdMsg)', () => {
    const html = '<html><body><div>Approved, go ahead.</div><div id="appendonsend"></div><hr><div id="divRplyFwdMsg"><b>From:</b> Jane<br><b>Sent:</b> Tuesday, March 4, 2025<br><b>Subject:</b> Budget</div><div>Can you approve?</div></body></html>';
    assert.deepEqual(extractReply(null, html), { text: 'Approved, go ahead.', method: 'html' });
  });

  test('no body at all', () => {
    assert.deepEqual(extractReply(null, null), { text: '', method: 'none' });
    assert.deepEqual(extractReply('  \n ', ''), { text: '', method: 'none' });
  });

  // A termination bound, not a speed target (those are benchmarks): a backtracking cut on these
  // inputs takes minutes; 20 s separates the two even on a loaded CI machine.
  test('linear time: 1 MB of "> " lines', () => {
    const t0 = performance.now();
    const out = extractReply('My reply\n\n' + '> \n'.repeat(350_000), null);
    assert.equal(out.text, 'My reply');
    const t1 = performance.now();
    extractReply('x\nOn Mon, Jane wrote:\n'.repeat(50_000) + 'On '.repeat(100_000), null);
    const t2 = performance.now();
    assert.ok(t1 - t0 < 20_000, `"> " lines took ${Math.round(t1 - t0)} ms`);
    assert.ok(t2 - t1 < 20_000, `marker lines took ${Math.round(t2 - t1)} ms`);
  });
});

const CORPORA = path.resolve('../shared/corpora');
const DISCOURSE = path.join(CORPORA, 'discourse-email-reply-trimmer');
const skip: boolean | string = existsSync(DISCOURSE) ? false : `corpus not found at ${DISCOURSE}`;

test('line matchers: the fast path (joined, anchored, prefiltered) agrees with every expression as written', { skip }, () => {
  const lines = new Set<string>([
    'On Mon, Jan 1, 2024 at 10:00 AM John Doe <john@example.com> wrote:',
    'John Doe <john@example.com> wrote:',
    'Jane wrote on Tuesday:',
    '2024-01-01 10:00 GMT+01:00 Jane Doe',
    'Jane via Discourse wrote:',
    '-----Original Message-----',
    'Sent from my iPhone',
    '[Sent from my phone](https://example.com)',
    'From: Jane <jane@example.com>',
    'Sent: Monday, 1 January 2024 10:00',
    'Quarterly numbers are attached; the agent should file them under finance.',
  ]);
  for (const f of readdirSync(DISCOURSE, { recursive: true, withFileTypes: true })) {
    if (f.isFile()) for (const l of readFileSync(path.join(f.parentPath, f.name), 'utf8').split('\n')) lines.add(l);
  }
  // The expressions are written for line anchors: a carriage return, U+2028 or U+2029 inside a line
  // starts another line for them, which the fast path must honour too.
  for (const l of [...lines]) {
    if (l.length < 8) continue;
    const mid = l.length >> 1;
    for (const t of ['\r', '\u2028', '\u2029']) lines.add(`junk text${t}${l}`), lines.add(`${l.slice(0, mid)}${t}${l.slice(mid)}`);
  }
  const matchers = { signature: isSignature, embedded: isEmbeddedEmail, header: isEmailHeader };
  let positives = 0;
  for (const line of lines) {
    for (const [name, fast] of Object.entries(matchers)) {
      const stripped = name === 'signature' ? line.replace(/\[([^\]]+)\]\([^)]+\)/g, '$1') : line;
      const slow = line.length <= MAX_MARKER_LINE && LINE_EXPRESSIONS[name as keyof typeof matchers].some((re) => re.test(stripped));
      assert.equal(fast(line), slow, `${name}: ${JSON.stringify(line)}`);
      if (slow) positives++;
    }
  }
  assert.ok(positives > 100, `only ${positives} matching lines: the comparison would prove little`);
});

test('discourse email_reply_trimmer corpus: exact match ≥ 85 %', { skip }, () => {
  const t0 = performance.now();
  const r = evalDiscourse(CORPORA);
  assert.ok(r, 'corpus present but not readable');
  assert.ok(r.total >= 60, `only ${r.total} pairs found`);
  assert.ok(r.rate >= 0.85, `exact match ${r.exact}/${r.total}; failing: ${r.failures.join(', ')}`);
  assert.ok(performance.now() - t0 < 5000, 'corpus evaluation too slow');
});
