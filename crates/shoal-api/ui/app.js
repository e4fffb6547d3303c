// @ts-check
// Shoal's web UI: one ES module, no framework, no build step. It logs in with a one-time code (the
// session is an HttpOnly cookie; every change also carries the CSRF token), draws the page the hash names,
// and follows the daemon's event feed (SSE) to keep what is shown current. Shapes come from the API's
// OpenAPI description: ./api.d.ts is generated from it and kept in step by a test.
//
// Paths are relative, so the UI works wherever it is mounted (a reverse proxy's base path included).

/** @typedef {import('./api').Status} Status */
/** @typedef {import('./api').ShareRecord} ShareRecord */
/** @typedef {import('./api').DownloadInfo} DownloadInfo */
/** @typedef {import('./api').PeerView} PeerView */
/** @typedef {import('./api').TopicView} TopicView */
/** @typedef {import('./api').MessageView} MessageView */
/** @typedef {import('./api').UiSession} UiSession */
/** @typedef {import('./api').TrafficHistory} TrafficHistory */

/** @type {string | null} */
let csrf = null;
const page = /** @type {HTMLElement} */ (document.getElementById('page'));
const errorBox = /** @type {HTMLElement} */ (document.getElementById('error'));
/** Handlers of the current page for live events, by event type. @type {Record<string, (ev: any) => void>} */
let live = {};

/** Calls the API; throws an Error whose message is the daemon's own words. */
async function api(path, opts = {}) {
  const headers = { ...(opts.body ? { 'content-type': 'application/json' } : {}), ...(opts.headers || {}) };
  const method = opts.method || (opts.body ? 'POST' : 'GET');
  if (method !== 'GET' && csrf) headers['x-shoal-csrf'] = csrf;
  const r = await fetch(path, { method, headers, credentials: 'same-origin',
    body: opts.body ? JSON.stringify(opts.body) : undefined });
  if (opts.raw && r.ok) return r;
  const text = await r.text();
  /** @type {any} */
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!r.ok) throw new Error((data && data.error) || `${r.status} ${r.statusText}`);
  return data;
}

function showError(e) {
  errorBox.textContent = e instanceof Error ? e.message : String(e);
  errorBox.hidden = false;
}
function clearError() { errorBox.hidden = true; errorBox.textContent = ''; }

/** An element with attributes and children; text is always text, never HTML. */
function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else if (v !== false && v != null) el.setAttribute(k, String(v));
  }
  for (const k of kids.flat()) el.append(k instanceof Node ? k : document.createTextNode(String(k ?? '')));
  return el;
}

function bytes(n) {
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return `${i ? n.toFixed(1) : n} ${u[i]}`;
}
function rate(bps) { return `${bytes(bps)}/s`; }
function short(id) { return id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id; }
function eta(left, bps) {
  if (!bps || left <= 0) return '';
  const s = Math.round(left / bps);
  return s < 60 ? `${s} s` : s < 3600 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
}

// ---- Login -------------------------------------------------------------------------------------------

async function login() {
  const m = location.hash.match(/code=([0-9a-f]+)/);
  if (m) {
    history.replaceState(null, '', location.pathname + location.search + '#/status');
    try {
      /** @type {UiSession} */
      const s = await api('ui/login', { body: { code: m[1] } });
      csrf = s.csrf;
      return true;
    } catch (e) { showError(e); }
  }
  try {
    /** @type {UiSession} */
    const s = await api('ui/session');
    csrf = s.csrf;
    return true;
  } catch { return false; }
}

function loginPage() {
  live = {};
  const input = h('input', { type: 'text', name: 'code', placeholder: 'one-time code', 'aria-label': 'one-time code', required: true });
  page.replaceChildren(h('h1', {}, 'Log in'),
    h('p', {}, 'Run ', h('code', {}, 'shoal ui'), ' on the machine where the daemon runs: it opens this page with a one-time code. Or paste the code here.'),
    h('form', { class: 'row', onsubmit: async (e) => {
      e.preventDefault();
      try {
        const s = await api('ui/login', { body: { code: input.value.trim() } });
        csrf = s.csrf;
        clearError();
        start();
      } catch (err) { showError(err); }
    } }, input, h('button', { type: 'submit' }, 'Log in')));
}

/** An SVG element (h() makes HTML ones). */
function svg(tag, attrs = {}, ...kids) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const k of kids.flat()) el.append(k instanceof Node ? k : document.createTextNode(String(k ?? '')));
  return el;
}

/** The bandwidth of `t` as a chart: a line each for down and up, in bytes per second, newest at the right. */
function chart(/** @type {TrafficHistory} */ t) {
  const W = 720, H = 180, pad = 4, n = t.down.length, secs = t.bucket_ms / 1000;
  const peak = Math.max(1, ...t.down, ...t.up) / secs;
  const line = (/** @type {number[]} */ v) => v.map((b, i) =>
    `${((i + 0.5) * W / n).toFixed(1)},${(H - pad - (b / secs) / peak * (H - 2 * pad)).toFixed(1)}`).join(' ');
  const mins = (t.bucket_ms * n) / 60000;
  const span = mins >= 120 ? `${Math.round(mins / 60)} hours` : `${Math.round(mins)} minutes`;
  // Stretched to the box (the lines keep their width); the words are HTML, so they are not stretched.
  return h('figure', { class: 'chart' },
    h('figcaption', { class: 'muted' }, t.down.some((b) => b > 0) || t.up.some((b) => b > 0) ? `peak ${rate(peak)}` : 'nothing moved in this time'),
    svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img',
      'aria-label': `bandwidth over the last ${span}, peak ${rate(peak)}` },
    svg('line', { x1: 0, y1: H - pad, x2: W, y2: H - pad, class: 'axis' }),
    svg('polyline', { points: line(t.down), class: 'down' }),
    svg('polyline', { points: line(t.up), class: 'up' })),
    h('div', { class: 'axis-words muted' }, h('span', {}, `${span} ago`), h('span', {}, 'now')));
}

/** Adds a live sample to `t`, moving the window on when the sample ends past its last bucket. */
function addSample(/** @type {TrafficHistory} */ t, ev) {
  const n = t.down.length;
  let k = Math.floor((ev.at_ms - t.from_ms - 1) / t.bucket_ms);
  if (k >= n) {
    const shift = Math.min(n, k - n + 1);
    t.down.splice(0, shift); t.up.splice(0, shift);
    for (let i = 0; i < shift; i++) { t.down.push(0); t.up.push(0); }
    t.from_ms += (k - n + 1) * t.bucket_ms;
    k = n - 1;
  }
  if (k >= 0) { t.down[k] += ev.down; t.up[k] += ev.up; }
}

// ---- Pages -------------------------------------------------------------------------------------------

const pages = {
  async status() {
    const win = sessionStorage.getItem('chart') === 'day' ? 'day' : 'hour';
    /** @type {[Status, TrafficHistory]} */
    const [s, t] = await Promise.all([api('api/v1/status'), api(`api/v1/traffic?window=${win}`)]);
    const card = (v, label, id) => h('div', { class: 'card' }, h('b', { id }, v), h('span', {}, label));
    const box = h('div', { id: 'chart' }, chart(t));
    const pick = (w, label) => h('button', { class: w === win ? '' : 'quiet', 'aria-pressed': String(w === win),
      onclick: () => { sessionStorage.setItem('chart', w); render(); } }, label);
    const view = h('div', {},
      h('h1', {}, 'Status'),
      h('div', { class: 'cards' },
        card('–', 'download rate', 'st-down-rate'),
        card('–', 'upload rate', 'st-up-rate'),
        card(s.topology, 'topology'),
        card(s.peers_connected, 'peers connected', 'st-peers'),
        card(s.shares, 'shares', 'st-shares'),
        card(s.downloads_active, 'downloads running', 'st-downloads'),
        card(bytes(s.downloaded_bytes), 'downloaded'),
        card(bytes(s.uploaded_bytes), 'uploaded')),
      h('h2', {}, 'Bandwidth'),
      h('div', { class: 'row legend' }, pick('hour', 'Last hour'), pick('day', 'Last day'),
        h('span', { class: 'down' }, '— down'), h('span', { class: 'up' }, '— up')),
      box,
      h('h2', {}, 'This peer'),
      h('p', { class: 'mono', id: 'peer-id' }, s.peer),
      h('h2', {}, 'Addresses'),
      h('ul', {}, s.addrs.map((a) => h('li', { class: 'mono' }, a))));
    const bump = (id, d) => { const el = document.getElementById(id); if (el) el.textContent = String(Number(el.textContent) + d); };
    live = {
      peer_connected: () => bump('st-peers', 1),
      peer_disconnected: () => bump('st-peers', -1),
      share_added: () => bump('st-shares', 1),
      share_removed: () => bump('st-shares', -1),
      traffic: (ev) => {
        const secs = Math.max(ev.span_ms, 1) / 1000;
        const set = (id, v) => { const el = document.getElementById(id); if (el) el.textContent = rate(v / secs); };
        set('st-down-rate', ev.down);
        set('st-up-rate', ev.up);
        addSample(t, ev);
        box.replaceChildren(chart(t));
      },
    };
    return view;
  },

  async shares() {
    /** @type {ShareRecord[]} */
    const all = await api('api/v1/shares');
    const path = h('input', { type: 'text', name: 'path', placeholder: '/absolute/path/to/a/file/or/folder', 'aria-label': 'path to share' });
    const rows = all.map((s) => h('tr', {},
      h('td', {}, s.name), h('td', { class: 'num' }, bytes(s.size)),
      h('td', { class: 'mono' }, short(s.id)),
      h('td', {},
        h('button', { class: 'quiet', onclick: () => act(async () => {
          /** @type {import('./api').ShareTicket} */
          const t = await api(`api/v1/shares/${s.id}/ticket`);
          // The clipboard needs a secure context (loopback is one; a plain-HTTP proxy is not).
          if (navigator.clipboard) await navigator.clipboard.writeText(t.ticket);
          else window.prompt('Ticket (copy it):', t.ticket);
        }) }, 'Copy ticket'), ' ',
        h('button', { class: 'quiet', onclick: async () => { await act(() => api(`api/v1/shares/${s.id}/remove`, { body: {} })); } }, 'Remove'))));
    // During an upload the list is redrawn once at its end (a redraw would take the progress bar away).
    live = { share_added: () => { if (!uploading) render(); }, share_removed: () => render() };
    const status = h('div', { id: 'upload-status', class: 'muted', 'aria-live': 'polite' });
    const pickFiles = h('input', { type: 'file', multiple: true, id: 'upload-files', 'aria-label': 'files to upload',
      onchange: () => uploadAll([...(pickFiles.files || [])], status) });
    const drop = h('div', { class: 'drop', id: 'drop',
      ondragover: (e) => { e.preventDefault(); drop.classList.add('over'); },
      ondragleave: () => drop.classList.remove('over'),
      ondrop: (e) => { e.preventDefault(); drop.classList.remove('over'); uploadAll([...(e.dataTransfer?.files || [])], status); } },
    h('label', { for: 'upload-files' }, 'Drop files here to copy them into the share folder and share them, or choose them:'),
    pickFiles, status);
    return h('div', {}, h('h1', {}, 'Shares'),
      h('form', { class: 'row', onsubmit: async (e) => {
        e.preventDefault();
        await act(() => api('api/v1/shares', { body: { path: path.value.trim() } }));
      } }, path, h('button', { type: 'submit' }, 'Share')),
      drop,
      all.length ? h('table', { class: 'wide' }, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', { class: 'num' }, 'Size'), h('th', {}, 'Id'), h('th', {}, ''))), h('tbody', {}, rows))
        : h('p', { class: 'muted' }, 'Nothing shared yet.'));
  },

  async downloads() {
    /** @type {DownloadInfo[]} */
    const all = await api('api/v1/downloads');
    const what = h('input', { type: 'text', name: 'what', placeholder: 'ticket or content id', 'aria-label': 'ticket or content id' });
    /** @type {Record<string, HTMLElement>} */
    const rowsById = {};
    const row = (d) => {
      const p = d.progress;
      const done = d.state === 'done';
      const moving = d.state === 'running';
      const speed = (p.per_peer || []).reduce((a, x) => a + x.rate, 0);
      const bar = h('progress', { max: p.size || 1, value: done ? (p.size || 1) : p.verified, 'aria-label': `${d.name} progress` });
      const pct = p.size ? Math.floor((100 * (done ? p.size : p.verified)) / p.size) : 0;
      const sources = (p.per_peer || []).map((x) => h('div', { class: 'mono' }, `${short(x.peer)}: ${bytes(x.bytes)}`));
      const controls = done ? [] : [
        d.state === 'paused'
          ? h('button', { class: 'quiet', onclick: () => act(() => api(`api/v1/downloads/${d.id}/resume`, { body: {} })) }, 'Resume')
          : h('button', { class: 'quiet', onclick: () => act(() => api(`api/v1/downloads/${d.id}/pause`, { body: {} })) }, 'Pause'),
        h('button', { class: 'quiet', onclick: () => act(() => api(`api/v1/downloads/${d.id}/cancel`, { body: {} })) }, 'Cancel')];
      return h('tr', { 'data-id': d.id },
        h('td', {}, d.name, h('div', { class: 'muted mono' }, d.out || '')),
        h('td', { class: 'progress' }, bar, h('div', {}, h('span', { class: 'pct' }, `${pct}%`), ' ', h('span', { class: 'state' }, d.state)),
          d.error ? h('div', { class: 'bad' }, d.error) : ''),
        h('td', { class: 'num' }, moving ? rate(speed) : '', h('div', { class: 'muted' }, moving ? eta(p.size - p.verified, speed) : '')),
        h('td', {}, p.peers === 1 ? '1 peer' : `${p.peers} peers`, sources),
        h('td', {}, h('div', { class: 'actions' }, controls)));
    };
    const body = h('tbody', {}, all.map((d) => (rowsById[d.id] = row(d))));
    const refresh = () => render();
    live = {
      download_progress: (ev) => {
        const d = all.find((x) => x.id === ev.id);
        if (!d) return refresh();
        d.progress = ev.progress;
        if (d.state !== 'paused') d.state = 'running';
        const fresh = row(d);
        rowsById[d.id]?.replaceWith(fresh);
        rowsById[d.id] = fresh;
      },
      download_done: refresh, download_failed: refresh, download_paused: refresh,
      download_resumed: refresh, download_cancelled: refresh,
    };
    return h('div', {}, h('h1', {}, 'Downloads'),
      h('form', { class: 'row', onsubmit: async (e) => {
        e.preventDefault();
        await act(() => api('api/v1/downloads', { body: { what: what.value.trim() } }));
      } }, what, h('button', { type: 'submit' }, 'Download')),
      all.length ? h('table', { class: 'wide' }, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Progress'), h('th', { class: 'num' }, 'Rate'), h('th', {}, 'Sources'), h('th', {}, ''))), body)
        : h('p', { class: 'muted' }, 'No downloads. Paste a ticket above, or find something on the Search page.'));
  },

  async search() {
    const q = h('input', { type: 'search', name: 'q', placeholder: 'words in a file name', 'aria-label': 'search' });
    const body = h('tbody', {});
    const note = h('p', { class: 'muted' }, '');
    /** @type {Record<string, HTMLElement>} */
    const seen = {};
    live = {};
    const run = async (e) => {
      e.preventDefault();
      body.replaceChildren();
      for (const k of Object.keys(seen)) delete seen[k];
      for (const k of Object.keys(holders)) delete holders[k];
      note.textContent = 'searching…';
      try {
        const r = /** @type {Response} */ (await api('api/v1/search', { body: { text: q.value }, raw: true }));
        const reader = /** @type {ReadableStream} */ (r.body).pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = JSON.parse(buf.slice(0, nl));
            buf = buf.slice(nl + 1);
            if (line.type === 'hit') addHit(line);
            else if (line.type === 'done') note.textContent = `${Object.keys(seen).length} found`;
          }
        }
      } catch (err) { note.textContent = ''; showError(err); }
    };
    /** Peers that have each id: a hit comes once per peer that has it. @type {Record<string, Set<string>>} */
    const holders = {};
    const addHit = (hit) => {
      (holders[hit.id] ||= new Set()).add(hit.peer);
      const tr = h('tr', { 'data-id': hit.id },
        h('td', {}, hit.name), h('td', { class: 'num' }, bytes(hit.size)), h('td', { class: 'num' }, holders[hit.id].size),
        h('td', {}, h('button', { class: 'quiet', onclick: async () => {
          await act(() => api('api/v1/downloads', { body: { what: hit.id, name: hit.name } }));
          location.hash = '#/downloads';
        } }, 'Download')));
      if (seen[hit.id]) seen[hit.id].replaceWith(tr); else body.append(tr);
      seen[hit.id] = tr;
    };
    return h('div', {}, h('h1', {}, 'Search'),
      h('form', { class: 'row', onsubmit: run }, q, h('button', { type: 'submit' }, 'Search')), note,
      h('table', { class: 'wide' }, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', { class: 'num' }, 'Size'), h('th', { class: 'num' }, 'Peers'), h('th', {}, ''))), body));
  },

  async peers() {
    /** @type {PeerView[]} */
    const all = await api('api/v1/peers');
    live = { peer_connected: () => render(), peer_disconnected: () => render() };
    return h('div', {}, h('h1', {}, `Peers (${all.length})`),
      h('table', { class: 'wide' }, h('thead', {}, h('tr', {}, h('th', {}, 'Peer'), h('th', {}, 'Runs'), h('th', { class: 'num' }, 'Sent to it'), h('th', { class: 'num' }, 'Received from it'))),
        h('tbody', {}, all.map((p) => h('tr', {}, h('td', { class: 'mono' }, p.peer), h('td', {}, p.agent || ''), h('td', { class: 'num' }, bytes(p.uploaded)), h('td', { class: 'num' }, bytes(p.downloaded)))))));
  },

  async messages() {
    /** @type {TopicView[]} */
    const topics = await api('api/v1/topics');
    /** @type {MessageView[]} */
    const inbox = await api('api/v1/letters?limit=500');
    /** @type {import('./api').Contact[]} */
    const contacts = await api('api/v1/contacts');
    const nameOf = (/** @type {string} */ peer) => contacts.find((c) => c.peer === peer)?.name;
    // Conversations of letters: the other peer (its petname if it has one), newest first, once each.
    const peers = [...new Set(inbox.map((m) => m.conversation))];
    /** What is open: a topic or the letters with one peer. @type {{kind: string, name: string}} */
    const open = JSON.parse(sessionStorage.getItem('open') || 'null')
      || (topics[0] ? { kind: 'topic', name: topics[0].name } : { kind: 'none', name: '' });
    const choose = (kind, name) => { sessionStorage.setItem('open', JSON.stringify({ kind, name })); render(); };
    const posts = h('div', { class: 'posts', id: 'posts', 'aria-live': 'polite' });
    /** @type {Record<string, HTMLElement>} */
    const states = {};
    const line = (/** @type {MessageView} */ m) => {
      const state = m.kind === 'letter' && m.mine ? h('span', { class: 'muted' }, ` (${m.status || ''})`) : '';
      if (state) states[m.id] = state;
      return h('div', { class: 'post' }, h('span', { class: 'who' }, `${m.mine ? 'me' : (m.author_name || short(m.author))} ${new Date(m.time_ms).toLocaleTimeString()}`), m.text, state);
    };
    const path = open.kind === 'topic' ? `api/v1/topics/${encodeURIComponent(open.name)}/messages?limit=200`
      : open.kind === 'letters' ? `api/v1/letters/${encodeURIComponent(open.name)}?limit=200` : null;
    if (path) {
      /** @type {MessageView[]} */
      const hist = await api(path);
      posts.append(...hist.map(line));
    }
    const join = h('input', { type: 'text', name: 'topic', placeholder: 'topic name', 'aria-label': 'topic to join' });
    const to = h('input', { type: 'text', name: 'to', placeholder: 'peer id or contact', 'aria-label': 'letter to' });
    const cName = h('input', { type: 'text', name: 'contact', placeholder: 'name', 'aria-label': 'contact name' });
    const cPeer = h('input', { type: 'text', name: 'peer', placeholder: 'peer id', 'aria-label': 'contact peer id' });
    const text = h('input', { type: 'text', name: 'text', placeholder: path ? `message to ${nameOf(open.name) || open.name}` : 'join a topic first', 'aria-label': 'message', disabled: !path });
    live = {
      message: (ev) => {
        // A letter with a peer not listed yet: redraw, so the list has it (the history has the letter).
        if (ev.kind === 'letter' && !peers.includes(ev.conversation)) return render();
        const here = (open.kind === 'topic' && ev.kind === 'post') || (open.kind === 'letters' && ev.kind === 'letter');
        if (here && ev.conversation === open.name) { posts.append(line(ev)); posts.scrollTop = posts.scrollHeight; }
      },
      letter_status: (ev) => { const el = states[ev.id]; if (el) el.textContent = ` (${ev.status})`; },
    };
    const send = async (e) => {
      e.preventDefault();
      const t = text.value;
      if (!t.trim()) return;
      try {
        if (open.kind === 'topic') await api(`api/v1/topics/${encodeURIComponent(open.name)}/messages`, { body: { text: t } });
        else await api('api/v1/letters', { body: { to: open.name, text: t } });
        text.value = '';
        clearError();
      } catch (err) { showError(err); }
    };
    const item = (kind, name, label) => h('li', {}, h('button', { class: open.kind === kind && open.name === name ? '' : 'quiet', onclick: () => choose(kind, name) }, label));
    return h('div', {}, h('h1', {}, 'Messages'),
      h('div', { class: 'chat' },
        h('div', {},
          h('h2', {}, 'Topics'),
          h('ul', {}, topics.map((t) => item('topic', t.name, `${t.name}${t.private ? ' 🔒' : ''}`))),
          h('form', { class: 'row', onsubmit: async (e) => {
            e.preventDefault();
            const name = join.value.trim();
            await act(async () => { await api('api/v1/topics', { body: { name } }); sessionStorage.setItem('open', JSON.stringify({ kind: 'topic', name })); });
          } }, join, h('button', { type: 'submit' }, 'Join')),
          h('h2', {}, 'Letters'),
          h('ul', {}, peers.map((p) => item('letters', p, nameOf(p) || short(p)))),
          h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); if (to.value.trim()) choose('letters', to.value.trim()); } },
            to, h('button', { type: 'submit' }, 'Write')),
          h('h2', {}, 'Contacts'),
          h('ul', { id: 'contacts' }, contacts.map((c) => h('li', { class: 'row' },
            h('button', { class: 'quiet', title: c.peer, onclick: () => choose('letters', c.peer) }, c.name),
            h('button', { class: 'quiet', 'aria-label': `remove contact ${c.name}`,
              onclick: () => act(() => api(`api/v1/contacts/${encodeURIComponent(c.name)}/remove`, { body: {} })) }, '✕')))),
          h('form', { class: 'row', onsubmit: async (e) => {
            e.preventDefault();
            await act(() => api('api/v1/contacts', { body: { name: cName.value.trim(), peer: cPeer.value.trim() } }));
          } }, cName, cPeer, h('button', { type: 'submit' }, 'Add'))),
        h('div', {}, posts,
          h('form', { class: 'row', onsubmit: send }, text, h('button', { type: 'submit', disabled: !path }, 'Send')))));
  },

  async settings() {
    /** @type {import('./api').ConfigView} */
    const c = await api('api/v1/config');
    /** @type {Status} */
    const s = await api('api/v1/status');
    live = {};
    const limit = (v) => (v == null ? 'none' : rate(v));
    const list = (v) => (v.length ? v.join('\n') : 'none');
    const rows = [
      ['Data directory', c.home], ['Topology', c.topology], ['Peer id', s.peer],
      ['Listen on', list(c.listen)], ['Bootstrap peers', list(c.bootstrap)],
      ['LAN discovery (mDNS)', c.mdns ? 'on' : 'off'], ['DHT', c.dht ? 'on' : 'off'],
      ['Connections at most', c.max_connections ?? 'default'],
      ['Upload limit', limit(c.upload_limit)], ['Upload limit per peer', limit(c.upload_limit_per_peer)],
      ['Download limit', limit(c.download_limit)], ['Download limit per peer', limit(c.download_limit_per_peer)],
      ['Index servers', list(c.index_servers)], ['Index server here', c.index_server ? 'yes' : 'no'],
      ['Bytes in flight per peer, at most', bytes(c.max_bytes_in_flight)],
    ];
    return h('div', {}, h('h1', {}, 'Settings'),
      h('p', { class: 'muted' }, 'Read only here: change them in the config file, the environment or the flags, and restart the daemon.'),
      h('table', {}, h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', { class: 'mono' }, String(v)))))),
      h('h2', {}, 'Services'),
      h('pre', { class: 'mono' }, JSON.stringify(s.services, null, 2)));
  },
};

/**
 * Uploads files one after the other into the daemon's share folder (XMLHttpRequest: fetch cannot report
 * an upload's progress), saying how far each is in `status`; the share_added event redraws the list.
 */
let uploading = false;
async function uploadAll(/** @type {File[]} */ files, /** @type {HTMLElement} */ status) {
  if (uploading) return showError(new Error('an upload is running: wait for it to end'));
  uploading = true;
  const done = [];
  for (const f of files) {
    const bar = h('progress', { max: f.size || 1, value: 0 });
    status.replaceChildren(`Uploading ${f.name} (${bytes(f.size)}) `, bar);
    try {
      await new Promise((resolve, reject) => {
        const x = new XMLHttpRequest();
        x.open('POST', `api/v1/shares/upload?name=${encodeURIComponent(f.name)}`);
        x.setRequestHeader('content-type', 'application/octet-stream');
        if (csrf) x.setRequestHeader('x-shoal-csrf', csrf);
        x.upload.onprogress = (e) => { bar.value = e.loaded; };
        x.onload = () => {
          if (x.status >= 200 && x.status < 300) return resolve(null);
          let m = `${x.status} ${x.statusText}`;
          try { m = JSON.parse(x.responseText).error || m; } catch { /* not JSON */ }
          reject(new Error(m));
        };
        x.onerror = () => reject(new Error(`uploading ${f.name} failed: the daemon did not answer`));
        x.send(f);
      });
      done.push(f.name);
      clearError();
    } catch (e) { showError(e); }
  }
  uploading = false;
  await render();
  const now = document.getElementById('upload-status');
  if (now && done.length) now.textContent = `Uploaded and shared: ${done.join(', ')}`;
}

/** Runs an action, shows its error in words, and redraws the page. */
async function act(f) {
  try { await f(); clearError(); } catch (e) { showError(e); }
  await render();
}

/** A draw in progress, and whether something happened meanwhile that it may have missed. */
let drawing = false;
let stale = false;

/**
 * Draws the page the hash names. Events that arrive while a page fetches its data would go to the old
 * page's handlers and be lost, so one drawn meanwhile is redrawn once more (its fetch then includes them).
 */
async function render() {
  if (drawing) { stale = true; return; }
  drawing = true;
  try {
    do {
      stale = false;
      await draw();
    } while (stale);
  } finally { drawing = false; }
}

async function draw() {
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1] || 'status';
  const make = pages[name] || pages.status;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  try {
    const view = await make();
    page.replaceChildren(view);
    page.dataset.page = name;
  } catch (e) {
    if (e instanceof Error && /logged in|bearer token/.test(e.message)) return loginPage();
    page.replaceChildren(h('h1', {}, 'Something went wrong'), h('p', {}, e instanceof Error ? e.message : String(e)));
  }
}

function follow() {
  const dot = /** @type {HTMLElement} */ (document.getElementById('live'));
  const es = new EventSource('api/v1/events');
  es.onopen = () => { dot.textContent = 'live'; dot.classList.add('on'); };
  es.onerror = () => { dot.textContent = 'reconnecting'; dot.classList.remove('on'); };
  const kinds = ['share_added', 'share_removed', 'download_progress', 'download_done', 'download_failed',
    'download_paused', 'download_resumed', 'download_cancelled', 'peer_connected', 'peer_disconnected',
    'message', 'letter_status', 'traffic', 'lost'];
  for (const k of kinds) {
    es.addEventListener(k, (e) => {
      const ev = JSON.parse(/** @type {MessageEvent} */ (e).data);
      if (k === 'lost') return render();
      if (drawing) { stale = true; return; }
      const f = live[k];
      if (f) f(ev);
    });
  }
}

async function start() {
  // An error belongs to the page it happened on: another page starts without it.
  window.addEventListener('hashchange', () => { clearError(); render(); });
  follow();
  await render();
}

(async () => {
  if (await login()) start(); else loginPage();
})();
