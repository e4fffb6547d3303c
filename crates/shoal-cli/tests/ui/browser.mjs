// The web UI in a real headless Chromium (playwright-core driving Debian's chromium), run by
// crates/shoal-cli/tests/ui.rs, which starts the daemons and checks the file on disk afterwards.
// Input (environment): SHOAL_PLAYWRIGHT (an npm prefix holding playwright-core), CHROMIUM, B_URL and
// A_URL (one-time login links of the two daemons), A_PEER and B_PEER (their peer ids), STALE_URL (a spent link of B), QUERY (words of the
// file A shares), SHOTS (where screenshots go). Output: one JSON line of figures on stdout. Exits non-zero
// on the first failed step, saying which.
//
// Both UIs are used through reverse proxies started here, as a person behind nginx would: B (started with
// --api-base-path /shoal) through one that forwards /shoal/... unchanged, A through one that strips /a.
import http from 'node:http';
import { createRequire } from 'node:module';
import { gzipSync } from 'node:zlib';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const require = createRequire(env('SHOAL_PLAYWRIGHT') + '/');
const { chromium } = require('playwright-core');
const shots = env('SHOTS');
const figures = {};

/** Proxies requests under `from` to the daemon at `target` with `from` replaced by `to`; 404 elsewhere. */
const proxies = [];
const proxy = (target, from, to) => new Promise((ok) => {
  const t = new URL(target);
  const server = http.createServer((req, res) => {
    const url = req.url || '/';
    if (!url.startsWith(from)) { res.writeHead(404); res.end('not proxied here'); return; }
    // One upstream connection per request (no keep-alive pool to outlive the test), ended with its client
    // (an event feed would otherwise stay open upstream).
    const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: to + url.slice(from.length),
      headers: { ...req.headers, host: t.host }, agent: false }, (r) => { res.writeHead(r.statusCode || 502, r.headers); r.pipe(res); });
    up.on('error', (e) => { if (!res.headersSent) res.writeHead(502); res.end(String(e)); });
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  proxies.push(server);
  server.listen(0, '127.0.0.1', () => ok(`http://127.0.0.1:${/** @type {any} */ (server.address()).port}`));
});
const bDirect = new URL(env('B_URL'));
if (!bDirect.pathname.startsWith('/shoal/')) throw new Error(`B's login link ${bDirect} is not under /shoal/`);
const bProxy = await proxy(bDirect.origin, '/shoal', '/shoal');
const aDirect = new URL(env('A_URL'));
const aProxy = await proxy(aDirect.origin, '/a/', '/');
const viaProxy = (u, p, prefix) => { const x = new URL(u); return `${p}${prefix}${x.pathname.replace(/^\/shoal/, '').slice(1)}${x.hash}`; };

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
    await stale.goto(viaProxy(env('STALE_URL'), bProxy, '/shoal/'));
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
    if (u.pathname === '/shoal/' || u.pathname.startsWith('/shoal/ui/')) {
      try { const b = await r.body(); loaded += b.length; gz += gzipSync(b).length; } catch { /* a redirect */ }
    }
  });
  await step('log in with the one-time code', async () => {
    const t0 = Date.now();
    await page.goto(viaProxy(env('B_URL'), bProxy, '/shoal/'));
    await page.locator('#peer-id').waitFor({ timeout: 10000 });
    figures.usable_ms = Date.now() - t0;
    if (page.url().includes('code=')) throw new Error('the code stays in the address bar');
    if (!page.url().startsWith(`${bProxy}/shoal/`)) throw new Error(`the page left the proxy: ${page.url()}`);
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
    const still = ((await row.locator('td.num').textContent()) || '').trim();
    if (still !== '') throw new Error(`a paused download shows a rate and time left: "${still}"`);
    await row.getByRole('button', { name: 'Resume' }).click();
    await row.locator('.state', { hasText: 'running' }).waitFor({ timeout: 10000 });
    // While it runs, the row names its source and what came from it.
    await row.getByText(/^1 peer/).waitFor({ timeout: 10000 });
    await page.screenshot({ path: `${shots}/downloads-running.png` });
    // The row's two buttons stand apart (they once touched and read as one split button).
    const pause = await row.getByRole('button', { name: 'Pause' }).boundingBox();
    const cancel = await row.getByRole('button', { name: 'Cancel' }).boundingBox();
    if (!pause || !cancel) throw new Error('the running row does not show Pause and Cancel');
    if (cancel.x < pause.x + pause.width + 4 && cancel.y < pause.y + pause.height + 4) {
      throw new Error(`Pause and Cancel touch: ${JSON.stringify({ pause, cancel })}`);
    }
    await row.locator('.pct', { hasText: '100%' }).waitFor({ timeout: 60000 });
    await row.locator('.state', { hasText: 'done' }).waitFor({ timeout: 10000 });
    await page.screenshot({ path: `${shots}/downloads-done.png` });
  });

  await step('status shows the live rates and the download in its bandwidth chart', async () => {
    await page.getByRole('link', { name: 'Status' }).click();
    await page.locator('#chart polyline.down').waitFor({ timeout: 10000 });
    // The daemon samples traffic every 5 s: the rate cards change on the next sample.
    await page.waitForFunction(() => document.getElementById('st-down-rate')?.textContent !== '–', null, { timeout: 15000 });
    const peak = await page.evaluate(() => {
      const ys = (document.querySelector('#chart polyline.down')?.getAttribute('points') || '').split(' ').map((p) => Number(p.split(',')[1]));
      return Math.min(...ys);
    });
    if (!(peak < 170)) throw new Error(`the download is not in the chart (highest point at y=${peak})`);
    await page.screenshot({ path: `${shots}/status-bandwidth.png` });
    await page.getByRole('button', { name: 'Last day' }).click();
    await page.locator('button[aria-pressed="true"]', { hasText: 'Last day' }).waitFor({ timeout: 10000 });
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
    await a.goto(viaProxy(env('A_URL'), aProxy, '/a/'));
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
  await step('A uploads a chosen file and a dropped one into its share folder', async () => {
    await a.setInputFiles('#upload-files', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('notes from the harbour\n') });
    await a.locator('tbody tr', { hasText: 'notes.txt' }).waitFor({ timeout: 10000 });
    await a.locator('#upload-status', { hasText: 'notes.txt' }).waitFor({ timeout: 10000 });
    const dt = await a.evaluateHandle(() => {
      const d = new DataTransfer();
      d.items.add(new File(['dropped on the page\n'], 'dropped.txt', { type: 'text/plain' }));
      return d;
    });
    await a.dispatchEvent('#drop', 'drop', { dataTransfer: dt });
    await a.locator('tbody tr', { hasText: 'dropped.txt' }).waitFor({ timeout: 10000 });
    // The same name again is refused in words, and the list keeps one row of it.
    await a.setInputFiles('#upload-files', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('other') });
    await a.locator('#error', { hasText: 'exists already' }).waitFor({ timeout: 10000 });
    await a.screenshot({ path: `${shots}/shares-uploaded.png` });
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

  await step('a contact names the peer in B\'s letters', async () => {
    await page.getByLabel('contact name').fill('Ana');
    await page.getByLabel('contact peer id').fill(env('A_PEER'));
    await page.getByRole('button', { name: 'Add' }).click();
    await page.locator('#contacts button', { hasText: 'Ana' }).waitFor({ timeout: 10000 });
    // The letters list names A by the petname now, not by its peer id.
    const short = (id) => `${id.slice(0, 8)}…${id.slice(-6)}`;
    if (await page.getByRole('button', { name: short(env('A_PEER')) }).count()) throw new Error('A is still shown by its id');
    await page.getByLabel('contact name').fill('bad\u0007name');
    await page.getByLabel('contact peer id').fill(env('A_PEER'));
    await page.getByRole('button', { name: 'Add' }).click();
    await page.locator('#error', { hasText: 'control' }).waitFor({ timeout: 10000 });
    // The contact opens the letters with A.
    await page.locator('#contacts button', { hasText: 'Ana' }).click();
    await page.getByText('sealed for A').waitFor({ timeout: 10000 });
    await page.screenshot({ path: `${shots}/contacts.png` });
  });

  await step('phone-sized and dark', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole('link', { name: 'Downloads' }).click();
    await page.locator('tbody tr').first().waitFor();
    // The messages page's error (the bad contact name) stayed there.
    await page.locator('#error').waitFor({ state: 'hidden', timeout: 5000 });
    await page.screenshot({ path: `${shots}/downloads-phone.png`, fullPage: true });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.getByRole('link', { name: 'Status' }).click();
    await page.locator('#peer-id').waitFor();
    await page.screenshot({ path: `${shots}/status-phone-dark.png`, fullPage: true });
  });
  await step('the bare base path redirects into the UI', async () => {
    await page.goto(`${bProxy}/shoal`);
    await page.locator('#peer-id').waitFor({ timeout: 10000 });
    if (!page.url().startsWith(`${bProxy}/shoal/`)) throw new Error(`landed on ${page.url()}`);
  });
  console.log(JSON.stringify(figures));
} finally {
  await browser.close();
  for (const p of proxies) { p.closeAllConnections(); p.close(); }
}
