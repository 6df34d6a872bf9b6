// The business's data in the customer panel: each lookup (orders, top-ups, account state) for
// the open conversation, from GET /conversations/{id}/lookups. The server answers at once
// (cache, or "loading" while it fetches in the background); this asks again every retry_ms
// while any is loading, and gives up after the lookup's timeout_ms, showing "timed out": never
// a spinner that stays. A refresh button fetches again (?refresh=1).
import { get, has } from './api.js';
import { el, fmtTime, t, tr } from './ui.js';

const FINAL = new Set(['ok', 'not_found', 'timeout', 'error', 'circuit_open', 'no_input']);

export function createLookups(ctx) {
  const node = el('section', { class: 'panel-section lookups', hidden: true });
  let convId = null;
  let timer = null;
  let generation = 0;

  function available() {
    return has('GET', '/conversations/{}/lookups');
  }

  // Called on every render of the panel: the same node, reloaded only for another conversation.
  function section(conv) {
    if (!available() || !conv) { node.hidden = true; return node; }
    if (String(conv.id) !== convId) load(String(conv.id), false);
    return node;
  }

  async function load(id, refresh) {
    convId = id;
    clearTimeout(timer);
    const mine = ++generation;
    const started = Date.now();
    // labels in the page's language (chosen, or the browser's: not always the user's setting)
    const lang = '?lang=' + encodeURIComponent(document.documentElement.lang);
    let query = lang + (refresh ? '&refresh=1' : '');
    for (;;) {
      let page;
      try {
        page = await get(`/conversations/${id}/lookups${query}`);
      } catch (e) {
        if (mine === generation) { node.hidden = true; ctx.error(e); }
        return;
      }
      if (mine !== generation) return;
      query = lang;
      const items = page.items || [];
      const loading = items.filter((x) => !FINAL.has(x.state));
      const waited = Date.now() - started;
      if (loading.length) {
        // past the longest timeout the server gave, a lookup still loading has timed out
        const limit = Math.max(...loading.map((x) => x.timeout_ms || 5000)) + 1000;
        if (waited > limit) {
          for (const x of loading) x.state = 'timeout';
        }
      }
      render(items);
      if (!items.some((x) => x.state === 'loading')) return;
      await new Promise((res) => { timer = setTimeout(res, Math.max(200, ...items.map((x) => x.retry_ms || 0))); });
      if (mine !== generation) return;
    }
  }

  function render(items) {
    node.replaceChildren();
    node.hidden = !items.length;
    if (!items.length) return;
    node.append(el('h3', {}, t('lookup.title'), ' ',
      el('button', { type: 'button', class: 'link small lookup-refresh', title: t('lookup.refresh'),
        'aria-label': t('lookup.refresh'), text: '↻', onclick: () => convId && load(convId, true) })));
    for (const x of items) node.append(lookup(x));
  }

  function lookup(x) {
    const box = el('div', { class: 'lookup', dataset: { lookup: x.name, state: x.state } },
      el('h4', {}, x.title, x.fetched_ts && x.state !== 'loading'
        ? el('span', { class: 'muted', text: ' · ' + fmtTime(x.fetched_ts) }) : null));
    if (x.state === 'ok') {
      box.append(el('ul', { class: 'plain lookup-rows' }, (x.rows || []).map((r) => el('li', { class: 'lookup-row' },
        el('dl', { class: 'attrs' }, r.fields.map((f) => [
          el('dt', { text: f.label }),
          el('dd', {}, el('span', { class: f.colour ? 'status-' + f.colour : null,
            text: f.value === null || f.value === undefined ? '—' : String(f.value) }))]))))));
      for (const s of x.suggestions || []) {
        if (!s.canned) continue;
        box.append(el('p', { class: 'lookup-suggestion' }, t('lookup.suggested') + ' ',
          el('button', { type: 'button', class: 'link', text: s.canned, onclick: () => useCanned(s.canned) })));
      }
    } else {
      const vars = { reason: x.reason || '', missing: (x.missing || []).join(', '),
        until: x.until ? fmtTime(x.until) : '' };
      box.append(el('p', { class: 'lookup-state state-' + x.state, role: x.state === 'loading' ? 'status' : null,
        text: tr('lookup.state.' + x.state, vars, x.state) }));
    }
    return box;
  }

  // The suggested canned reply: its shortcut in the reply box, where '/' offers it (Enter).
  function useCanned(shortcut) {
    const draft = document.getElementById('draft');
    if (!draft) return;
    draft.value = shortcut;
    draft.focus();
    draft.setSelectionRange(shortcut.length, shortcut.length);
    draft.dispatchEvent(new Event('input', { bubbles: true }));
  }

  function reset() {
    clearTimeout(timer);
    generation++;
    convId = null;
    node.hidden = true;
    node.replaceChildren();
  }

  return { section, reset, reload: () => convId && load(convId, false) };
}
