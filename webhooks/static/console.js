// The console's entry point: reads the boot data the page embeds, wires the inbox, the
// conversation and the customer panel together, keeps the live stream (EventSource) open and
// handles keyboard shortcuts, presence and the language choice.
import { ApiError, api, get, has, loadRoutes } from './api.js';
import { createConversation } from './conversation.js';
import { createCustomerPanel } from './customer.js';
import { icon } from './icons.js';
import { createInbox } from './inbox.js';
import { createNotifier } from './notify.js';
import { createSpikes } from './spikes.js';
import { $, isTyping, setLanguage, t, toast, tr } from './ui.js';

const boot = JSON.parse(document.getElementById('boot').textContent);
setLanguage(boot.language, boot.strings);

// A queue as agents know it: the name of the team that works it (its id stays in titles).
function queueLabel(queue) {
  const team = (boot.teams || []).find((x) => (x.queues || []).includes(queue));
  if (!team || !team.name) return queue;
  return team.queues.length > 1 ? `${team.name} · ${queue}` : team.name;
}

// An error in the console's language: the case the server named ("error.<reason>"), else the
// kind of refusal (by HTTP status) followed by the server's own words.
function explain(e) {
  if (!(e instanceof ApiError)) return e && e.message ? e.message : String(e);
  if (e.status === 0) return t('error.network');
  const p = { ...e.params };
  if (e.reason === 'channel_unreachable') p.why = tr('reach.' + p.why, p.detail, e.message);
  if (p.queue) p.queue = queueLabel(p.queue);
  const known = e.reason ? tr('error.' + e.reason, p, '') : '';
  if (known) return known;
  const kind = tr('error.status.' + e.status, {}, '');
  return kind ? `${kind} (${e.message})` : e.message;
}

let usersCache = null;
const ctx = {
  me: boot.me,
  teams: boot.teams,
  queues: boot.queues,
  queueLabel,
  explain,
  toast: (text) => toast(text),
  error: (e) => {
    if (e instanceof ApiError && e.status === 401) return;
    toast(explain(e), 'error');
  },
  users: () => {
    usersCache = usersCache || get('/users').then((p) => p.items).catch(() => []);
    return usersCache;
  },
};

async function start() {
  await loadRoutes();
  const customer = createCustomerPanel({ ...ctx, open: (id) => openConversation(id) });
  const conversation = createConversation({
    ...ctx, customer, open: (id) => openConversation(id),
    changed: () => inbox.soon(),
    read: (id) => inbox.markRead(id),
  });
  const views = setupViews();
  const inbox = createInbox({ ...ctx, open: (id) => { views.conversation(); conversation.open(id); } });
  function openConversation(id) {
    inbox.select(id);
    views.conversation();
    conversation.open(id);
  }
  const notifier = createNotifier({ ...ctx, open: openConversation, pushKey: boot.push_key,
    current: () => { const c = conversation.current(); return c ? String(c.id) : null; } });
  linkedConversations(openConversation);

  setupPresence();
  setupLanguage();
  setupTheme();
  setupShortcuts({ inbox, conversation });
  const spikes = createSpikes(boot.me);
  live({ inbox, conversation, customer, notifier, spikes, open: openConversation });
}

// A conversation named by the address (/console#12: agents' mails, a push notification
// opening a new tab) or by a push notification clicked while this tab is open (sw.js).
function linkedConversations(open) {
  const fromHash = () => {
    const id = decodeURIComponent(window.location.hash.slice(1));
    if (/^[A-Za-z0-9_.:-]+$/.test(id)) open(id);
  };
  fromHash();
  window.addEventListener('hashchange', fromHash);
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.addEventListener('message', (e) => {
      const d = e.data || {};
      if (d.type === 'tongdai.open' && d.conversation_id) open(String(d.conversation_id));
    });
  }
}

// -- narrow screens -------------------------------------------------------------------------
// Up to 700 px the list, the conversation and the customer panel are views one at a time
// (body[data-view], .panel-open); the phone's own back button walks them back (history
// entries); 701-1100 px the panel is a drawer the header's button opens (console.css).
function setupViews() {
  const body = document.body;
  const phone = window.matchMedia('(max-width: 700px)');
  const panelBtn = $('#panel-btn');
  function show(view, panel, push) {
    body.dataset.view = view;
    body.classList.toggle('panel-open', panel);
    panelBtn.setAttribute('aria-expanded', panel ? 'true' : 'false');
    if (push && phone.matches) history.pushState({ tdView: view, tdPanel: panel }, '');
  }
  // back: through the history entries we made, else straight to the view
  function back(view) {
    if (phone.matches && history.state && history.state.tdView) history.back();
    else show(view, false, false);
  }
  window.addEventListener('popstate', (e) => {
    const s = e.state || {};
    show(s.tdView || 'list', Boolean(s.tdPanel), false);
  });
  $('#back-list').addEventListener('click', () => back('list'));
  $('#panel-close').addEventListener('click', () => back('conversation'));
  panelBtn.addEventListener('click', () => {
    if (body.classList.contains('panel-open')) back('conversation');
    else show('conversation', true, true);
  });
  return {
    conversation: () => show('conversation', false, body.dataset.view !== 'conversation'
      || body.classList.contains('panel-open')),
  };
}

// -- live updates ---------------------------------------------------------------------------
function live({ inbox, conversation, customer, notifier, spikes, open }) {
  const dot = $('#live');
  let es = null;
  let lastId = '';
  let loaded = false;
  let retry = null;

  const firstLoad = () => {
    if (!loaded) { loaded = true; inbox.load(); }
  };
  // Lists load once the stream has its position, so nothing falls between the two; if the
  // stream cannot open, load anyway after a moment.
  const fallback = setTimeout(firstLoad, 3000);

  function setLive(on) {
    dot.classList.toggle('on', on);
    dot.title = t(on ? 'live.on' : 'live.off');
    document.body.dataset.live = on ? '1' : '0';
  }

  function handle(type, e) {
    if (e.lastEventId) lastId = e.lastEventId;
    let data = {};
    try { data = JSON.parse(e.data || '{}'); } catch { return; }
    if (type === 'ready') {
      setLive(true);
      clearTimeout(fallback);
      firstLoad();
      return;
    }
    if (type === 'reset') {
      setLive(true);
      clearTimeout(fallback);
      loaded = true;
      inbox.load();
      conversation.reload();
      customer.reload();
      return;
    }
    if (type === 'ended') {
      es.close();
      window.location.assign('/login');
      return;
    }
    if (type === 'spike.detected') { // supervisors and admins only (the stream filters)
      spikes.onEvent(data);
      return;
    }
    if (type === 'presence.changed') {
      if (data.user === boot.me.name) $('#presence').value = data.status;
      return;
    }
    if (type.startsWith('customer.')) {
      customer.onEvent(type, data);
      inbox.soon();
      return;
    }
    if (type === 'note.created' && (data.mentions || []).includes(boot.me.name) &&
        data.author_id !== boot.me.name) {
      toast(t('note.mentioned', { id: data.conversation_id, by: data.author_id || '' }), 'info',
        () => open(String(data.conversation_id)));
    }
    if ((type === 'conversation.sla_breached' || type === 'conversation.sla_warning') &&
        boot.me.role !== 'agent') {
      // supervisors and admins hear of every wait about to slip or slipped (sla.on_* notify)
      const key = type === 'conversation.sla_breached' ? 'sla.breached_toast' : 'sla.warning_toast';
      toast(t(key, { id: data.conversation_id, queue: data.queue ? queueLabel(data.queue) : '' }),
        type === 'conversation.sla_breached' ? 'error' : 'info',
        () => open(String(data.conversation_id)));
    }
    notifier.onEvent(type, data);
    conversation.onEvent(type, data);
    inbox.soon();
  }

  const TYPES = ['ready', 'reset', 'ended', 'message.created', 'message.updated',
    'conversation.open', 'conversation.pending', 'conversation.resolved', 'conversation.assigned',
    'conversation.escalated', 'conversation.deescalated', 'conversation.snoozed', 'conversation.unsnoozed',
    'conversation.created', 'conversation.read', 'conversation.sla_breached',
    'conversation.sla_warning', 'conversation.priority_changed', 'conversation.tagged', 'conversation.untagged', 'note.created', 'presence.changed', 'customer.merged', 'customer.split', 'spike.detected'];

  function connect() {
    const url = '/api/v1/events/stream' + (lastId ? '?last_event_id=' + encodeURIComponent(lastId) : '');
    es = new EventSource(url);
    for (const type of TYPES) es.addEventListener(type, (e) => handle(type, e));
    es.onerror = () => {
      setLive(false);
      // EventSource retries by itself (sending Last-Event-ID) unless the server refused the
      // stream; then check the session and open a new one.
      if (es.readyState === EventSource.CLOSED) {
        clearTimeout(retry);
        retry = setTimeout(async () => {
          try { await get('/users/me'); } catch { return; }
          connect();
        }, 5000);
      }
    };
  }
  connect();
}

// -- presence and language ------------------------------------------------------------------
async function setupPresence() {
  const sel = $('#presence');
  if (!has('PUT', '/presence')) { sel.closest('label').hidden = true; return; }
  if (has('GET', '/presence')) {
    try {
      const p = await get('/presence');
      const mine = p.status ? p : (p.items || []).find((x) => (x.user || x.name) === boot.me.name);
      if (mine && mine.status) sel.value = mine.status;
    } catch { /* keep the default */ }
  }
  sel.addEventListener('change', async () => {
    try {
      await api('PUT', '/presence', { status: sel.value });
    } catch (e) { ctx.error(e); }
  });
}

function setupLanguage() {
  const sel = $('#language');
  sel.value = boot.language;
  sel.addEventListener('change', async () => {
    try {
      await api('PATCH', '/users/' + encodeURIComponent(boot.me.name), { language: sel.value });
      window.location.reload();
    } catch (e) {
      ctx.error(e);
      sel.value = boot.language;
    }
  });
}

// The top bar's light/dark toggle (theme.js applied the remembered choice before paint).
function setupTheme() {
  const btn = $('#theme-btn');
  const theme = window.tongdaiTheme;
  if (!theme) { btn.hidden = true; return; }
  const show = () => {
    const dark = theme.current() === 'dark';
    btn.replaceChildren(icon(dark ? 'sun' : 'moon'));
    btn.setAttribute('aria-pressed', dark ? 'true' : 'false');
    btn.title = t(dark ? 'theme.to_light' : 'theme.to_dark');
    btn.setAttribute('aria-label', btn.title);
  };
  btn.addEventListener('click', () => { theme.toggle(); show(); });
  show();
}

// -- keyboard -------------------------------------------------------------------------------
function setupShortcuts({ inbox, conversation }) {
  const help = $('#help');
  $('#help-btn').addEventListener('click', () => help.showModal());
  $('#help-close').addEventListener('click', () => help.close());
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || document.querySelector('dialog[open]')) return;
    if (isTyping(e.target)) return;
    const keys = {
      j: () => inbox.next(),
      k: () => inbox.prev(),
      r: () => conversation.current() && conversation.setMode('reply'),
      n: () => conversation.current() && conversation.setMode('note'),
      e: () => conversation.act('resolve'),
      c: () => conversation.act('claim'),
      a: () => conversation.act('assign'),
      s: () => conversation.act('snooze'),
      '/': () => inbox.focusSearch(),
      '?': () => help.showModal(),
    };
    const fn = keys[e.key];
    if (fn) {
      e.preventDefault();
      fn();
    }
  });
}

start();
