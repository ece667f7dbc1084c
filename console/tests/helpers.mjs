// Shared set-up of the console's browser tests: the server under test
// (SRS_URL, SRS_ADMIN_TOKEN), headless Chromium through playwright-core,
// GraphQL answers fetched by the test itself, screenshots and axe-core.
import { chromium } from 'playwright-core';
import { readFileSync, mkdirSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import assert from 'node:assert/strict';

export const SRS_URL = need('SRS_URL').replace(/\/$/, '');
export const ADMIN = need('SRS_ADMIN_TOKEN');
export const SHOTS = process.env.SRS_SCREENSHOTS || join(process.cwd(), 'screenshots');
mkdirSync(SHOTS, { recursive: true });

const CHROMIUM = process.env.SRS_CHROMIUM || '/usr/bin/chromium';
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: the console tests need a running srs (see tests/tests/e2e/console.rs)`);
  return value;
}

export async function launch() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

export async function newPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  // Script errors and content-policy refusals fail the page's check.
  page.problems = [];
  page.on('pageerror', (error) => page.problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) page.problems.push(message.text());
  });
  return page;
}

/** A GraphQL request as the test itself makes it; throws on errors. */
export async function gql(query, variables = {}, token = ADMIN) {
  const response = await fetch(`${SRS_URL}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors?.length) throw new Error(`${query}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

export async function signIn(page, token = ADMIN) {
  await page.goto(`${SRS_URL}/signin`);
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
}

/** Takes the page's 1280x800 screenshot and checks it with axe-core. */
export async function shootAndCheck(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
  // Evaluated over the DevTools protocol: the console's content policy
  // allows no inline script, rightly.
  await page.evaluate(`${AXE}\n;0`);
  const violations = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const result = await axe.run(document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  assert.deepEqual(violations, [], `${name}: accessibility violations ${JSON.stringify(violations, null, 1)}`);
  assert.deepEqual(page.problems, [], `${name}: script errors`);
}

/** `m:ss` or `h:mm:ss`, as the console writes times. */
export function fmtDuration(sec) {
  const s = Math.max(0, Math.floor(sec));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const mm = String(m).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${m}:${ss}`;
}

/** Retries `check` until it passes (the read models follow the log a moment later). */
export async function eventually(check, tries = 60) {
  for (let i = 1; ; i++) {
    try {
      return await check();
    } catch (error) {
      if (i >= tries) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}
