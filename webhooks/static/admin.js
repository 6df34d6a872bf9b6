// The admins' settings (templates/admin.html): channels over /api/v1/admin/channels (health,
// check, disable/enable, a secret set anew, add, remove), users over /users, teams and their
// members over /teams, canned replies over /canned, routing and SLA over /admin/overview.
// Secrets are never in what the server sends: only "set", where from and ••••last 4.
import { ApiError, api, get, post } from './api.js';
import { $, ask, clear, el, fmtRelative, setLanguage, t, toast, tr, uuid } from './ui.js';

const boot = JSON.parse(document.getElementById('boot').textContent);
setLanguage(boot.language, boot.strings);
const teamName = (id) => (boot.teams.find((x) => x.id === id) || { name: id }).name;

// An API error in the console's language: the named case, else the server's words.
function explain(e) {
  if (!(e instanceof ApiError)) return e && e.message ? e.message : String(e);
  if (e.status === 0) return t('error.network');
  const p = { ...e.params };
  if (e.reason === 'invalid_fields') p.fields = (p.fields || []).join(', ');
  const known = e.reason ? tr('error.' + e.reason, p, '') : '';
  return known || e.message || tr('error.status.' + e.status, {}, String(e.status));
}

// On a phone a row is a card (admin.css): each cell names its column from the table's head.
function labelled(tbody, rows) {
  const head = [...tbody.closest('table').tHead.rows[0].cells].map((th) => th.textContent.trim());
  for (const row of rows) [...row.cells].forEach((td, i) => { if (head[i]) td.dataset.label = head[i]; });
  clear(tbody).append(...rows);
}

// Run a change; a refusal shows in ``where`` (a form's .error) or as a toast.
async function change(fn, where, done) {
  if (where) where.textContent = '';
  try {
    const out = await fn();
    if (done) toast(done, 'info');
    return out ?? true;
  } catch (e) {
    if (where) where.textContent = explain(e);
    else toast(explain(e), 'error');
    return null;
  }
}

// -- channels -------------------------------------------------------------------------------
function source(s) {
  if (s.source.env && s.source.default) return t('admin.secret.default', { name: s.source.env });
  if (s.source.env) return tr('admin.secret.env', { name: s.source.env });
  return s.source.sealed ? t('admin.secret.sealed') : t('admin.secret.file');
}

function channelRow(c) {
  const off = !!c.disabled;
  const h = c.last_hour;
  const expiry = c.token_expiry && typeof c.token_expiry === 'object'
    ? Object.entries(c.token_expiry).map(([k, at]) => `${k}: ${fmtRelative(at * 1000)}`).join('; ')
    : (c.token_expiry || '');
  const secrets = el('ul', { class: 'ch-secrets' }, c.secrets.map((s) => el('li', {
    class: 'ch-secret', dataset: { key: s.key },
  },
  el('code', { text: s.key }), ' ',
  el('span', { class: 'ch-mask', text: s.set ? (s.hint || '••••') : t('admin.secret.unset') }), ' ',
  el('span', { class: 'muted', text: `(${source(s)})` }), ' ',
  el('button', { type: 'button', class: 'link ch-rotate', text: t('admin.secret.rotate'),
    onclick: () => rotate(c.id, s.key) }))));
  return el('tr', { class: 'ch-row' + (off ? ' off' : ''), dataset: { id: c.id } },
    el('td', {}, el('strong', { text: c.id }), el('div', { class: 'muted', text: `${c.adapter} · ${c.webhook_path}` })),
    el('td', {},
      el('span', { class: 'ch-state ' + (off ? 'bad' : 'good'),
        text: off ? t('admin.ch.disabled') : t('admin.ch.enabled') }),
      off && c.disabled.why ? el('div', { class: 'muted', text: c.disabled.why }) : null,
      // in the console's language; the adapter's own words on hover
      c.cannot_send ? el('div', { class: 'error', text: t('reach.cannot_send'), title: c.cannot_send }) : null),
    el('td', { class: 'ch-health' },
      el('div', { text: t('admin.ch.last_event') + ': ' +
        (c.last_event_ms ? fmtRelative(c.last_event_ms) : t('admin.ch.never')) }),
      el('div', { text: t('admin.ch.last_hour', { events: h.events, errors: h.errors,
        sent: h.sent, failed: h['send-failed'] }) }),
      expiry ? el('div', { text: t('admin.ch.expiry') + ': ' + expiry }) : null,
      el('div', { class: 'ch-check muted' })),
    el('td', {}, secrets),
    el('td', { class: 'row-buttons' },
      el('button', { type: 'button', class: 'secondary ch-check-go', text: t('admin.ch.check'),
        onclick: (ev) => check(c.id, ev.target.closest('tr')) }),
      el('button', { type: 'button', class: 'secondary ch-toggle',
        text: off ? t('admin.ch.enable') : t('admin.ch.disable'),
        onclick: () => toggle(c, off) }),
      el('button', { type: 'button', class: 'secondary danger ch-remove', text: t('admin.ch.remove'),
        onclick: () => removeChannel(c.id) })));
}

async function loadChannels() {
  const data = await get('/admin/channels');
  labelled($('#channels'), data.items.map(channelRow));
}

async function check(id, row) {
  const box = $('.ch-check', row);
  box.textContent = t('admin.ch.checking');
  const r = await change(() => post(`/admin/channels/${encodeURIComponent(id)}/check`));
  if (!r) { box.textContent = ''; return; }
  const verdict = r.ok === null ? t('admin.ch.check.none') : r.ok ? t('admin.ch.check.ok') : t('admin.ch.check.bad');
  box.textContent = `${verdict}: ${r.lines.join(' · ')}` +
    (r.webhook ? ` — ${t('admin.ch.webhook')}: ${r.webhook}` : '');
  box.className = 'ch-check ' + (r.ok === false ? 'error' : 'muted');
}

async function toggle(c, off) {
  let body;
  if (!off) {
    const a = await ask(t('admin.ch.disable.title', { id: c.id }),
      [{ name: 'why', label: t('admin.ch.why'), value: '' }], t('admin.ch.disable'));
    if (!a) return;
    body = { why: a.why };
  }
  const ok = await change(() => post(`/admin/channels/${encodeURIComponent(c.id)}/${off ? 'enable' : 'disable'}`, body),
    null, off ? t('admin.ch.enabled.done', { id: c.id }) : t('admin.ch.disabled.done', { id: c.id }));
  if (ok) await loadChannels();
}

async function rotate(id, key) {
  const a = await ask(t('admin.secret.title', { id, key }),
    [{ name: 'value', label: t('admin.secret.value'), value: '', required: true }], t('admin.secret.rotate'));
  if (!a || !a.value) return;
  const r = await change(() => api('PUT', `/admin/channels/${encodeURIComponent(id)}/secrets/${encodeURIComponent(key)}`,
    { value: a.value }));
  if (!r) return;
  toast(r.applied === 'restart' ? t('admin.applied.restart') : t('admin.secret.done', { key }), 'info');
  await loadChannels();
}

async function removeChannel(id) {
  const a = await ask(t('admin.ch.remove.title', { id }), [], t('admin.ch.remove'));
  if (!a) return;
  if (await change(() => api('DELETE', `/admin/channels/${encodeURIComponent(id)}`), null,
    t('admin.ch.removed', { id }))) await loadChannels();
}

$('#ch-add-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const err = $('.error', f);
  let settings = {};
  if (f.settings.value.trim()) {
    try { settings = JSON.parse(f.settings.value); } catch { err.textContent = t('admin.ch.settings.json'); return; }
  }
  const r = await change(() => post('/admin/channels', { id: f.id.value.trim(), adapter: f.adapter.value.trim(), settings }, uuid()),
    err);
  if (!r) return;
  toast(r.applied === 'restart' ? t('admin.applied.restart') : t('admin.ch.added', { id: r.id }), 'info');
  f.reset();
  await loadChannels();
});

// -- users ----------------------------------------------------------------------------------
function userRow(u) {
  const role = el('select', { class: 'user-role', 'aria-label': t('admin.user.role') },
    boot.roles.map((r) => el('option', { value: r, text: t('role.' + r) })));
  role.value = u.role;
  role.addEventListener('change', () => patchUser(u.name, { role: role.value }));
  const teams = el('div', { class: 'user-teams' }, boot.teams.map((team) => {
    const box = el('input', { type: 'checkbox', value: team.id, checked: u.teams.includes(team.id) });
    box.addEventListener('change', () => patchUser(u.name, {
      teams: [...teams.querySelectorAll('input:checked')].map((x) => x.value) }));
    return el('label', { class: 'inline' }, box, ' ', team.name);
  }));
  return el('tr', { class: 'user-row' + (u.disabled ? ' off' : ''), dataset: { name: u.name } },
    el('td', {}, el('strong', { text: u.display_name }), el('div', { class: 'muted', text: '@' + u.name })),
    el('td', {}, role),
    el('td', {}, teams),
    el('td', { class: 'user-state', text: u.disabled ? t('admin.user.disabled') : t('admin.user.active') }),
    el('td', { class: 'row-buttons' },
      el('button', { type: 'button', class: 'secondary user-toggle',
        text: u.disabled ? t('admin.user.enable') : t('admin.user.disable'),
        onclick: () => patchUser(u.name, { disabled: !u.disabled }) }),
      el('button', { type: 'button', class: 'secondary user-password', text: t('admin.user.reset'),
        onclick: () => resetPassword(u.name) })));
}

async function loadUsers() {
  const data = await get('/users');
  labelled($('#users'), data.items.map(userRow));
}

async function patchUser(name, body) {
  const ok = await change(() => api('PATCH', `/users/${encodeURIComponent(name)}`, body), null,
    t('admin.user.saved', { name }));
  await Promise.all([loadUsers(), loadTeams()]); // a refusal puts the old value back
  return ok;
}

async function resetPassword(name) {
  const a = await ask(t('admin.user.reset.title', { name }),
    [{ name: 'password', label: t('admin.user.password'), value: '', required: true }], t('admin.user.reset'));
  if (a && a.password) await patchUser(name, { password: a.password });
}

$('#user-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const body = { name: f.name.value.trim().toLowerCase(), display_name: f.display_name.value.trim(),
    role: f.role.value, teams: [...f.querySelectorAll('input[name=teams]:checked')].map((x) => x.value) };
  if (f.password.value) body.password = f.password.value;
  const r = await change(() => post('/users', body, uuid()), $('.error', f), t('admin.user.created', { name: body.name }));
  if (!r) return;
  f.reset();
  await Promise.all([loadUsers(), loadTeams()]);
});

// -- teams and members ----------------------------------------------------------------------
async function loadTeams() {
  const data = await get('/teams');
  clear($('#teams')).append(...data.items.map((team) => el('div', { class: 'admin-team', dataset: { id: team.id } },
    el('h3', { text: team.name }),
    el('div', { class: 'muted', text: t('admin.team.facts', { queues: team.queues.join(', '),
      tier: team.tier ?? '–', assign: tr('admin.assign.' + team.auto_assign, {}, team.auto_assign),
      capacity: team.capacity }) }),
    el('ul', { class: 'team-members' }, team.members.length
      ? team.members.map((m) => el('li', { text: `${m.display_name} (@${m.name}, ${t('role.' + m.role)})` }))
      : el('li', { class: 'muted', text: t('admin.team.empty') })))));
}

// -- canned replies -------------------------------------------------------------------------
const cannedForm = $('#canned-form');

function editCanned(c) {
  const f = cannedForm;
  f.id.value = c ? c.id : '';
  f.shortcut.value = c ? c.shortcut : '';
  f.title.value = c ? c.title : '';
  f.text.value = c ? c.text : '';
  f.team.value = c && c.team ? c.team : '';
  $('#canned-save').textContent = c ? t('admin.canned.save') : t('admin.canned.add');
  $('#canned-cancel').hidden = !c;
  $('.error', f).textContent = '';
  if (c) f.shortcut.focus();
}

async function loadCanned() {
  const data = await get('/canned?limit=200');
  labelled($('#canned'), data.items.map((c) => el('tr', { class: 'canned-row', dataset: { id: c.id } },
    el('td', {}, el('code', { text: c.shortcut }), c.title ? el('div', { class: 'muted', text: c.title }) : null),
    el('td', { class: 'canned-text', text: c.text }),
    el('td', { text: c.team ? teamName(c.team) : t('admin.canned.everyone') }),
    el('td', { class: 'row-buttons' },
      el('button', { type: 'button', class: 'secondary canned-edit', text: t('admin.canned.edit'), onclick: () => editCanned(c) }),
      el('button', { type: 'button', class: 'secondary danger canned-delete', text: t('admin.canned.delete'),
        onclick: async () => {
          const a = await ask(t('admin.canned.delete.title', { shortcut: c.shortcut }), [], t('admin.canned.delete'));
          if (a && await change(() => api('DELETE', `/canned/${encodeURIComponent(c.id)}`))) await loadCanned();
        } })))));
}

cannedForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = cannedForm;
  const body = { shortcut: f.shortcut.value.trim(), title: f.title.value.trim(), text: f.text.value,
    team: f.team.value || null };
  const id = f.id.value;
  const r = await change(() => (id ? api('PATCH', `/canned/${encodeURIComponent(id)}`, body)
    : post('/canned', body, uuid())), $('.error', f), t('admin.canned.saved', { shortcut: body.shortcut }));
  if (!r) return;
  editCanned(null);
  await loadCanned();
});
$('#canned-cancel').addEventListener('click', () => editCanned(null));

// -- routing and SLA (read-only) ------------------------------------------------------------
const dur = (s) => (s == null ? '–' : s >= 3600 && s % 3600 === 0 ? `${s / 3600} h` : `${Math.round(s / 60)} min`);

function table(head, rows) {  // scrolls sideways in its card on a phone, like the others
  return el('div', { class: 'table-scroll' }, el('table', { class: 'dash-rows stack' },
    el('thead', {}, el('tr', {}, head.map((h) => el('th', { text: h })))),
    el('tbody', {}, rows.map((r) => el('tr', {}, r.map((v, i) => el('td', { text: v, dataset: { label: head[i] } })))))));
}

// A rule's conditions as written ("tags_any: payment, refund"), the empty ones left out.
function condition(rule) {
  const shown = (v) => (Array.isArray(v) ? v.join(', ') : typeof v === 'object' ? JSON.stringify(v) : String(v));
  return Object.entries(rule).filter(([k, v]) => !['queue', 'priority'].includes(k) && v !== null &&
    v !== '' && !(Array.isArray(v) && !v.length) && !(typeof v === 'object' && !Object.keys(v).length))
    .map(([k, v]) => `${k}: ${shown(v)}`).join('; ') || '*';
}

async function loadOverview() {
  const o = await get('/admin/overview');
  const r = o.routing;
  $('#config-state').textContent = t('admin.config', { path: o.config.path, version: o.config.version }) +
    (o.config.problems.length ? ' — ' + o.config.problems.join(' ') : '');
  clear($('#routing')).append(
    el('p', { text: t('admin.routing.queues', { queues: r.queues.join(', '), fallback: r.default_queue }) }),
    table([t('admin.routing.when'), t('admin.routing.queue'), t('admin.routing.priority')],
      r.rules.map((x) => [condition(x), x.queue, x.priority ?? ''])));
  const s = o.sla;
  clear($('#sla')).append(
    el('p', { text: t('admin.sla.defaults', { first: dur(s.first_response), next: dur(s.next_response) }) }),
    s.policies.length + Object.keys(s.queues).length === 0 ? '' :
    table([t('admin.sla.name'), t('admin.sla.applies'), t('admin.sla.first'), t('admin.sla.next')], [
      ...s.policies.map((p) => [p.name || '', [...(p.adapters || []), ...(p.channels || [])].join(', ') || '*',
        dur(p.first_response), dur(p.next_response)]),
      ...Object.entries(s.queues).map(([q, x]) => [t('admin.routing.queue') + ' ' + q, q, dur(x.first_response), dur(x.next_response)]),
    ]));
}

Promise.all([loadChannels(), loadUsers(), loadTeams(), loadCanned(), loadOverview()])
  .catch((e) => toast(explain(e), 'error'))
  .finally(() => { document.body.dataset.ready = '1'; });
