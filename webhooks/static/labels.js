// Labels on the open conversation's header: a chip per tag, the ones an agent added by hand
// apart from the rules' (GET /conversations/{id}/labels says which), × to take one off, "+"
// to add one with suggestions from the labels used before and the rules' tags (GET /labels).
// lang: tags are the language detector's: shown, never removable.
import { api, get, has, post, query } from './api.js';
import { $, clear, el, t } from './ui.js';

export function createLabels(ctx) {
  const box = $('#conv-labels');
  const hints = $('#label-hints');
  let convId = null;
  let asked = 0;

  const canAdd = () => has('POST', '/conversations/{}/labels');
  const canRemove = () => has('DELETE', '/conversations/{}/labels/{}');

  // the tags as the conversation lists them at once, then who added which
  async function show(conv) {
    const mine = ++asked;
    const fresh = conv.id !== convId;
    convId = conv.id;
    if (fresh || !box.childElementCount) render((conv.tags || []).map((tag) => ({ tag, source: 'rule' })));
    if (!has('GET', '/conversations/{}/labels')) return;
    try {
      const page = await get(`/conversations/${encodeURIComponent(conv.id)}/labels`);
      if (mine === asked) render(page.items);
    } catch (e) {
      if (mine === asked) ctx.error(e);
    }
  }

  function render(items) {
    const editing = box.querySelector('input.label-input');
    if (editing && document.activeElement === editing) return; // not under the agent's typing
    clear(box);
    for (const x of items) {
      const hand = x.source === 'hand';
      const fixed = x.tag.startsWith('lang:') || !canRemove();
      box.append(el('span', {
        class: 'tag label-chip' + (hand ? ' hand' : ''), dataset: { tag: x.tag, source: x.source },
        title: hand ? t('label.by', { who: x.by || '?' }) : t('label.rule'),
      }, x.tag, fixed ? null : el('button', {
        type: 'button', class: 'chip-x', 'aria-label': t('label.remove', { tag: x.tag }),
        title: t('label.remove', { tag: x.tag }), text: '×', onclick: () => remove(x.tag),
      })));
    }
    if (canAdd()) {
      box.append(el('button', { type: 'button', class: 'label-add link', text: '+ ' + t('label.add'),
        onclick: startAdding }));
    }
  }

  function startAdding() {
    const input = el('input', { type: 'text', class: 'label-input', list: 'label-hints',
      maxlength: 50, 'aria-label': t('label.add'), placeholder: t('label.placeholder') });
    let typing = null;
    input.addEventListener('input', () => {
      clearTimeout(typing);
      typing = setTimeout(() => suggest(input.value), 150);
    });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') { e.preventDefault(); e.stopPropagation(); add(input.value); }
      if (e.key === 'Escape') { e.stopPropagation(); input.blur(); }
    });
    input.addEventListener('blur', () => setTimeout(() => { if (document.activeElement !== input) input.remove(); }, 150));
    box.querySelector('.label-add').before(input);
    input.focus();
    suggest('');
  }

  async function suggest(q) {
    if (!has('GET', '/labels')) return;
    try {
      const page = await get('/labels' + query({ q: q.trim() }));
      clear(hints);
      for (const tag of page.items) hints.append(el('option', { value: tag }));
    } catch { /* suggestions are a help, not a need */ }
  }

  async function add(tag) {
    tag = tag.trim();
    if (!tag || !convId) return;
    try {
      const page = await post(`/conversations/${encodeURIComponent(convId)}/labels`, { tag });
      const input = box.querySelector('input.label-input');
      if (input) input.remove();
      render(page.items);
      ctx.changed();
    } catch (e) { ctx.error(e); }
  }

  async function remove(tag) {
    if (!convId) return;
    try {
      const page = await api('DELETE', `/conversations/${encodeURIComponent(convId)}/labels/${encodeURIComponent(tag)}`);
      render(page.items);
      ctx.changed();
    } catch (e) { ctx.error(e); }
  }

  return { show, add };
}
