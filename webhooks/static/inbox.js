// The inbox: conversations the agent may see, with filters, search, unread badges and counts
// per queue. Uses GET /inbox; on a server without it, GET /conversations (queue and status
// filters on the server, channel/tag/assignee here; no search, SLA or unread).
import { ApiError, get, has, query } from './api.js';
import { createBulk } from './bulk.js';
import { $, clear, el, fmtRelative, fmtTime, t } from './ui.js';

export function createInbox(ctx) {
  const list = $('#conv-list');
  const more = $('#more-convs');
  const f = {
    q: $('#search'), queue: $('#f-queue'), status: $('#f-status'), channel: $('#f-channel'),
    tag: $('#f-tag'), assignee: $('#f-assignee'), sla: $('#f-sla'), mentions: $('#f-mentions'),
    since: $('#f-since'), until: $('#f-until'),
  };
  let useInbox = has('GET', '/inbox');
  let items = [];
  let cursor = null;
  let selected = null;
  let timer = null;
  let loading = 0;
  const names = new Map();     // customer id -> name (fallback mode)
  const picked = new Set();    // conversations ticked for the bulk bar
  let lastPick = null;         // the row a shift-click ranges from
  let prune = false;           // after a bulk action: keep picked only what the list still shows
  const previews = new Map();  // conversation id -> [updated_ts, text] (fallback mode)

  function fallbackControls() {
    for (const k of ['q', 'sla', 'since', 'until']) f[k].closest('.filter').hidden = true;
  }
  if (!useInbox) fallbackControls();
  for (const o of f.queue.options) if (o.value) o.textContent = ctx.queueLabel(o.value);

  function params(next) {
    const p = { queue: f.queue.value, status: f.status.value, cursor: next || undefined, limit: 50 };
    if (useInbox) {
      Object.assign(p, { channel: f.channel.value, tag: f.tag.value.trim(),
        assignee: f.assignee.value, sla: f.sla.value, q: f.q.value.trim(),
        since: day(f.since.value, 'T00:00:00'), until: day(f.until.value, 'T23:59:59.999') });
    }
    return p;
  }

  // A date input's day in the agent's time zone, as ms (GET /inbox's since/until: a search
  // keeps the messages of those days, a list the conversations active in them).
  function day(value, time) {
    const ms = value ? new Date(value + time).getTime() : NaN;
    return Number.isFinite(ms) ? ms : undefined;
  }

  function localFilter(c) {
    if (useInbox) return true;
    const tag = f.tag.value.trim();
    const who = f.assignee.value;
    if (f.channel.value && c.channel_id !== f.channel.value) return false;
    if (tag && !(c.tags || []).includes(tag)) return false;
    if (who === 'me' && c.assignee !== ctx.me.name) return false;
    if (who === 'none' && c.assignee) return false;
    return true;
  }

  async function fetchPage(next) {
    if (useInbox) {
      try {
        return await get('/inbox' + query(params(next)));
      } catch (e) {
        if (!(e instanceof ApiError && e.missingRoute)) throw e;
        useInbox = false;
        fallbackControls();
      }
    }
    return get('/conversations' + query(params(next)));
  }

  // Fallback mode: the customer's name and the last message, fetched once per change.
  async function decorate(convs) {
    await Promise.all(convs.slice(0, 30).map(async (c) => {
      if (c.customer_name === undefined && !names.has(c.customer_id)) {
        try {
          names.set(c.customer_id, (await get('/customers/' + c.customer_id)).name || '');
        } catch { names.set(c.customer_id, ''); }
      }
      if (c.last_message === undefined) {
        const seen = previews.get(c.id);
        if (!seen || seen[0] !== c.updated_ts) {
          try {
            // the newest that is not a system line (as /inbox does: those are in the timeline,
            // in the console's language; their stored text is the server's English)
            const page = await get(`/conversations/${c.id}/messages?limit=5`);
            const m = page.items.find((x) => !(x.direction === 'internal' && x.kind === 'system'))
              || null;
            previews.set(c.id, [c.updated_ts, m ? (m.text || m.subject || '') : '']);
          } catch { previews.set(c.id, [c.updated_ts, '']); }
        }
      }
    }));
    for (const c of convs) {
      if (c.customer_name === undefined) c.customer_name = names.get(c.customer_id) || '';
      if (c.last_message === undefined) c.last_message = (previews.get(c.id) || [0, ''])[1];
    }
  }

  // "Mentioning me": the conversations whose notes name me, newest mention first, each with
  // that note as its preview (GET /mentions; the other filters wait meanwhile).
  async function loadMentions() {
    const mine = ++loading;
    let convs;
    try {
      const page = await get('/mentions' + query({ limit: 100 }));
      const latest = new Map();
      for (const m of page.items) if (!latest.has(m.conversation_id)) latest.set(m.conversation_id, m);
      convs = (await Promise.all([...latest.keys()].slice(0, 50).map(
        (id) => get('/conversations/' + encodeURIComponent(id)).catch(() => null)))).filter(Boolean);
      for (const c of convs) {
        const m = latest.get(c.id);
        c.last_message = `@${m.author_id || '?'}: ${m.text || ''}`;
      }
      await decorate(convs);
    } catch (e) {
      ctx.error(e);
      return;
    }
    if (mine !== loading) return;
    items = convs;
    cursor = null;
    render();
  }

  async function load(append) {
    if (f.mentions && f.mentions.checked) return loadMentions();
    const mine = ++loading;
    let page;
    try {
      page = await fetchPage(append ? cursor : null);
    } catch (e) {
      ctx.error(e);
      return;
    }
    const got = page.items.filter(localFilter);
    await decorate(got);
    if (mine !== loading) return; // a newer load started meanwhile
    items = append ? items.concat(got) : got;
    cursor = page.next_cursor;
    if (prune) {
      prune = false;
      for (const id of [...picked]) if (!items.some((c) => c.id === id)) picked.delete(id);
    }
    renderCounts(page.counts);
    render();
  }

  function renderCounts(counts) {
    const box = clear($('#queue-counts'));
    if (!counts) return;
    let total = 0;
    for (const q of ctx.queues) {
      const n = counts[q] || 0;
      total += n;
      box.append(el('button', {
        type: 'button', class: 'chip' + (f.queue.value === q ? ' active' : ''),
        title: t('inbox.unread_in', { queue: q }),
        onclick: () => { f.queue.value = f.queue.value === q ? '' : q; load(false); },
      }, ctx.queueLabel(q), n ? el('span', { class: 'badge', text: n }) : null));
    }
    document.title = (total ? `(${total}) ` : '') + t('app.title');
  }

  function render() {
    clear(list);
    if (!items.length) list.append(el('li', { class: 'empty', text: t('inbox.empty') }));
    for (const c of items) list.append(row(c));
    more.hidden = !cursor;
    bar.update(picked.size, items.length);
  }

  // Ticking a row's box picks it; shift-click picks (or unpicks) the range from the last one.
  function pick(c, e) {
    e.stopPropagation();
    const on = e.target.checked;
    const from = items.findIndex((x) => x.id === lastPick);
    const to = items.findIndex((x) => x.id === c.id);
    const range = e.shiftKey && from >= 0 ? items.slice(Math.min(from, to), Math.max(from, to) + 1) : [c];
    for (const x of range) { if (on) picked.add(x.id); else picked.delete(x.id); }
    lastPick = c.id;
    for (const box of list.querySelectorAll('input.pick')) box.checked = picked.has(box.dataset.id);
    bar.update(picked.size, items.length);
  }

  function pickPage(on) {
    for (const c of items) { if (on) picked.add(c.id); else picked.delete(c.id); }
    render();
  }

  // after a bulk action: keep only ``keep`` picked (the refused ones)
  function unpick(keep) {
    picked.clear();
    for (const id of keep || []) picked.add(id);
    prune = Boolean(keep);
    render();
  }

  function preview(m) {
    if (!m) return '';
    return typeof m === 'string' ? m : (m.text || '');
  }

  function row(c) {
    const due = c.sla_due_ts;
    const late = c.sla_breached || (due && due < Date.now());
    return el('li', {
      class: 'conv' + (c.id === selected ? ' selected' : '') + (c.unread ? ' unread' : ''),
      dataset: { id: c.id }, tabindex: 0, role: 'option',
      'aria-selected': c.id === selected ? 'true' : 'false',
      onclick: () => open(c.id),
      onkeydown: (e) => { if (e.key === 'Enter' && e.target === e.currentTarget) open(c.id); },
    },
    bulkOn ? el('input', { type: 'checkbox', class: 'pick', dataset: { id: c.id }, checked: picked.has(c.id),
      'aria-label': t('bulk.pick', { id: c.id }), onclick: (e) => pick(c, e) }) : null,
    el('div', { class: 'conv-top' },
      el('span', { class: 'conv-name', text: c.customer_name || t('customer.unnamed', { id: c.customer_id }) }),
      c.unread ? el('span', { class: 'badge unread-count', text: c.unread, title: t('inbox.unread') }) : null,
      el('time', { class: 'conv-time', text: fmtTime(c.updated_ts) })),
    el('div', { class: 'conv-preview', text: preview(c.last_message) }),
    el('div', { class: 'conv-meta' },
      el('span', { class: 'badge channel', text: c.channel_id }),
      el('span', { class: 'queue', title: c.queue, text: ctx.queueLabel(c.queue) }),
      el('span', { class: 'status status-' + c.status, text: t('status.' + c.status) }),
      el('span', { class: 'assignee', text: c.assignee ? '@' + c.assignee : t('inbox.unassigned') }),
      c.priority ? el('span', { class: 'priority', text: 'P' + c.priority }) : null,
      due ? el('span', { class: 'sla' + (late ? ' late' : ''),
        text: (late ? t('sla.breached') : t('sla.due')) + ' ' + fmtRelative(due) }) : null));
  }

  function open(id) {
    select(id);
    ctx.open(id);
  }

  function select(id) {
    selected = id;
    for (const li of list.querySelectorAll('li.conv')) {
      const on = li.dataset.id === id;
      li.classList.toggle('selected', on);
      li.setAttribute('aria-selected', on ? 'true' : 'false');
      if (on) li.scrollIntoView({ block: 'nearest' });
    }
  }

  function step(delta) {
    if (!items.length) return;
    const i = items.findIndex((c) => c.id === selected);
    const j = i < 0 ? 0 : Math.min(items.length - 1, Math.max(0, i + delta));
    open(items[j].id);
  }

  // Many events arrive together (a burst of messages): one reload for all of them.
  function soon() {
    clearTimeout(timer);
    timer = setTimeout(() => load(false), 250);
  }

  function markRead(id) {
    const c = items.find((x) => x.id === id);
    if (c && c.unread) { c.unread = 0; render(); soon(); } // soon: the counts per queue
  }

  if (!has('GET', '/mentions')) f.mentions.closest('.filter').hidden = true;
  f.mentions.addEventListener('change', () => {
    for (const k of ['queue', 'status', 'channel', 'assignee', 'sla', 'tag', 'q', 'since', 'until']) f[k].disabled = f.mentions.checked;
    load(false);
  });
  for (const k of ['queue', 'status', 'channel', 'assignee', 'sla', 'since', 'until']) {
    f[k].addEventListener('change', () => load(false));
  }
  let typing = null;
  for (const k of ['q', 'tag']) {
    f[k].addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(() => load(false), 300); });
  }
  more.addEventListener('click', () => load(true));

  const bulkOn = has('POST', '/conversations/bulk');
  const bar = createBulk({ ...ctx, changed: () => load(false) }, { picked: () => [...picked], pickPage, unpick,
    pickedOnPage: () => items.filter((c) => picked.has(c.id)).length });

  return { load: () => load(false), soon, next: () => step(1), prev: () => step(-1), select,
    markRead, focusSearch: () => (f.q.closest('.filter').hidden ? f.tag : f.q).focus() };
}
