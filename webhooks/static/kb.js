// The bot's knowledge base (templates/kb.html) over /api/v1/kb: the articles, searchable
// without diacritics; one open in a form with a part per language; "try it" asks
// POST /kb/match which article a question gets; the bot's counts from GET /kb/stats.
// Everyone signed in reads; boot.can_edit (supervisors, admins) adds new / save / delete.
import { ApiError, api, get, post } from './api.js';
import { $, clear, el, fmtFull, setLanguage, t, toast, tr } from './ui.js';

const boot = JSON.parse(document.getElementById('boot').textContent);
setLanguage(boot.language, boot.strings);
const EDIT = !!boot.can_edit;
const LANGS = ['vi', 'en', 'zh-Hans', 'zh-Hant'];
// the articles' variant in the console's language (a Chinese console: Simplified)
const MINE = boot.language === 'zh' ? 'zh-Hans' : boot.language;
const ID = /^[a-z0-9][a-z0-9_.-]{0,47}$/;

let items = [];
let current = null; // the open article (null: a new one)
let idTouched = false;

// "Nạp thẻ" -> "nap the": how customers type, and how the search box compares
export function fold(s) {
  return String(s || '').normalize('NFD').replace(/[\u0300-\u036f]/g, '')
    .replace(/[đĐ]/g, 'd').toLowerCase();
}

function slug(s) {
  return fold(s).replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 48);
}

const langName = (lang) => tr('kb.lang.' + lang, {}, lang);

function fieldName(path) {
  const m = /^(?:body\.)?variants\.([^.]+)\.(title|body|keywords)/.exec(path);
  if (m) return `${t('kb.field.' + m[2])} (${langName(m[1])})`;
  if (/(^|\.)tags/.test(path)) return t('kb.tags');
  return path;
}

// An API error in the console's language: the named case, else the kind of refusal.
function explain(e) {
  if (!(e instanceof ApiError)) return e && e.message ? e.message : String(e);
  if (e.status === 0) return t('error.network');
  const p = { ...e.params };
  if (p.language) p.language = langName(p.language);
  if (e.reason === 'invalid_fields') {
    p.fields = [...new Set((p.fields || []).map(fieldName))].join(', ');
  }
  const known = e.reason ? tr('error.' + e.reason, p, '') : '';
  if (known) return known;
  const kind = tr('error.status.' + e.status, {}, '');
  return kind ? `${kind} (${e.message})` : e.message;
}

function title(a) {
  for (const lang of [MINE, ...LANGS]) {
    if (a.variants[lang]) return a.variants[lang].title;
  }
  return a.id;
}

// what the hub's search found for the box's text (GET /kb/articles?q=): it folds Traditional
// Chinese as Simplified ("发货" finds "訂單什麼時候發貨？") as the inbox search and the bot do
let found = { q: '', ids: new Set() };
let searchTimer = null;

function matches(a, q, raw) {
  if (!q && !raw) return true;
  if (found.q === raw && found.ids.has(a.id)) return true;
  const hay = [a.id, ...a.tags];
  for (const v of Object.values(a.variants)) hay.push(v.title, ...(v.keywords || []));
  return !!q && fold(hay.join(' \n ')).includes(q);
}

function searchHub() {
  clearTimeout(searchTimer);
  const raw = $('#kb-search').value.trim();
  if (!raw) return;
  searchTimer = setTimeout(async () => {
    try {
      const page = await get('/kb/articles?q=' + encodeURIComponent(raw));
      if ($('#kb-search').value.trim() !== raw) return; // typed on meanwhile
      found = { q: raw, ids: new Set(page.items.map((a) => a.id)) };
      renderList();
    } catch (e) { /* the local filter stays */ }
  }, 150);
}

function renderList() {
  const raw = $('#kb-search').value.trim();
  const q = fold(raw);
  const shown = items.filter((a) => matches(a, q, raw));
  const list = clear($('#kb-list'));
  if (!shown.length) {
    list.append(el('li', { class: 'muted kb-none', text: t(items.length ? 'kb.none_found' : 'kb.empty') }));
    return;
  }
  for (const a of shown) {
    list.append(el('li', {},
      el('button', {
        type: 'button', class: 'kb-item' + (current && current.id === a.id ? ' selected' : ''),
        dataset: { id: a.id }, onclick: () => open(a),
      },
      el('span', { class: 'kb-item-title', text: title(a) }),
      el('span', { class: 'kb-item-meta muted' },
        a.id, ' · ', Object.keys(a.variants).join(' '),
        a.tags.length ? ' · #' + a.tags.join(' #') : ''))));
  }
}

const splitList = (s) => String(s || '').split(/[,，、;\n]/).map((x) => x.trim()).filter(Boolean);

function variantFields(lang, v) {
  const ro = !EDIT;
  const input = (name, value) => {
    const node = el(name === 'body' ? 'textarea' : 'input', {
      name: `${lang}.${name}`, class: 'kb-' + name, readonly: ro, rows: name === 'body' ? 5 : undefined,
      lang, autocomplete: 'off',
    });
    node.value = value || '';
    return node;
  };
  const has = !!v;
  return el('details', { class: 'kb-variant', dataset: { lang }, open: has || lang === 'vi' || lang === MINE },
    el('summary', {}, langName(lang), has ? '' : el('span', { class: 'muted', text: ' · ' + t('kb.lang.empty') })),
    lang === 'zh-Hant' ? el('small', { class: 'muted', text: t('kb.lang.hant_hint') }) : null,
    el('label', { class: 'field' }, el('span', { text: t('kb.field.title') }), input('title', v && v.title)),
    el('label', { class: 'field' }, el('span', { text: t('kb.field.body') }), input('body', v && v.body)),
    el('label', { class: 'field' }, el('span', { text: t('kb.field.keywords') }),
      input('keywords', v && (v.keywords || []).join(', '))));
}

function open(a) {
  current = a;
  idTouched = false;
  $('#kb-pick').hidden = true;
  const form = $('#kb-form');
  form.hidden = false;
  $('#kb-id').value = a ? a.id : '';
  $('#kb-id').readOnly = !!a || !EDIT;
  $('#kb-tags').value = a ? a.tags.join(', ') : '';
  $('#kb-tags').readOnly = !EDIT;
  $('#kb-variants').replaceChildren(...LANGS.map((lang) => variantFields(lang, a && a.variants[lang])));
  $('#kb-updated').textContent = a && a.updated ? t('kb.updated', { when: fmtFull(a.updated) }) : '';
  $('#kb-error').textContent = '';
  const del = $('#kb-delete');
  if (del) del.hidden = !a;
  renderList();
  if (!a) {
    const first = form.querySelector('.kb-variant[data-lang="vi"] .kb-title');
    first.addEventListener('input', () => {
      if (!idTouched && !current) $('#kb-id').value = slug(first.value);
    });
    first.focus();
  }
}

function collect() {
  const variants = {};
  for (const box of document.querySelectorAll('.kb-variant')) {
    const lang = box.dataset.lang;
    const title = box.querySelector('.kb-title').value.trim();
    const body = box.querySelector('.kb-body').value.trim();
    const keywords = splitList(box.querySelector('.kb-keywords').value);
    if (title || body || keywords.length) variants[lang] = { title, body, keywords };
  }
  return { tags: splitList($('#kb-tags').value), variants };
}

async function save(ev) {
  ev.preventDefault();
  const id = $('#kb-id').value.trim();
  const error = $('#kb-error');
  error.textContent = '';
  if (!current && items.some((a) => a.id === id)) {
    error.textContent = t('kb.exists', { id });
    return;
  }
  try {
    const saved = await api('PUT', '/kb/articles/' + encodeURIComponent(id || '-'), collect());
    toast(t('kb.saved', { id: saved.id }));
    await load();
    open(items.find((a) => a.id === saved.id) || saved);
  } catch (e) {
    error.textContent = explain(e);
  }
}

function confirmDelete(id) {
  return new Promise((resolve) => {
    const dlg = $('#kb-confirm');
    $('#kb-confirm-text').textContent = t('kb.confirm_delete', { id });
    dlg.returnValue = '';
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.showModal();
  });
}

async function remove() {
  if (!current) return;
  const id = current.id;
  if (!(await confirmDelete(id))) return;
  try {
    await api('DELETE', '/kb/articles/' + encodeURIComponent(id));
    toast(t('kb.deleted', { id }));
    current = null;
    $('#kb-form').hidden = true;
    $('#kb-pick').hidden = false;
    await load();
  } catch (e) {
    $('#kb-error').textContent = explain(e);
  }
}

const pct = (v) => Math.round(100 * v) + ' %';

async function tryIt(ev) {
  ev.preventDefault();
  const text = $('#kb-try-text').value.trim();
  const out = clear($('#kb-try-result'));
  if (!text) return;
  try {
    const m = await post('/kb/match', { text });
    const a = m.article && items.find((x) => x.id === m.article);
    const vars = { id: m.article || '', title: a ? title(a) : m.article || '',
      confidence: pct(m.confidence), threshold: pct(m.threshold) };
    const key = !m.article ? 'kb.try.nothing' : m.answers ? 'kb.try.answers' : 'kb.try.below';
    out.className = m.answers ? 'kb-try-yes' : 'kb-try-no';
    out.append(el('p', { id: 'kb-try-verdict', text: t(key, vars) }));
    // the confidence as a bar, the threshold a mark on it (CSSOM: the CSP allows no style="")
    const fill = el('span', { class: 'kb-meter-fill' });
    const mark = el('span', { class: 'kb-meter-mark', title: t('kb.try.threshold') });
    fill.style.width = 100 * m.confidence + '%';
    mark.style.left = 100 * m.threshold + '%';
    const bar = el('div', { class: 'kb-meter', title: vars.confidence }, fill, mark);
    if (m.article) out.append(bar);
    if (a) out.append(el('button', { type: 'button', class: 'link', text: t('kb.try.open'), onclick: () => open(a) }));
    if (m.second) out.append(el('p', { class: 'muted', text: t('kb.try.second', { id: m.second }) }));
  } catch (e) {
    out.append(el('p', { class: 'error', text: explain(e) }));
  }
}

async function stats() {
  const table = $('#kb-stats');
  if (!table) return;
  const cols = ['answered', 'helped', 'handoff', 'refused'];
  try {
    const s = await get('/kb/stats');
    const rows = Object.entries(s.channels).sort(([a], [b]) => a.localeCompare(b));
    clear(table);
    if (!rows.length) {
      table.append(el('tr', {}, el('td', { class: 'muted', text: t('kb.stats.empty') })));
      return;
    }
    table.append(el('tr', {}, el('th', { text: t('kb.stats.channel') }),
      cols.map((c) => el('th', { text: t('kb.stats.' + c) }))));
    for (const [ch, n] of [...rows, [t('kb.stats.total'), s.total]]) {
      table.append(el('tr', {}, el('th', { text: ch }), cols.map((c) => el('td', { text: n[c] || 0 }))));
    }
  } catch (e) {
    table.replaceChildren(el('tr', {}, el('td', { class: 'error', text: explain(e) })));
  }
}

async function load() {
  const page = await get('/kb/articles');
  items = page.items;
  renderList();
}

async function start() {
  $('#kb-search').addEventListener('input', () => { renderList(); searchHub(); });
  $('#kb-try-form').addEventListener('submit', tryIt);
  $('#kb-id').addEventListener('input', () => { idTouched = true; });
  if (EDIT) {
    $('#kb-form').addEventListener('submit', save);
    $('#kb-new').addEventListener('click', () => open(null));
    $('#kb-delete').addEventListener('click', remove);
  } else {
    $('#kb-form').addEventListener('submit', (e) => e.preventDefault());
  }
  try {
    await load();
  } catch (e) {
    $('#kb-pick').textContent = explain(e);
  }
  await stats();
  document.body.dataset.ready = '1';
}

start();
