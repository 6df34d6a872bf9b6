// "On this device": Web Push for the agent's own conversations with the console closed (the
// bell menu's third box). Turning it on asks the browser's permission (that click, never on
// page load), registers the service worker (/console/sw.js), subscribes with the hub's VAPID
// key (boot.push_key) and registers the subscription with POST /api/v1/push/subscriptions;
// turning it off (or logging out) unsubscribes and deletes it. Remembered per user in this
// browser: another agent logging in here does not inherit it.
import { ApiError, api, has, post } from './api.js';
import { $, t } from './ui.js';

const SW = '/console/sw.js';
const SCOPE = '/console';

function keyBytes(b64url) {
  const b64 = (b64url + '='.repeat((4 - (b64url.length % 4)) % 4)).replace(/-/g, '+').replace(/_/g, '/');
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function sameKey(sub, key) {
  const have = sub.options && sub.options.applicationServerKey;
  if (!have) return true;
  const a = new Uint8Array(have);
  return a.length === key.length && a.every((x, i) => x === key[i]);
}

export function createPush(ctx, pushKey) {
  const box = $('#push-on');
  const why = $('#notify-why');
  const flag = 'td.push.' + ctx.me.name;
  const supported = 'serviceWorker' in navigator && 'PushManager' in window
    && 'Notification' in window && Boolean(pushKey) && has('POST', '/push/subscriptions');
  let busy = false;

  const remembered = () => { try { return JSON.parse(localStorage.getItem(flag) || 'null'); } catch { return null; } };
  const remember = (v) => { try { if (v) localStorage.setItem(flag, JSON.stringify(v)); else localStorage.removeItem(flag); } catch { /* this page only */ } };

  async function current() {
    const reg = await navigator.serviceWorker.getRegistration(SCOPE);
    return reg ? reg.pushManager.getSubscription() : null;
  }

  async function register(sub) {
    const saved = await post('/push/subscriptions', sub.toJSON());
    remember({ id: saved.id });
    return saved;
  }

  // on a console load: the hub may have dropped this browser's subscription (the browser
  // renewed it, another agent took it, or the hub's VAPID key changed — a 403 deletes it):
  // registered again; one made with another key is replaced (every push to it is refused)
  async function refresh() {
    let sub = await current();
    if (!sub) return false;
    const key = keyBytes(pushKey);
    if (!sameKey(sub, key)) {
      await sub.unsubscribe().catch(() => {});
      const stale = (remembered() || {}).id;
      if (stale) await api('DELETE', '/push/subscriptions/' + encodeURIComponent(stale)).catch(() => {});
      const reg = await navigator.serviceWorker.getRegistration(SCOPE);
      sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    }
    await register(sub);
    return true;
  }

  async function on() {
    let permission = Notification.permission;
    if (permission !== 'granted') {
      try { permission = await Notification.requestPermission(); } catch { permission = 'denied'; }
    }
    if (permission !== 'granted') throw new Error(t('notify.denied'));
    await navigator.serviceWorker.register(SW, { scope: SCOPE });
    const reg = await navigator.serviceWorker.ready;
    const key = keyBytes(pushKey);
    let sub = await reg.pushManager.getSubscription();
    if (sub && !sameKey(sub, key)) { await sub.unsubscribe(); sub = null; }
    sub = sub || await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    await register(sub);
  }

  async function off() {
    const sub = await current().catch(() => null);
    let id = (remembered() || {}).id;
    if (!id && sub) id = (await register(sub).catch(() => ({}))).id; // learn its id
    remember(null);
    if (id) {
      try { await api('DELETE', '/push/subscriptions/' + encodeURIComponent(id)); } catch (e) {
        if (!(e instanceof ApiError && e.status === 404)) throw e;
      }
    }
    if (sub) await sub.unsubscribe().catch(() => {});
  }

  if (!supported) {
    box.disabled = true;
    box.closest('label').title = pushKey ? t('push.unsupported') : t('push.off');
  } else if (remembered()) {
    box.checked = Notification.permission === 'granted';
    (box.checked ? refresh() : Promise.resolve(false))
      .then((ok) => { if (!ok) { box.checked = false; remember(null); } })
      .catch(() => {});
  }

  box.addEventListener('change', async () => {
    if (busy) return;
    busy = true;
    const want = box.checked;
    try {
      if (want) await on(); else await off();
      why.textContent = want ? t('push.which') : t('notify.which');
    } catch (e) {
      box.checked = !want;
      why.textContent = t('push.failed', { why: ctx.explain ? ctx.explain(e) : String(e) });
    } finally {
      busy = false;
      box.dataset.state = box.checked ? 'on' : 'off';
    }
  });

  // logging out of a shared phone stops its pushes (the form waits for that, briefly)
  const logout = $('#logout') && $('#logout').closest('form');
  if (logout && supported) {
    logout.addEventListener('submit', (e) => {
      if (!remembered() || logout.dataset.done) return;
      e.preventDefault();
      const go = () => { logout.dataset.done = '1'; logout.submit(); };
      Promise.race([off(), new Promise((r) => setTimeout(r, 2000))]).then(go, go);
    });
  }
}
