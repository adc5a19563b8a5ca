/**
 * Chromium for browser tests: Debian's `chromium` driven by playwright-core (no browser
 * download), headless, with the local-network-access permission granted so an HTTPS page
 * may call `wsh device web-helper` on 127.0.0.1 (what an enterprise policy pre-grants for
 * users). Screenshots go under `.tmp/screenshots/` (gitignored) for review.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { requireTool, type ToolCheck } from './tools';

const root = resolve(import.meta.dirname, '../../..');
export const CHROMIUM_PATH = '/usr/bin/chromium';
export const SCREENSHOT_DIR = join(root, '.tmp', 'screenshots');

/** Whether Chromium is installed (skips loudly, or fails under WARDEN_TEST_STRICT=1). */
export function requireChromium(): ToolCheck {
  return requireTool('chromium');
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/** A fresh browser profile that accepts the proxy's certificate (issued by the cluster's host CA). */
export async function newBrowserContext(browser: Browser): Promise<BrowserContext> {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
  await ctx.grantPermissions(['local-network-access']);
  return ctx;
}

/** Saves a full-page screenshot as `.tmp/screenshots/<name>.png`. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
