/**
 * `npm run bench:console`: is the operator console as quick on an inbox of 100,000 messages as on one
 * of 100? One run, one Mailroom (`serve` as its own process), two inboxes filled over real SMTP: a
 * small one (the baseline) and a big one. For each, in a real headless Chromium (Debian's, through
 * playwright-core) and through the API the console reads:
 *   - open: from navigating to the inbox view until its first thread row is on screen;
 *   - scroll: scrolling the virtualised thread list down through 2,000 threads (20 pages of 100),
 *     and the most rows that existed in the DOM at any time (a virtualised list keeps it flat);
 *   - API: p50 of GET threads (first page), GET threads at depth (the page after 2,000), GET messages,
 *     and GET inbox?include=counts (the counts the console shows).
 * Printed with the big ÷ small ratio of each (1.0 = size does not matter), and the size of the
 * console's files (what a first load transfers, uncompressed).
 *
 *   node bench/console.ts [--n 100000] [--small 100] [--engine embedded|postgres]
 */
import { performance } from 'node:perf_hooks';
import nodemailer from 'nodemailer';
import { chromium } from 'playwright-core';
import { consoleAssetBytes } from '../src/console/routes.ts';
import {
  ADMIN_TOKEN, cleanEnv, DEFAULT_DATABASE_URL, DOMAIN, engineOption, fixed, int0, intOption, loadAverage, machineSummary,
  parseCommandLine, runCleanups, say, startMailroomProcess,
} from './common.ts';

const USAGE = `node bench/console.ts [--n N] [--small N] [--engine embedded|postgres] [--database-url URL]`;
const values = parseCommandLine(USAGE, {
  n: { type: 'string' }, small: { type: 'string' }, engine: { type: 'string' }, 'database-url': { type: 'string' },
});
const N = intOption('n', values.n ?? process.env.BENCH_N, 100_000, 1000);
const SMALL = intOption('small', values.small ?? process.env.BENCH_SMALL, 100, 10);
const ENGINE = engineOption(values.engine ?? process.env.BENCH_ENGINE ?? 'embedded');
const DATABASE_URL = values['database-url'] ?? process.env.BENCH_DATABASE_URL ?? DEFAULT_DATABASE_URL;
const CHROMIUM = process.env.MAILROOM_TEST_CHROMIUM ?? '/usr/bin/chromium';
const SCROLL_THREADS = 2000;

async function api(base: string, path: string, init: RequestInit = {}): Promise<any> {
  const res = await fetch(`${base}${path}`, { ...init, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', ...init.headers } });
  if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** N distinct messages over 10 pooled SMTP connections, with progress; resolves once all got 250. */
async function fill(smtpPort: number, address: string, n: number, label: string): Promise<number> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: smtpPort, pool: true, maxConnections: 10, maxMessages: Infinity, ignoreTLS: true });
  const t0 = performance.now();
  let next = 0;
  let done = 0;
  let lastReport = t0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      await transport.sendMail({ from: `lead${i % 997}@prospects.example`, to: address, subject: `${label} message ${i}`, text: `Message ${i} of ${n}. ${'Quarterly numbers attached. '.repeat(20)}` });
      done++;
      const now = performance.now();
      if (now - lastReport > 10_000) { lastReport = now; say(`  ${label}: ${int0(done)} / ${int0(n)} accepted (${int0(done / ((now - t0) / 1000))}/s)`); }
    }
  };
  await Promise.all(Array.from({ length: 20 }, worker));
  transport.close();
  return (performance.now() - t0) / 1000;
}

async function waitParsed(base: string, inboxId: string, n: number): Promise<void> {
  let last = -1;
  for (;;) {
    const inbox = await api(base, `/v1/inboxes/${inboxId}?include=counts`);
    if (inbox.counts.messages >= n) return;
    if (inbox.counts.messages !== last) { last = inbox.counts.messages; say(`  parsed: ${int0(last)} / ${int0(n)}`); }
    await new Promise((r) => setTimeout(r, 5000));
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function timeApi(base: string, path: string, rounds = 15): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    await api(base, path);
    ms.push(performance.now() - t);
  }
  return median(ms);
}

interface Figures { open: number; scroll: number; maxRows: number; threads: number; deep: number; messages: number; counts: number }

async function measure(base: string, inboxId: string, browser: import('playwright-core').Browser): Promise<Figures> {
  // API, as the console calls it.
  const threads = await timeApi(base, `/v1/inboxes/${inboxId}/threads?limit=100`);
  let cursor: string | null = null;
  for (let i = 0; i < SCROLL_THREADS / 100; i++) {
    const page: any = await api(base, `/v1/inboxes/${inboxId}/threads?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  const deep = cursor ? await timeApi(base, `/v1/inboxes/${inboxId}/threads?limit=100&cursor=${cursor}`) : NaN;
  const messages = await timeApi(base, `/v1/inboxes/${inboxId}/messages?limit=50`);
  const counts = await timeApi(base, `/v1/inboxes/${inboxId}?include=counts`);

  // The browser: a signed-in page, then the inbox view, opened three times (the median is kept).
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${base}/`);
  await page.getByLabel('Token').fill(ADMIN_TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  const opens: number[] = [];
  for (let i = 0; i < 3; i++) {
    await page.goto(`${base}/#/inboxes`);
    await page.getByRole('heading', { level: 1, name: 'Inboxes' }).waitFor();
    // Wait for the list (and its counts) to load first: on PGlite's single connection the inbox
    // view's first query would otherwise queue behind the list's count of the big inbox.
    await page.getByRole('table').first().waitFor();
    const t = performance.now();
    await page.goto(`${base}/#/inboxes/${inboxId}`);
    await page.locator('.vl-rows li a').first().waitFor();
    opens.push(performance.now() - t);
  }
  // Scroll down until SCROLL_THREADS rows are loaded (or the list ends), sampling the DOM's rows.
  const t = performance.now();
  const scrolled = await page.evaluate(async (target) => {
    const vl = document.querySelector('.vl') as HTMLElement;
    let maxRows = 0;
    const loaded = () => Number(/^(\d+)/.exec(document.querySelector('.vl-status')!.textContent ?? '')?.[1] ?? 0);
    for (let i = 0; i < 10_000 && loaded() < target; i++) {
      vl.scrollTop = vl.scrollHeight;
      await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 10)));
      maxRows = Math.max(maxRows, document.querySelectorAll('.vl-rows li').length);
      if (/shown$/.test(document.querySelector('.vl-status')!.textContent ?? '') && !/\+/.test(document.querySelector('.vl-status')!.textContent ?? '')) break;
    }
    return { maxRows, loaded: loaded() };
  }, Math.min(SCROLL_THREADS, N));
  const scroll = performance.now() - t;
  await context.close();
  return { open: median(opens), scroll, maxRows: scrolled.maxRows, threads, deep, messages, counts };
}

async function main(): Promise<void> {
  say(`bench:console — ${machineSummary()}; load average ${loadAverage()}`);
  say(`engine ${ENGINE}; inboxes of ${int0(SMALL)} (baseline) and ${int0(N)} messages (one thread each)`);
  const assets = consoleAssetBytes();
  say(`console files: ${assets.files}, ${int0(assets.bytes)} bytes in all (uncompressed; the sign-in page loads 5 of them, about 44 KB; views load on first use)`);
  const mr = await startMailroomProcess({
    engine: ENGINE, databaseUrl: DATABASE_URL, profileDir: null, dataDirPrefix: 'mailroom-bench-console-', baseEnv: cleanEnv(),
    env: { MAILROOM_MAX_CONNECTIONS_PER_IP: '50' },
    banner: /HTTP API\s+(http:\/\/\S+?:\d+)\b[\s\S]*?\n\s*SMTP\s+\S+?:(\d+)\s/,
  });
  const base = mr.banner[1];
  const smtpPort = Number(mr.banner[2]);
  const browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  try {
    const small = await api(base, '/v1/inboxes', { method: 'POST', body: JSON.stringify({ username: 'small' }) });
    const big = await api(base, '/v1/inboxes', { method: 'POST', body: JSON.stringify({ username: 'big' }) });
    say(`filling ${small.address} with ${int0(SMALL)} and ${big.address} with ${int0(N)} messages over SMTP…`);
    await fill(smtpPort, small.address, SMALL, 'small');
    const fillS = await fill(smtpPort, big.address, N, 'big');
    say(`  ${int0(N)} accepted in ${fixed(fillS)} s; waiting until all are parsed…`);
    await waitParsed(base, small.id, SMALL);
    await waitParsed(base, big.id, N);
    say('measuring…');
    const a = await measure(base, small.id, browser);
    const b = await measure(base, big.id, browser);
    const row = (label: string, x: number, y: number, unit = 'ms') => say(`${label.padEnd(44)} ${`${fixed(x, 1)} ${unit}`.padStart(12)} ${`${fixed(y, 1)} ${unit}`.padStart(12)} ${fixed(y / x, 2).padStart(8)}`);
    say('');
    say(`${''.padEnd(44)} ${`${int0(SMALL)} msgs`.padStart(12)} ${`${int0(N)} msgs`.padStart(12)} ${'ratio'.padStart(8)}`);
    row('open inbox view → first row on screen', a.open, b.open);
    row(`scroll through ${int0(Math.min(SCROLL_THREADS, N))} threads (loads as it goes)`, a.scroll, b.scroll);
    say(`${'most thread rows in the DOM at once'.padEnd(44)} ${String(a.maxRows).padStart(12)} ${String(b.maxRows).padStart(12)}`);
    row('API: threads, first page of 100 (p50)', a.threads, b.threads);
    row(`API: threads, page after ${int0(SCROLL_THREADS)} (p50)`, a.deep, b.deep);
    row('API: messages, first page of 50 (p50)', a.messages, b.messages);
    row('API: inbox with counts (p50)', a.counts, b.counts);
    say('');
    say('The small inbox holds fewer threads than the scroll goes through, so its scroll figure is for all of them; compare the');
    say('open and API rows. A ratio near 1.0 means the inbox\'s size does not matter; the DOM row count stays flat (virtualised).');
    say(`load average at the end ${loadAverage()}`);
  } finally {
    await browser.close();
    await mr.stop();
    await runCleanups();
  }
}

main().catch(async (err) => {
  process.stderr.write(`${err?.stack ?? err}\n`);
  await runCleanups();
  process.exit(1);
});
