// Spike alerts for supervisors and admins (docs/spikes.md): a banner above the inbox per
// alert — the tag or channel, customers in the window against the usual count, the channels,
// and the link to a broadcast to those customers. Alerts of the last hours are loaded at
// start (GET /api/v1/spikes); new ones arrive on the live stream (spike.detected). A dismissed
// alert stays dismissed in this browser.
import { get, has, query } from './api.js';
import { $, el, t } from './ui.js';
import { icon } from './icons.js';

const RECENT_MS = 2 * 3600 * 1000;
const STORE = 'td.spikes.dismissed';

function dismissed() {
  try { return new Set(JSON.parse(localStorage.getItem(STORE) || '[]')); } catch { return new Set(); }
}

function dismiss(id) {
  const ids = [...dismissed(), id].slice(-200);
  try { localStorage.setItem(STORE, JSON.stringify(ids)); } catch { /* private mode */ }
}

export function createSpikes(me) {
  const box = $('#spikes');
  const shown = new Set();
  const on = box && me.role !== 'agent' && has('GET', '/spikes');

  function show(a) {
    const id = a.id || a.alert_id;
    if (!on || !id || shown.has(id) || dismissed().has(id)) return;
    shown.add(id);
    const minutes = Math.round((a.until_ts - a.since_ts) / 60000);
    const what = t(a.dim === 'tag' ? 'spike.tag' : 'spike.channel', { value: a.value });
    const row = el('div', { class: 'spike', role: 'alert', dataset: { id } },
      el('strong', {}, icon('trend'), ' ' + what),
      el('span', {}, t('spike.count', { count: a.count, minutes, median: a.median })),
      (a.channels || []).length
        ? el('span', { class: 'muted' }, t('spike.channels', { channels: a.channels.join(', ') })) : null,
      el('a', { href: a.broadcast_url, class: 'spike-broadcast' }, t('spike.broadcast')),
      el('button', { type: 'button', class: 'secondary', title: t('spike.dismiss'),
        'aria-label': t('spike.dismiss'),
        onclick: () => { dismiss(id); row.remove(); box.hidden = !box.children.length; } }, '×'));
    box.prepend(row);
    box.hidden = false;
  }

  async function load() {
    if (!on) return;
    try {
      const page = await get('/spikes' + query({ since_ts: Date.now() - RECENT_MS, limit: 10 }));
      for (const a of (page.items || []).reverse()) show(a);
    } catch { /* the banner is a convenience: the staff group and the API have them too */ }
  }

  load();
  return { onEvent: (data) => show(data) };
}
