// The web UI in a real headless Chromium (playwright-core driving Debian's chromium), run by
// crates/shoal-cli/tests/ui.rs, which starts the daemons and checks the file on disk afterwards.
// Input (environment): SHOAL_PLAYWRIGHT (an npm prefix holding playwright-core), CHROMIUM, B_URL and
// A_URL (one-time login links of the two daemons), A_PEER and B_PEER (their peer ids), STALE_URL (a spent link of B), QUERY (words of the
// file A shares), SHOTS (where screenshots go). Output: one JSON line of figures on stdout. Exits non-zero
// on the first failed step, saying which.
import { createRequire } from 'node:module';
import { gzipSync } from 'node:zlib';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const require = createRequire(env('SHOAL_PLAYWRIGHT') + '/');
const { chromium } = require('playwright-core');
const shots = env('SHOTS');
const figures = {};

const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
/** Pages open, for a screenshot of each when a step fails. */
const open = [];
const step = async (name, f) => {
  try { return await f(); } catch (e) {
    for (const [i, p] of open.entries()) await p.screenshot({ path: `${shots}/failed-${i}.png` }).catch(() => {});
    throw new Error(`step "${name}" failed: ${e.message} (screenshots: failed-N.png)`);
  }
};
try {
  // A spent code: the login page, with the daemon's words.
  const staleCtx = await browser.newContext();
  const stale = await staleCtx.newPage();
  await step('a stale code is refused', async () => {
    await stale.goto(env('STALE_URL'));
    await stale.getByText('unknown, used or expired').waitFor({ timeout: 10000 });
    await stale.getByRole('heading', { name: 'Log in' }).waitFor();
    await stale.screenshot({ path: `${shots}/login-refused.png` });
  });
  await staleCtx.close();

  // B's UI: log in, measure what the page loads and how soon it is usable.
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  open.push(page);
  let loaded = 0, gz = 0;
  page.on('response', async (r) => {
    const u = new URL(r.url());
    if (u.pathname === '/' || u.pathname.startsWith('/ui/')) {
      try { const b = await r.body(); loaded += b.length; gz += gzipSync(b).length; } catch { /* a redirect */ }
    }
  });
  await step('log in with the one-time code', async () => {
    const t0 = Date.now();
    await page.goto(env('B_URL'));
    await page.locator('#peer-id').waitFor({ timeout: 10000 });
    figures.usable_ms = Date.now() - t0;
    if (page.url().includes('code=')) throw new Error('the code stays in the address bar');
    await page.screenshot({ path: `${shots}/status.png` });
  });
  figures.ui_bytes = loaded;
  figures.ui_gzip_bytes = gz;

  await step('a change without the CSRF header is refused', async () => {
    const s = await page.evaluate(async () => (await fetch('api/v1/topics', { method: 'POST',
      headers: { 'content-type': 'application/json' }, body: '{"name":"x"}' })).status);
    if (s !== 403) throw new Error(`answered ${s}`);
  });

  await step('search shows the file with its size and peers', async () => {
    await page.getByRole('link', { name: 'Search' }).click();
    await page.getByLabel('search').fill(env('QUERY'));
    // The overlay links up in the first moments after start: a few searches, each waiting for a hit.
    for (let i = 0; ; i++) {
      await page.getByRole('button', { name: 'Search' }).click();
      try { await page.locator('tbody tr').first().waitFor({ timeout: 12000 }); break; } catch (e) { if (i >= 4) throw e; }
    }
    await page.screenshot({ path: `${shots}/search.png` });
  });

  await step('one click downloads; pause and resume', async () => {
    await page.locator('tbody tr').first().getByRole('button', { name: 'Download' }).click();
    await page.waitForURL(/#\/downloads/);
    const row = page.locator('tbody tr').first();
    await row.getByRole('button', { name: 'Pause' }).click({ timeout: 10000 });
    await row.locator('.state', { hasText: 'paused' }).waitFor({ timeout: 10000 });
    await page.screenshot({ path: `${shots}/downloads-paused.png` });
    await row.getByRole('button', { name: 'Resume' }).click();
    await row.locator('.state', { hasText: 'running' }).waitFor({ timeout: 10000 });
    await page.screenshot({ path: `${shots}/downloads-running.png` });
    await row.locator('.pct', { hasText: '100%' }).waitFor({ timeout: 60000 });
    await row.locator('.state', { hasText: 'done' }).waitFor({ timeout: 10000 });
    await page.screenshot({ path: `${shots}/downloads-done.png` });
  });

  await step('peers and settings pages', async () => {
    await page.getByRole('link', { name: 'Peers' }).click();
    await page.locator('tbody tr').first().waitFor();
    await page.screenshot({ path: `${shots}/peers.png` });
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('heading', { name: 'Settings' }).waitFor();
    await page.screenshot({ path: `${shots}/settings.png` });
  });

  // A's UI in its own browser context; a message typed there appears in B's.
  const actx = await browser.newContext({ viewport: { width: 1280, height: 800 }, permissions: ['clipboard-read', 'clipboard-write'] });
  const a = await actx.newPage();
  open.push(a);
  await step('A logs in and shows its share', async () => {
    await a.goto(env('A_URL'));
    await a.locator('#peer-id').waitFor({ timeout: 10000 });
    await a.getByRole('link', { name: 'Shares' }).click();
    await a.locator('tbody tr').first().waitFor();
    await a.screenshot({ path: `${shots}/shares.png` });
    await a.getByRole('button', { name: 'Copy ticket' }).click();
    let copied = '';
    for (let i = 0; i < 50 && !copied.startsWith('shoal1'); i++) {
      await a.waitForTimeout(100);
      copied = await a.evaluate(() => navigator.clipboard.readText());
    }
    if (!copied.startsWith('shoal1')) throw new Error(`the clipboard holds ${JSON.stringify(copied)}, not a ticket`);
    figures.ticket_copied = copied.length;
  });
  const join = async (p) => {
    await p.getByRole('link', { name: 'Messages' }).click();
    await p.getByLabel('topic to join').fill('harbour-chat');
    await p.getByRole('button', { name: 'Join' }).click();
    await p.getByRole('button', { name: /harbour-chat/ }).waitFor();
  };
  await step('both join a topic', async () => { await join(page); await join(a); });
  await step('a message typed in A appears in B', async () => {
    // Gossip needs the two to see each other on the topic: a few tries, each waiting for the line.
    for (let i = 0; ; i++) {
      await a.getByLabel('message').fill(`ahoy from A ${i}`);
      await a.getByRole('button', { name: 'Send' }).click();
      try { await page.getByText(`ahoy from A ${i}`).waitFor({ timeout: 5000 }); break; } catch (e) { if (i >= 5) throw e; }
    }
    await page.screenshot({ path: `${shots}/messages.png` });
  });
  await step('an event reaches the page fast', async () => {
    // From the daemon's answer to our post (the event is emitted before it) to the line on the page.
    const ms = await page.evaluate(async () => {
      const posts = document.getElementById('posts');
      const text = `timing ${Math.random()}`;
      const seen = new Promise((resolve) => {
        const obs = new MutationObserver(() => { if (posts.textContent.includes(text)) { obs.disconnect(); resolve(performance.now()); } });
        obs.observe(posts, { childList: true, subtree: true });
      });
      const csrfFree = await fetch('ui/session').then((r) => r.json());
      const t0 = performance.now();
      await fetch(`api/v1/topics/harbour-chat/messages`, { method: 'POST',
        headers: { 'content-type': 'application/json', 'x-shoal-csrf': csrfFree.csrf }, body: JSON.stringify({ text }) });
      return (await seen) - t0;
    });
    figures.event_to_page_ms = Math.round(ms);
  });

  await step('a letter written in B reaches A and shows delivered in B', async () => {
    const short = (id) => `${id.slice(0, 8)}…${id.slice(-6)}`;
    await page.getByLabel('letter to').fill(env('A_PEER'));
    await page.getByRole('button', { name: 'Write' }).click();
    // The page redraws for the letters with A: type into the new form, not into the old one (a CI run
    // typed into the topic's form just before it was replaced, and nothing was sent).
    await page.getByPlaceholder(`message to ${env('A_PEER')}`).fill('sealed for A');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.getByText('sealed for A').waitFor({ timeout: 10000 });
    await page.getByText('(delivered)').waitFor({ timeout: 30000 });
    await page.screenshot({ path: `${shots}/letters.png` });
    await a.getByRole('button', { name: short(env('B_PEER')) }).click({ timeout: 20000 });
    await a.getByText('sealed for A').waitFor({ timeout: 10000 });
  });

  await step('phone-sized and dark', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole('link', { name: 'Downloads' }).click();
    await page.locator('tbody tr').first().waitFor();
    await page.screenshot({ path: `${shots}/downloads-phone.png`, fullPage: true });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.getByRole('link', { name: 'Status' }).click();
    await page.locator('#peer-id').waitFor();
    await page.screenshot({ path: `${shots}/status-phone-dark.png`, fullPage: true });
  });
  console.log(JSON.stringify(figures));
} finally {
  await browser.close();
}
