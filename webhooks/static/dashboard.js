// The supervisors' KPI dashboard: GET /api/v1/reports/kpis drawn with uPlot (served with the
// console, uPlot.iife.min.js: window.uPlot). Days and hours are the team's time zone's
// (boot.timezone); a figure with nothing measured yet says so instead of drawing zeros.
import { get, query } from './api.js';

const boot = JSON.parse(document.getElementById('boot').textContent);
const S = boot.strings;
const TZ = boot.timezone;
const PALETTE = ['#0b6bcb', '#e07a10', '#117a37', '#b42318', '#7a4cc2', '#0f8a8a', '#9a6700',
  '#c2185b', '#546e7a', '#5d8a00'];
const charts = {};
window.tdCharts = charts; // for tests and the curious: each chart's uPlot (its .data)

const t = (key, params) => {
  let s = S[key] || key;
  for (const [k, v] of Object.entries(params || {})) s = s.replaceAll('{' + k + '}', v);
  return s;
};
const $ = (sel) => document.querySelector(sel);

function localDate(ms) { // YYYY-MM-DD of an instant in the team's time zone
  return new Intl.DateTimeFormat('en-CA', { timeZone: TZ, year: 'numeric', month: '2-digit',
    day: '2-digit' }).format(new Date(ms));
}

function range(days) {
  const today = localDate(Date.now());
  const d = new Date(today + 'T00:00:00Z');
  const shift = (n) => new Date(d.getTime() + n * 86400000).toISOString().slice(0, 10);
  return { from: shift(1 - days), to: shift(1), interval: days <= 2 ? 'hour' : 'day' };
}

export function duration(s) {
  if (s === null || s === undefined) return '–';
  if (s < 60) return t('dash.unit.s', { n: Math.round(s) });
  if (s < 3600) return t('dash.unit.m', { n: Math.round(s / 60) });
  const h = Math.floor(s / 3600);
  return t('dash.unit.h', { n: h, m: String(Math.round((s % 3600) / 60)).padStart(2, '0') });
}
const pct = (v) => (v === null || v === undefined ? '–' : (100 * v).toFixed(1) + ' %');
const num = (v, d = 0) => (v === null || v === undefined ? '–' : Number(v).toFixed(d));

function cards(tot, available) {
  const rows = [
    ['dash.kpi.conversations', num(tot.conversations)],
    ['dash.kpi.first_response', duration(tot.first_response_avg_s),
      t('dash.kpi.p90', { v: duration(tot.first_response_p90_s) })],
    ['dash.kpi.next_response', duration(tot.next_response_avg_s)],
    ['dash.kpi.handle_time', duration(tot.handle_time_avg_s)],
    ['dash.kpi.resolution', duration(tot.resolution_avg_s)],
    ['dash.kpi.reopen_rate', pct(tot.reopen_rate)],
    ['dash.kpi.sla', available.sla ? pct(tot.sla_compliance) : t('dash.no_data')],
    ['dash.kpi.csat', available.csat ? num(tot.csat_avg, 2) + ' / 5' : t('dash.no_data'),
      available.csat ? t('dash.kpi.satisfied', { v: pct(tot.csat_satisfied) }) : ''],
    ['dash.kpi.nps', available.nps ? num(tot.nps, 0) : t('dash.no_data')],
    ['dash.kpi.deflection', available.deflection ? pct(tot.deflection_rate) : t('dash.no_data')],
  ];
  const box = $('#dash-cards');
  box.replaceChildren(...rows.map(([label, value, sub]) => {
    const el = document.createElement('div');
    el.className = 'card';
    const l = document.createElement('div'); l.className = 'card-label'; l.textContent = t(label);
    const v = document.createElement('div'); v.className = 'card-value'; v.textContent = value;
    el.append(l, v);
    if (sub) { const s = document.createElement('div'); s.className = 'muted'; s.textContent = sub; el.append(s); }
    return el;
  }));
}

function place(id, opts, data, emptyText) {
  const box = document.querySelector(`#${id} .plot`);
  if (charts[id]) { charts[id].destroy(); delete charts[id]; }
  box.replaceChildren();
  if (emptyText) {
    const p = document.createElement('p');
    p.className = 'empty'; p.textContent = emptyText;
    box.append(p);
    return;
  }
  const width = Math.max(260, box.clientWidth || 300);
  // axes in the page's colours (uPlot draws them black: unreadable in dark mode)
  const css = getComputedStyle(document.documentElement);
  const ink = css.getPropertyValue('--muted').trim() || '#667085';
  const line = css.getPropertyValue('--line').trim() || '#dfe3e8';
  const axes = (opts.axes || [{}, {}]).map((a) => ({ stroke: ink, grid: { stroke: line, width: 1 },
    ticks: { stroke: line, width: 1 }, ...a }));
  charts[id] = new window.uPlot({ width, height: 220, legend: { live: false }, ...opts, axes }, data, box);
}

const timeOpts = (series, yValues) => ({
  tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), TZ),
  series: [{}, ...series],
  axes: [{}, { values: yValues, size: 60 }],
});

// Bars per category (x = 0..n-1); two series sit side by side, left and right of the tick.
// Labels are thinned out to what the width holds.
function categoryOpts(labels, series) {
  const side = series.length > 1;
  return {
    // counts: the y axis starts at 0 (a bar of 1 is a third of a bar of 3), whole-number ticks
    scales: { x: { time: false, range: [-0.5, labels.length - 0.5] },
      y: { range: (u, min, max) => [0, Math.max(1, Math.ceil((max || 0) * 1.1))] } },
    series: [{}, ...series.map((s, i) => ({
      paths: window.uPlot.paths.bars({ size: [side ? 0.35 : 0.7, 40], align: side ? (i ? 1 : -1) : 0 }),
      points: { show: false }, ...s }))],
    axes: [{ splits: () => labels.map((_, i) => i), gap: 4, size: 40,
      values: (u, splits) => {
        const every = Math.max(1, Math.ceil((labels.length * 56) / (u.bbox.width / devicePixelRatio)));
        return splits.map((i) => (i % every ? '' : labels[i]));
      } }, { size: 50, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5] }],
  };
}

const SHORT = (s) => (s < 60 ? s + 's' : s < 3600 ? s / 60 + 'm' : s / 3600 + 'h');

function draw(all, byChannel, byTag, byAgent) {
  const xs = all.buckets.map((ms) => ms / 1000);
  // volume by channel: conversations started per bucket
  const chans = byChannel.groups.slice(0, PALETTE.length);
  place('chart-volume', timeOpts(chans.map((g, i) => ({ label: g.key, stroke: PALETTE[i],
    width: 2 }))), [xs, ...chans.map((g) => g.series.conversations)],
  chans.length ? '' : t('dash.no_data'));
  // response-time distribution: the histogram's bins
  const h = all.histogram;
  const binLabels = h.first_response.map((_, i) => (i < h.edges_s.length
    ? '≤' + SHORT(h.edges_s[i]) : '>' + SHORT(h.edges_s[h.edges_s.length - 1])));
  const anyResp = h.first_response.some((n) => n) || h.next_response.some((n) => n);
  place('chart-response', categoryOpts(binLabels, [
    { label: t('dash.kpi.first_response'), fill: PALETTE[0] + 'cc', stroke: PALETTE[0] },
    { label: t('dash.kpi.next_response'), fill: PALETTE[1] + '99', stroke: PALETTE[1] }]),
  [binLabels.map((_, i) => i), h.first_response, h.next_response],
  anyResp ? '' : t('dash.no_data'));
  // SLA compliance over time, in %
  const sla = all.total.series.sla_compliance.map((v) => (v === null ? null : 100 * v));
  place('chart-sla', { ...timeOpts([{ label: t('dash.kpi.sla'), stroke: PALETTE[2], width: 2,
    spanGaps: true }], (u, v) => v.map((x) => x + ' %')), scales: { y: { range: [0, 100] } } },
  [xs, sla], all.available.sla ? '' : t('dash.no_data_sla'));
  // CSAT trend
  place('chart-csat', { ...timeOpts([{ label: t('dash.kpi.csat'), stroke: PALETTE[4], width: 2,
    spanGaps: true }]), scales: { y: { range: [1, 5] } } },
  [xs, all.total.series.csat_avg], all.available.csat ? '' : t('dash.no_data_csat'));
  // top tags: conversations per tag
  const tags = byTag.groups.filter((g) => g.totals.conversations || g.totals.messages_in)
    .slice(0, 10);
  place('chart-tags', categoryOpts(tags.map((g) => g.key), [{ label: t('dash.kpi.conversations'),
    fill: PALETTE[5] + 'cc', stroke: PALETTE[5] }]),
  [tags.map((_, i) => i), tags.map((g) => g.totals.conversations)],
  tags.length ? '' : t('dash.no_data'));
  // agents' load: conversations assigned to each, and their replies (the table has more)
  // people only: replies sent with an API token are in the totals and the table, marked "API"
  const agents = byAgent.groups.filter((g) => !g.api).sort((a, b) => b.totals.replies - a.totals.replies)
    .slice(0, 12);
  place('chart-agents', categoryOpts(agents.map((g) => g.key), [
    { label: t('dash.kpi.assigned'), fill: PALETTE[0] + 'cc', stroke: PALETTE[0] },
    { label: t('dash.kpi.replies'), fill: PALETTE[1] + 'aa', stroke: PALETTE[1] }]),
  [agents.map((_, i) => i), agents.map((g) => g.totals.assigned),
    agents.map((g) => g.totals.replies)],
  agents.length ? '' : t('dash.no_data'));
}

const COLUMNS = [
  ['conversations', num], ['messages_in', num], ['replies', num],
  ['first_response_avg_s', duration], ['first_response_p90_s', duration],
  ['next_response_avg_s', duration], ['handle_time_avg_s', duration],
  ['resolution_avg_s', duration], ['reopen_rate', pct], ['sla_compliance', pct],
  ['csat_avg', (v) => num(v, 2)], ['nps', num], ['deflection_rate', pct]];

function table(rep) {
  const tbl = $('#dash-rows');
  const head = document.createElement('tr');
  for (const c of ['dash.by.' + ($('#dash-by').value), ...COLUMNS.map(([k]) => 'dash.col.' + k)]) {
    const th = document.createElement('th'); th.textContent = t(c); head.append(th);
  }
  const rows = rep.groups.map((g) => {
    const tr = document.createElement('tr');
    const name = document.createElement('th'); name.textContent = (g.key || '–') + (g.api ? ' (API)' : ''); tr.append(name);
    for (const [k, fmt] of COLUMNS) {
      const td = document.createElement('td'); td.textContent = fmt(g.totals[k]); tr.append(td);
    }
    return tr;
  });
  if (!rows.length) {
    const tr = document.createElement('tr'); const td = document.createElement('td');
    td.colSpan = COLUMNS.length + 1; td.className = 'empty'; td.textContent = t('dash.no_data');
    tr.append(td); rows.push(tr);
  }
  tbl.replaceChildren(head, ...rows);
}

function csvLinks(params) {
  for (const kind of ['totals', 'series', 'histogram']) {
    $('#csv-' + kind).href = '/api/v1/reports/kpis' + query({ ...params, format: 'csv', table: kind });
  }
}

async function loadTable(r) {
  const params = { ...r, by: $('#dash-by').value };
  csvLinks(params);
  table(await get('/reports/kpis' + query(params)));
}

async function load() {
  const r = range(Number($('#dash-range').value));
  document.body.dataset.ready = '0';
  $('#dash-error').textContent = '';
  $('#dash-zone').textContent = t('dash.zone', { tz: TZ });
  try {
    const [all, byChannel, byTag, byAgent] = await Promise.all([
      get('/reports/kpis' + query(r)),
      get('/reports/kpis' + query({ ...r, by: 'channel' })),
      get('/reports/kpis' + query({ ...r, by: 'tag' })),
      get('/reports/kpis' + query({ ...r, by: 'agent' })),
      loadTable(r)]);
    cards(all.total.totals, all.available);
    draw(all, byChannel, byTag, byAgent);
    document.body.dataset.ready = '1';
  } catch (err) {
    $('#dash-error').textContent = t('dash.failed', { why: err.message || String(err) });
  }
}

let resizeTimer = null;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    for (const [id, u] of Object.entries(charts)) {
      const box = document.querySelector(`#${id} .plot`);
      u.setSize({ width: Math.max(260, box.clientWidth), height: 220 });
    }
  }, 150);
});
$('#dash-range').addEventListener('change', load);
$('#dash-by').addEventListener('change', () => loadTable(range(Number($('#dash-range').value)))
  .catch((err) => { $('#dash-error').textContent = t('dash.failed', { why: err.message }); }));
load();
