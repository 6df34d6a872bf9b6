// The customer panel (360°): who this is on every channel, what they told us, their other
// conversations, and the identity graph's work: merge suggestions with evidence, merges
// with a Split button.
import { api, get, has, post } from './api.js';
import { createLookups } from './lookups.js';
import { $, ask, clear, el, fmtFull, fmtTime, t, tr } from './ui.js';

export function createCustomerPanel(ctx) {
  const body = $('#customer-body');
  let current = null;
  let conv = null;
  let loading = 0;
  const lookups = createLookups(ctx); // the business's data (orders, top-ups...)

  function clearPanel() {
    current = null;
    lookups.reset();
    clear(body).append(el('p', { class: 'empty', text: t('customer.none') }));
  }

  async function load(id, conversation) {
    current = id;
    conv = conversation || conv;
    const mine = ++loading;
    let cust;
    try {
      cust = await get('/customers/' + id);
    } catch (e) {
      ctx.error(e);
      return null;
    }
    const [sugg, merges] = await Promise.all([
      has('GET', '/customers/{}/suggestions') ? get(`/customers/${id}/suggestions`).then((p) => p.items).catch(() => []) : [],
      has('GET', '/customers/{}/merges') ? get(`/customers/${id}/merges`).then((p) => p.items).catch(() => []) : [],
    ]);
    if (mine !== loading) return cust;
    render(cust, sugg, merges);
    return cust;
  }

  function section(title, ...children) {
    return el('section', { class: 'panel-section' }, el('h3', { text: title }), ...children);
  }

  function render(c, sugg, merges) {
    clear(body);
    body.append(el('div', { class: 'customer-head' },
      el('h2', { class: 'customer-name', text: c.name || t('customer.unnamed', { id: c.id }) }),
      el('span', { class: 'muted', text: '#' + c.id }),
      c.merged_into ? el('p', { class: 'warn', text: t('customer.merged_into', { id: c.merged_into }) }) : null));
    if (c.opted_out) body.append(optedOut(c));

    body.append(section(t('customer.identities'), el('ul', { class: 'plain' },
      c.identities.length ? c.identities.map((i) => el('li', { title: i.external_user_id },
        el('span', { class: 'badge channel', text: i.channel_id }), ' ', el('span', { text: i.address })))
        : el('li', { class: 'muted', text: '—' }))));

    if (c.identifiers && c.identifiers.length) {
      body.append(section(t('customer.identifiers'), el('ul', { class: 'plain' },
        c.identifiers.map((x) => el('li', {},
          el('span', { class: 'muted', text: t('identifier.' + x.kind) + ' ' }),
          el('span', { text: x.value }),
          el('span', { class: x.verified ? 'verified' : 'muted',
            title: x.source ? sourceName(x.source) : '', text: x.verified ? ' ✓ ' + t('identifier.verified') : ' ' + t('identifier.unverified') }))))));
    }

    const tags = (c.tags || []).concat(conv && conv.customer_id === c.id ? conv.tags || [] : []);
    if (tags.length) {
      body.append(section(t('customer.tags'), el('div', {},
        Array.from(new Set(tags)).map((g) => el('span', { class: 'tag', text: g })))));
    }

    if (c.attributes && typeof c.attributes === 'object' && Object.keys(c.attributes).length) {
      body.append(section(t('customer.attributes'), el('dl', { class: 'attrs' },
        Object.entries(c.attributes).map(([k, v]) => [el('dt', { text: k }), el('dd', { text: String(v) })]))));
    }

    body.append(lookups.section(conv && String(conv.customer_id) === String(c.id) ? conv : null));

    body.append(section(t('customer.conversations'), pastConversations(c)));

    if (sugg.length) {
      body.append(section(t('customer.suggestions'), el('ul', { class: 'plain cards' },
        sugg.map((s) => suggestion(c, s)))));
    }
    if (merges.length) {
      body.append(section(t('customer.merges'), el('ul', { class: 'plain cards' },
        merges.map((m) => mergeItem(m)))));
    }
  }

  // They answered "stop" to a broadcast: when, and the word they wrote; a supervisor or an
  // admin lets them back in when they ask for news again (audited on the server).
  function optedOut(c) {
    const o = c.opted_out;
    const may = ctx.me.role !== 'agent' && has('DELETE', '/customers/{}/optout');
    return el('div', { class: 'optout', id: 'customer-optout' },
      el('span', { class: 'warn', text: t('customer.opted_out', { date: o.ts ? fmtFull(o.ts) : '?' })
        + (o.word ? ' ' + t('customer.opted_out_word', { word: o.word }) : '') }),
      may ? el('button', { type: 'button', class: 'secondary small', text: t('customer.opt_in'),
        onclick: () => optIn(c.id) }) : null);
  }

  async function optIn(id) {
    if (!(await ask(t('customer.opt_in_confirm'), [], t('customer.opt_in')))) return;
    try {
      await api('DELETE', `/customers/${id}/optout`);
      ctx.toast(t('customer.opted_in'));
      reload();
    } catch (e) { ctx.error(e); }
  }

  function pastConversations(c) {
    // Newer servers list them on the customer; else the current one is what we know.
    const raw = Array.isArray(c.conversations) ? c.conversations
      : (c.current_conversation_id ? [c.current_conversation_id] : []);
    const list = raw.map((x) => (typeof x === 'object' ? x : { id: String(x) }));
    if (!list.length) return el('p', { class: 'muted', text: '—' });
    return el('ul', { class: 'plain' }, list.map((x) => el('li', {},
      el('button', { type: 'button', class: 'link' + (conv && String(conv.id) === String(x.id) ? ' current' : ''),
        onclick: () => ctx.open(String(x.id)) },
      '#' + x.id,
      x.status ? ' · ' + t('status.' + x.status) : '',
      x.channel_id ? ' · ' + x.channel_id : '',
      x.updated_ts ? ' · ' + fmtTime(x.updated_ts) : ''))));
  }

  function suggestion(c, s) {
    const other = s.customer_ids.find((x) => String(x) !== String(c.id));
    const name = el('span', { text: '#' + other });
    get('/customers/' + other).then((o) => { if (o.name) name.textContent = `${o.name} (#${other})`; }).catch(() => {});
    return el('li', { class: 'card' },
      el('div', {}, t('suggest.maybe') + ' ', name),
      el('ul', { class: 'evidence' }, s.evidence.map((ev) => el('li', {},
        `${tr('identifier.' + ev.kind, {}, ev.kind)} (${sourceName(ev.source)})`,
        evidenceReason(c, other, ev) ? ' — ' + evidenceReason(c, other, ev) : '',
        ev.at ? el('span', { class: 'muted', text: ' · ' + fmtTime(ev.at) }) : null))),
      el('div', { class: 'card-buttons' },
        has('POST', '/customers/{}/merge') ? el('button', { type: 'button', class: 'primary small', text: t('suggest.merge'),
          onclick: () => merge(c.id, other) }) : null,
        has('POST', '/suggestions/{}/dismiss') ? el('button', { type: 'button', class: 'secondary small', text: t('suggest.dismiss'),
          onclick: () => dismiss(s.id) }) : null));
  }

  function sourceName(code) { // how the customer gave it: "typed", "telegram_contact"...
    return code ? tr('identifier.source.' + code, {}, code) : '?';
  }

  // what the evidence proves, in the console's language, from the facts the hub stored
  // (ev.reason, ev.detail, who verified it); evidence of another kind says its own note
  function evidenceReason(c, other, ev) {
    const v = ev.verified || {};
    const here = !!v[String(c.id)];
    const there = !!v[String(other)];
    switch (ev.reason) {
      case 'verified_both': return t('suggest.reason.verified_both');
      case 'unverified':
        if (here && there) return t('suggest.reason.verified_both');
        if (here) return t('suggest.reason.verified_this');
        return there ? t('suggest.reason.verified_other', { id: other }) : t('suggest.reason.verified_none');
      case 'kept_apart': return t('suggest.reason.kept_apart');
      case 'own_account': return t('suggest.reason.own_account', { channel: ev.detail || '?' });
      case 'different_verified':
        return t('suggest.reason.different_verified', { kind: tr('identifier.' + ev.detail, {}, ev.detail || '?') });
      default: return ev.note || '';
    }
  }

  function mergeItem(m) {
    const merged = m.status === 'merged';
    return el('li', { class: 'card' },
      el('div', {}, t('merge.line', { source: m.source_customer_id, target: m.target_customer_id, by: m.by })),
      el('div', { class: 'muted', text: fmtFull(m.at) + (m.why ? ' — ' + m.why : '') }),
      m.split ? el('div', { class: 'muted', text: t('merge.split_line', { by: m.split.by, why: m.split.why || '' }) }) : null,
      merged && has('POST', '/merges/{}/split') ? el('div', { class: 'card-buttons' },
        el('button', { type: 'button', class: 'secondary small', text: t('merge.split'), onclick: () => split(m.id) })) : null);
  }

  async function merge(target, source) {
    const v = await ask(t('suggest.merge_title', { source, target }),
      [{ name: 'why', label: t('why'), type: 'text' }], t('suggest.merge'));
    if (!v) return;
    try {
      await post(`/customers/${target}/merge`, { source_customer_id: String(source), why: v.why });
      ctx.toast(t('suggest.merged'));
      reload();
    } catch (e) { ctx.error(e); }
  }

  async function dismiss(pair) {
    try {
      await post(`/suggestions/${encodeURIComponent(pair)}/dismiss`);
      reload();
    } catch (e) { ctx.error(e); }
  }

  async function split(mergeId) {
    const v = await ask(t('merge.split_title'), [{ name: 'why', label: t('merge.split_why'), type: 'textarea', required: true }],
      t('merge.split'));
    if (!v) return;
    try {
      await post(`/merges/${encodeURIComponent(mergeId)}/split`, { why: v.why });
      ctx.toast(t('merge.split_done'));
      reload();
    } catch (e) { ctx.error(e); }
  }

  function reload() {
    if (current) load(current, conv);
  }

  function onEvent(type, data) {
    const ids = [data.customer_id, data.merged_customer_id, data.restored_customer_id].map(String);
    if (current && ids.includes(String(current))) reload();
  }

  clearPanel();
  return { load, clear: clearPanel, onEvent, reload };
}
