// The inbox's bulk bar: one action over the picked conversations (POST /conversations/bulk,
// one Idempotency-Key per press, so a retried request does nothing twice), its outcome in one
// toast in the console's language, the refused ones named with why.
import { ApiError, has, post } from './api.js';
import { $, ask, t, toast, tr, uuid } from './ui.js';

export function createBulk(ctx, inbox) {
  const bar = $('#bulk-bar');
  const all = $('#pick-all');
  const actions = $('#bulk-actions');

  function update(picked, onPage) {
    if (!has('POST', '/conversations/bulk')) { bar.hidden = true; return; }
    bar.hidden = onPage === 0;
    actions.hidden = picked === 0;
    $('#bulk-count').textContent = picked ? t('bulk.count', { n: picked }) : '';
    const mine = inbox.pickedOnPage();
    all.checked = onPage > 0 && mine === onPage;
    all.indeterminate = mine > 0 && mine < onPage;
  }

  async function params(action) {
    if (action === 'assign') {
      const people = await ctx.users();
      const v = await ask(t('bulk.assign'), [{ name: 'assignee', label: t('assign.agent'), type: 'select',
        value: ctx.me.name, options: [{ value: '', label: t('assign.nobody') }].concat(people
          .filter((u) => !u.disabled).map((u) => ({ value: u.name, label: `${u.display_name || u.name} (@${u.name})` }))) },
      { name: 'why', label: t('why'), type: 'text' }], t('action.assign'));
      return v && { assignee: v.assignee || null, why: v.why };
    }
    if (action === 'transfer') {
      const v = await ask(t('bulk.transfer'), [{ name: 'team', label: t('bulk.queue'), type: 'select',
        options: (ctx.teams || []).map((x) => ({ value: x.id,
          label: `${x.name} (${(x.queues || []).map(ctx.queueLabel).join(', ')})` })) },
      { name: 'why', label: t('why'), type: 'text' }], t('action.assign'));
      return v && v.team ? { team: v.team, why: v.why } : null;
    }
    if (action === 'snooze') {
      const inAnHour = new Date(Date.now() + 3600e3 - new Date().getTimezoneOffset() * 60e3);
      const v = await ask(t('bulk.snooze'), [{ name: 'until', label: t('snooze.until'), type: 'datetime',
        value: inAnHour.toISOString().slice(0, 16), required: true }], t('action.snooze'));
      if (!v) return null;
      const until = new Date(v.until).getTime();
      if (!until || until <= Date.now()) { ctx.error(new Error(t('snooze.future'))); return null; }
      return { until_ts: until };
    }
    if (action === 'label' || action === 'unlabel') {
      const v = await ask(t('bulk.' + action), [{ name: 'tag', label: t('label.title'), type: 'text',
        required: true }], t('ok'));
      return v && v.tag.trim() ? { tag: v.tag.trim() } : null;
    }
    return {};
  }

  // "#7: Conversation #7 is already resolved." — the case in the console's language, else the
  // kind of refusal, else the server's words
  function why(r) {
    const said = tr('error.' + r.reason, r.params || {}, '') || tr('error.status.' + r.status, {}, r.message);
    return `#${r.id}: ${said}`;
  }

  async function run(action) {
    if (action === 'clear') { inbox.unpick(); return; }
    const ids = inbox.picked();
    if (!ids.length) return;
    const p = await params(action);
    if (!p) return;
    let out;
    try {
      out = await post('/conversations/bulk', { ids, action, params: p }, uuid());
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) ctx.error(e);
      return;
    }
    const refused = out.results.filter((r) => !r.ok);
    let text = t('bulk.done', { action: t('bulk.' + action).replace('…', ''), ok: out.done, n: out.results.length });
    if (refused.length) text += ' ' + t('bulk.refused', { list: refused.map(why).join('; ') });
    toast(text, refused.length ? 'error' : 'info');
    inbox.unpick(refused.map((r) => r.id)); // the refused stay picked, to try otherwise
    ctx.changed();
  }

  all.addEventListener('change', () => inbox.pickPage(all.checked));
  for (const b of actions.querySelectorAll('[data-bulk]')) {
    b.addEventListener('click', () => run(b.dataset.bulk));
  }
  return { update };
}
