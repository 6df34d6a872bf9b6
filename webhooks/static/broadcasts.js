// Proactive broadcasts (templates/broadcasts.html) over /api/v1/broadcasts: a new one's form,
// prefilled from ?tag=&since=&until=&channels=&conversations= (a spike alert's link); its dry
// run's counts per channel (would send / would skip by reason) before anything can be sent;
// then its progress (polled) and report; the earlier ones below, each opening its own.
import { ApiError, get, post } from './api.js';
import { $, clear, el, fmtFull, setLanguage, t, tr, uuid } from './ui.js';

const boot = JSON.parse(document.getElementById('boot').textContent);
setLanguage(boot.language, boot.strings);
const POLL_MS = 1000;
let dryKey = '';   // the form as last dry-run: Send needs a dry run of what is in the form
let createKey = uuid();
let shown = null;  // the broadcast whose progress is on screen
let timer = null;

const reason = (code) => tr('bc.reason.' + code, {}, code);

function explain(e) {
  if (!(e instanceof ApiError)) return String(e && e.message || e);
  if (e.status === 0) return t('error.network');
  return (e.reason && tr('error.' + e.reason, e.params, '')) || e.message;
}

// "2026-12-04T07:45:00Z" or ms -> the datetime-local input's value, in this browser's zone
function localInput(v) {
  if (!v) return '';
  const d = /^\d+$/.test(v) ? new Date(Number(v)) : new Date(v);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function prefill() {
  const q = new URLSearchParams(window.location.search);
  $('#bc-tag').value = q.get('tag') || '';
  $('#bc-since').value = localInput(q.get('since'));
  $('#bc-until').value = localInput(q.get('until'));
  const chans = (q.get('channels') || '').split(',').filter(Boolean);
  for (const box of document.querySelectorAll('#bc-channels input')) box.checked = chans.includes(box.value);
  $('#bc-conversations').value = (q.get('conversations') || '').split(',').filter(Boolean).join(', ');
}

function spec() {
  const ms = (id) => ($(id).value ? new Date($(id).value).getTime() : null);
  const attributes = {};
  if ($('#bc-tier').value.trim()) attributes.tier = $('#bc-tier').value.trim();
  if ($('#bc-lang').value) attributes.lang = $('#bc-lang').value;
  const templates = {};
  for (const [key, id] of [['*', '#bc-tpl-all'], ['vi', '#bc-tpl-vi'], ['en', '#bc-tpl-en'], ['zh', '#bc-tpl-zh']]) {
    if ($(id).value.trim()) templates[key] = $(id).value;
  }
  return {
    name: $('#bc-name').value.trim(),
    segment: {
      tag: $('#bc-tag').value.trim() || null, since: ms('#bc-since'), until: ms('#bc-until'),
      channels: [...document.querySelectorAll('#bc-channels input:checked')].map((b) => b.value),
      attributes,
      conversations: $('#bc-conversations').value.split(/[\s,]+/).map((s) => s.replace(/^#/, '')).filter(Boolean),
    },
    templates,
  };
}

function countsTable(channels) {
  const table = clear($('#bc-counts'));
  table.append(el('tr', {}, el('th', { text: t('bc.col.channel') }), el('th', { text: t('bc.col.send') }),
    el('th', { text: t('bc.col.skip') })));
  for (const [ch, c] of Object.entries(channels).sort()) {
    const skips = Object.entries(c.would_skip).map(([r, n]) => `${reason(r)}: ${n}`).join(' · ');
    table.append(el('tr', { dataset: { channel: ch } }, el('td', { text: ch }),
      el('td', { class: 'bc-send-n', text: String(c.would_send) }), el('td', { class: 'bc-skip', text: skips || '—' })));
  }
}

// a sample's key is "channel:lang" ("tg-demo:zh-Hant", "mail:*"): the channel and the
// language's name in the console's language ("tg-demo · Tiếng Trung phồn thể")
function sampleLabel(key) {
  const cut = key.lastIndexOf(':');
  if (cut < 0) return key;
  const lang = key.slice(cut + 1);
  return `${key.slice(0, cut)} · ${tr('kb.lang.' + lang, {}, lang)}`;
}

async function dryRun() {
  $('#bc-error').textContent = '';
  const body = spec();
  try {
    const r = await post('/broadcasts/dry-run', body);
    dryKey = JSON.stringify(body);
    $('#bc-result-title').textContent = t('bc.dry.title');
    $('#bc-summary').textContent = t('bc.dry.summary', { n: r.totals.customers, send: r.totals.would_send, skip: r.totals.would_skip });
    countsTable(r.channels);
    const samples = clear($('#bc-samples'));
    for (const [key, text] of Object.entries(r.samples)) samples.append(el('li', {}, el('b', { text: sampleLabel(key) + ': ' }), text));
    clear($('#bc-report'));
    $('#bc-progress-box').hidden = true;
    $('#bc-send').disabled = r.totals.would_send === 0;
  } catch (e) {
    $('#bc-error').textContent = explain(e);
    $('#bc-send').disabled = true;
  }
}

async function createAndSend() {
  const body = spec();
  if (JSON.stringify(body) !== dryKey) { await dryRun(); return; } // counts first, always
  if (!window.confirm(t('bc.confirm', { n: $('#bc-summary').textContent }))) return;
  $('#bc-send').disabled = true;
  try {
    const b = await post('/broadcasts', body, createKey);
    createKey = uuid();
    await post(`/broadcasts/${b.id}/send`);
    show(b.id);
    loadList();
  } catch (e) {
    $('#bc-error').textContent = explain(e);
  }
}

function reportTable(r) {
  const table = clear($('#bc-report'));
  const kinds = ['sent', 'queued', 'failed', 'uncertain', 'skipped'];
  table.append(el('tr', {}, el('th', { text: t('bc.col.channel') }), ...kinds.map((k) => el('th', { text: t('bc.out.' + k) }))));
  for (const [ch, c] of Object.entries(r.channels).sort()) {
    table.append(el('tr', { dataset: { channel: ch } }, el('td', { text: ch }), ...kinds.map((k) => el('td', { dataset: { kind: k }, text: String(c[k] || 0) }))));
  }
  for (const [kind, reasons] of Object.entries(r.reasons)) {
    for (const [code, n] of Object.entries(reasons)) {
      table.append(el('tr', { class: 'bc-why' }, el('td', { text: t('bc.out.' + kind) }),
        el('td', { colspan: String(kinds.length), text: `${reason(code)}: ${n}` })));
    }
  }
}

async function poll() {
  if (!shown) return;
  try {
    const b = await get(`/broadcasts/${shown}`);
    const p = b.progress || {};
    $('#bc-progress-box').hidden = false;
    $('#bc-progress').max = p.total || 1;
    $('#bc-progress').value = p.handled || 0;
    $('#bc-progress-text').textContent = t('bc.progress', { done: p.handled || 0, total: p.total ?? '?', state: t('bc.state.' + b.state) });
    $('#bc-progress-box').dataset.state = b.state;
    $('#bc-resume').hidden = !(b.state === 'stopped' || (b.state === 'sending' && !p.running && p.total !== null && p.handled < p.total));
    const r = await get(`/broadcasts/${shown}/report`);
    $('#bc-summary').textContent = `${b.name} · ` + t('bc.report.summary', r.totals);
    reportTable(r);
    const moving = b.state === 'sending' || r.totals.queued > 0;
    timer = moving ? setTimeout(poll, POLL_MS) : null;
    if (!moving) loadList(); // its row says done now
  } catch (e) {
    $('#bc-error').textContent = explain(e);
  }
}

function show(id) {
  shown = id;
  clearTimeout(timer);
  $('#bc-result-title').textContent = t('bc.report.title');
  clear($('#bc-counts'));
  clear($('#bc-samples'));
  poll();
}

async function loadList() {
  const table = clear($('#bc-list'));
  const { items } = await get('/broadcasts');
  if (!items.length) { table.append(el('tr', {}, el('td', { class: 'muted', text: t('bc.empty') }))); return; }
  for (const b of items) {
    const p = b.progress || {};
    table.append(el('tr', { class: 'bc-item', dataset: { id: b.id }, onclick: () => show(b.id) },
      el('td', { text: '#' + b.id }), el('td', { text: b.name }), el('td', { text: t('bc.state.' + b.state) }),
      el('td', { text: p.total === null || p.total === undefined ? '—' : `${p.handled}/${p.total}` }),
      el('td', { text: fmtFull(b.created_ts) }), el('td', { text: b.created_by })));
  }
}

$('#bc-dry').addEventListener('click', dryRun);
$('#bc-send').addEventListener('click', createAndSend);
$('#bc-resume').addEventListener('click', async () => {
  try { await post(`/broadcasts/${shown}/send`); poll(); } catch (e) { $('#bc-error').textContent = explain(e); }
});
prefill();
loadList().finally(() => { document.body.dataset.ready = '1'; });
