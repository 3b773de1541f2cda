import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/**
 * A real headless Chromium for the console's end-to-end tests: Debian's package (.ci/run installs
 * it), driven by playwright-core, which downloads no browser. The flags keep Chromium off the
 * network this machine does not have (background services, component updates, sync): without
 * them it keeps trying to reach Google's hosts.
 */
export const CHROMIUM = process.env.MAILROOM_TEST_CHROMIUM ?? '/usr/bin/chromium';

/** Skip reason when there is no browser; in CI a missing browser is a failure, not a skip. */
export function browserSkip(): string | false {
  if (existsSync(CHROMIUM)) return false;
  if (process.env.CI === 'true') throw new Error(`Chromium is required in CI but missing at ${CHROMIUM} (apt-get install chromium)`);
  return `no Chromium at ${CHROMIUM} (apt-get install chromium, or set MAILROOM_TEST_CHROMIUM)`;
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

/** Where a test's screenshots go: test-results/console/<test>/ (or MAILROOM_SCREENSHOTS_DIR/<test>). */
export async function screenshotDir(testName: string): Promise<string> {
  const dir = path.resolve(process.env.MAILROOM_SCREENSHOTS_DIR ?? 'test-results/console', testName.replace(/[^\w.-]+/g, '-'));
  await mkdir(dir, { recursive: true });
  return dir;
}

export interface ConsolePage { context: BrowserContext; page: Page; errors: string[] }

/**
 * A fresh browser context (its own storage) on the console, signed in with `token` through the
 * sign-in form, as a person would. Page errors and failed requests are collected in `errors`.
 */
export async function openConsole(browser: Browser, baseUrl: string, token: string, opts: { width?: number; height?: number } = {}): Promise<ConsolePage> {
  const context = await browser.newContext({ viewport: { width: opts.width ?? 1280, height: opts.height ?? 900 }, acceptDownloads: true });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  await page.goto(`${baseUrl}/`);
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  return { context, page, errors };
}
