// The mesh view in the browser: draws each frame the supervisor pushes over Server-Sent Events
// (/events) and sends the failure buttons to POST /api/action. No build step, no library: every
// text goes in through textContent, never as markup.
const SVG = 'http://www.w3.org/2000/svg';
const token = document.querySelector('meta[name="peerlb-token"]').content;
const $ = (id) => document.getElementById(id);
const cards = new Map(); // instance key -> card element, kept across frames so clicks never hit a redrawn button
let frame = null;

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    node.setAttribute(k, String(v));
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

const pct = (x) => `${Math.round(x * 100)}%`;
const rate = (x) => (x >= 10 ? x.toFixed(0) : x.toFixed(1));
const ms = (x) => (x === null ? '-' : x < 10 ? `${x.toFixed(1)}ms` : `${Math.round(x)}ms`);
const clock = (at) => new Date(at).toTimeString().slice(0, 8);
const keyOf = (i) => i.id ?? i.label;

function connect() {
  const source = new EventSource('/events');
  source.onopen = () => ($('connection').dataset.connected = 'true');
  source.onerror = () => ($('connection').dataset.connected = 'false');
  source.onmessage = (e) => {
    frame = JSON.parse(e.data);
    render(frame);
  };
}

function render(f) {
  const up = Math.max(0, Math.round((f.at - f.startedAt) / 1000));
  const summary = $('summary');
  summary.replaceChildren(
    `registry: ${f.registry} · up ${Math.floor(up / 60)}m${String(up % 60).padStart(2, '0')}s · gateway: `,
    f.gatewayUrl ? el('a', { href: f.gatewayUrl }, f.gatewayUrl) : '(starting)',
    f.registryError ? ` · registry unreadable: ${f.registryError}` : '',
  );
  renderGraph(f);
  renderServices(f);
  renderCallers(f);
  $('timeline').replaceChildren(...[...f.events].reverse().map((e) => el('li', {}, `${clock(e.at)} ${e.text}`)));
}

// Call graph: services in columns by their distance from the gateway, one dot per instance.
function renderGraph(f) {
  const depth = new Map([['gateway', 0]]);
  for (let changed = true, n = 0; changed && n < 10; n++) {
    changed = false;
    for (const e of f.edges) {
      const d = (depth.get(e.from) ?? 0) + 1;
      if (depth.has(e.from) && (depth.get(e.to) ?? -1) < d) {
        depth.set(e.to, d);
        changed = true;
      }
    }
  }
  const columns = [];
  for (const s of f.services) {
    const d = depth.get(s.name) ?? 1;
    (columns[d] ??= []).push(s.name);
  }
  const byService = new Map(f.services.map((s) => [s.name, f.instances.filter((i) => i.service === s.name)]));
  const W = 200, GAP = 110, PAD = 14, DOT = 26;
  const boxes = new Map();
  let height = 0;
  columns.forEach((names, col) => {
    let y = PAD;
    for (const name of names ?? []) {
      const h = 34 + Math.max(1, byService.get(name).length) * DOT;
      boxes.set(name, { x: PAD + col * (W + GAP), y, w: W, h });
      y += h + PAD;
    }
    height = Math.max(height, y);
  });
  const width = PAD + columns.length * (W + GAP) - GAP + PAD;
  const svg = $('graph');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const parts = [];
  for (const e of f.edges) {
    const a = boxes.get(e.from), b = boxes.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + a.w, y1 = a.y + 17, x2 = b.x, y2 = b.y + 17, mx = (x1 + x2) / 2;
    parts.push(el('svg:path', { class: 'edge', d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, 'marker-end': 'url(#arrow)' }));
    parts.push(el('svg:text', { class: 'edge-label', x: mx, y: (y1 + y2) / 2 - 4, 'text-anchor': 'middle' }, `${rate(e.rps)}/s`));
  }
  for (const [name, box] of boxes) {
    const svc = f.services.find((s) => s.name === name);
    const g = el('svg:g', { class: 'svc', 'data-service': name });
    g.append(el('svg:rect', { x: box.x, y: box.y, width: box.w, height: box.h, rx: 6 }));
    g.append(el('svg:text', { class: 'name', x: box.x + 8, y: box.y + 18 }, name));
    g.append(el('svg:text', { x: box.x + box.w - 8, y: box.y + 18, 'text-anchor': 'end' }, `${rate(svc.rps)} req/s`));
    byService.get(name).forEach((inst, i) => {
      const cy = box.y + 34 + i * DOT + DOT / 2 - 4;
      g.append(el('svg:circle', { cx: box.x + 16, cy, r: 7, class: `dot state-${inst.state}`, 'data-instance-id': inst.id ?? '' }));
      const text = inst.state === 'gone' ? `${inst.label} gone` : `${inst.label} ${inst.state} · ${pct(inst.share)}`;
      g.append(el('svg:text', { x: box.x + 30, y: cy + 4 }, text));
    });
    parts.push(g);
  }
  const defs = el('svg:defs', {}, el('svg:marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
    el('svg:path', { d: 'M0,0 L10,5 L0,10 z', fill: '#94a3b8' })));
  svg.replaceChildren(defs, ...parts);
}

function renderServices(f) {
  const root = $('services');
  const seen = new Set();
  for (const svc of f.services) {
    let box = root.querySelector(`.service[data-service="${svc.name}"]`);
    if (!box) {
      const start = svc.name === 'gateway' ? '' : el('button', { 'data-action': 'start', 'data-service': svc.name }, 'start one more');
      box = el('div', { class: 'service', 'data-service': svc.name },
        el('div', { class: 'service-head' }, el('span', { class: 'name' }, svc.name), el('span', { class: 'rps' }), start),
        el('div', { class: 'cards' }));
      root.append(box);
    }
    box.querySelector('.rps').textContent = `${rate(svc.rps)} req/s`;
    const list = box.querySelector('.cards');
    const instances = f.instances.filter((i) => i.service === svc.name);
    const even = instances.filter((i) => i.state !== 'gone' && i.state !== 'starting').length;
    for (const inst of instances) {
      const key = keyOf(inst);
      seen.add(key);
      let card = cards.get(key);
      if (!card) {
        card = newCard(inst);
        cards.set(key, card);
        list.append(card);
      }
      updateCard(card, inst, even > 0 ? 1 / even : 0);
    }
  }
  for (const [key, card] of cards) {
    if (!seen.has(key)) {
      card.remove();
      cards.delete(key);
    }
  }
}

function newCard(inst) {
  // The gateway has them too: killing the mesh's one entry point is a failure worth watching.
  const buttons = el('div', { class: 'buttons' },
    el('button', { 'data-action': 'kill', title: 'SIGKILL: no deregistration, no drain' }, 'kill'),
    el('button', { 'data-action': 'stop', title: 'SIGTERM: deregister, drain, exit' }, 'stop'),
    el('button', { 'data-action': 'slow', title: 'add 200 ms to every request' }, 'slow down'),
    el('button', { 'data-action': 'unhealthy', title: 'make its health check fail' }, 'make unhealthy'));
  return el('div', { class: 'inst', 'data-instance-id': inst.id ?? '', 'data-label': inst.label, 'data-service': inst.service },
    el('div', { class: 'top' }, el('span', { class: 'label' }, inst.label), el('span', { class: 'badge' })),
    el('div', { class: 'meta' }),
    el('div', { class: 'nums' }),
    el('svg:svg', { class: 'spark', viewBox: '0 0 60 30', preserveAspectRatio: 'none', 'aria-label': 'share over the last minute' }),
    buttons);
}

function updateCard(card, inst, evenShare) {
  card.dataset.state = inst.state;
  card.dataset.instanceId = inst.id ?? '';
  const badge = card.querySelector('.badge');
  badge.dataset.state = inst.state;
  badge.textContent = inst.state;
  badge.title = inst.detail;
  card.querySelector('.meta').textContent =
    `${inst.id ?? '-'} · pid ${inst.pid ?? '-'} · :${inst.port ?? '-'}` +
    (inst.listed === false && inst.state !== 'gone' ? ' · not in registry' : '') +
    (inst.state === 'gone' ? ` · ${inst.detail}` : '');
  const nums = [el('b', {}, `${rate(inst.rps)} req/s`), ` · ${pct(inst.share)} · ${inst.served} served`];
  if (inst.failed > 0) nums.push(` · ${inst.failed} 5xx`);
  if (inst.reportedLoad !== null) nums.push(` · event loop ${pct(inst.reportedLoad)}`);
  if (inst.slowMs > 0) nums.push(` · +${inst.slowMs}ms`);
  card.querySelector('.nums').replaceChildren(...nums);
  drawSpark(card.querySelector('.spark'), inst.history, evenShare);
  const running = inst.state !== 'gone' && inst.state !== 'starting';
  for (const b of card.querySelectorAll('button')) b.disabled = !running;
  const slow = card.querySelector('button[data-action="slow"]');
  if (slow) slow.textContent = inst.slowMs > 0 ? 'speed up' : 'slow down';
  const health = card.querySelector('button[data-action="unhealthy"], button[data-action="healthy"]');
  if (health) {
    health.dataset.action = inst.healthy || !running ? 'unhealthy' : 'healthy';
    health.textContent = health.dataset.action === 'unhealthy' ? 'make unhealthy' : 'make healthy';
  }
}

// Share of the service's traffic over the last minute, 0 at the bottom, 100 % at the top; the
// dashed line is an even split.
function drawSpark(svg, history, evenShare) {
  const n = 60, H = 30;
  const start = n - history.length;
  const parts = [el('svg:line', { class: 'even', x1: 0, x2: n, y1: H - evenShare * H, y2: H - evenShare * H })];
  let run = [];
  const flush = () => {
    if (run.length === 0) return;
    const pts = run.map(([x, v]) => `${x},${(H - v * H).toFixed(1)}`).join(' ');
    const first = run[0][0], last = run[run.length - 1][0];
    parts.push(el('svg:polygon', { class: 'area', points: `${first},${H} ${pts} ${last},${H}` }));
    parts.push(el('svg:polyline', { class: 'line', points: pts }));
    run = [];
  };
  history.forEach((v, i) => (v === null ? flush() : run.push([start + i, v])));
  flush();
  svg.replaceChildren(...parts);
}

function renderCallers(f) {
  const rows = f.callers
    .slice()
    .sort((a, b) => a.caller.localeCompare(b.caller, 'en', { numeric: true }) || a.service.localeCompare(b.service))
    .map((c) => {
      const flags = [];
      if (!c.discovered) flags.push('discovering');
      else if (c.expired) flags.push(el('span', { class: 'flag-bad' }, 'EXPIRED'));
      else if (c.stale) flags.push(el('span', { class: 'flag-bad' }, `STALE${c.lastError ? `: ${c.lastError}` : ''}`));
      else flags.push('fresh');
      if (c.panic) flags.push(el('span', { class: 'flag-bad' }, ' PANIC'));
      flags.push(` · ${c.eligiblePeers}/${c.peers.length} in picker`);
      if (c.retries > 0) flags.push(` · ${c.retries} retries`);
      const peers = c.peers.map((p) => {
        const kind = p.state === 'ok' ? 'ok' : p.state === 'out' ? 'out' : 'bad';
        const extra = p.reportedLoad !== null ? ` el ${pct(p.reportedLoad)}` : '';
        return el('span', { class: 'peer', 'data-state-kind': kind, title: `breaker ${p.breaker}, ${p.inFlight} in flight` },
          `${p.label} ${p.state} ${ms(p.load)}${extra} ${p.requests}/${p.failures}`);
      });
      return el('tr', {}, el('td', {}, c.caller), el('td', {}, c.service), el('td', {}, ...flags), el('td', {}, ...peers));
    });
  const table = rows.length === 0
    ? el('p', { class: 'hint' }, 'no calls yet: send a request to the gateway')
    : el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'caller'), el('th', {}, 'calls'), el('th', {}, 'cache'), el('th', {}, 'peers: state, load estimate, sent/failed'))), el('tbody', {}, ...rows));
  $('callers').replaceChildren(table);
}

async function act(body) {
  const notice = $('notice');
  try {
    const res = await fetch('/api/action', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-peerlb-token': token },
      body: JSON.stringify(body),
    });
    const answer = await res.json().catch(() => ({}));
    notice.className = res.ok ? '' : 'error';
    notice.textContent = res.ok ? answer.done : `refused (${res.status}): ${answer.error?.message ?? 'unknown error'}`;
  } catch (err) {
    notice.className = 'error';
    notice.textContent = `the supervisor did not answer: ${err.message}`;
  }
}

document.addEventListener('click', (e) => {
  const button = e.target.closest('button[data-action]');
  if (!button || button.disabled) return;
  const action = button.dataset.action;
  if (action === 'start') {
    void act({ action, service: button.dataset.service });
    return;
  }
  const card = button.closest('.inst');
  const id = card?.dataset.instanceId;
  if (!id) return;
  const inst = frame?.instances.find((i) => i.id === id);
  if (action === 'slow') void act({ action, instance: id, ms: inst && inst.slowMs > 0 ? 0 : 200 });
  else void act({ action, instance: id });
});

connect();
