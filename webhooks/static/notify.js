// Browser notifications and a sound for a customer's new message on the agent's own
// conversations (assigned to them, or where a note mentions them). Both off until the agent
// turns them on in the top bar's bell menu (remembered in this browser's localStorage); the
// browser's permission is asked by that click, never on page load. Not for the agent's own
// replies, nor for the conversation they are looking at in a focused window. With the console
// closed, Web Push does it (push.js, sw.js).
import { get, has, query } from './api.js';
import { icon } from './icons.js';
import { createPush } from './push.js';
import { $, t } from './ui.js';

const NOTIFY = 'td.notify';
const SOUND = 'td.sound';

function stored(key) {
  try { return localStorage.getItem(key) === '1'; } catch { return false; }
}

function store(key, on) {
  try { localStorage.setItem(key, on ? '1' : '0'); } catch { /* this page only */ }
}

export function createNotifier(ctx) {
  const btn = $('#notify-btn');
  const menu = $('#notify-menu');
  const notifyBox = $('#notify-on');
  const soundBox = $('#sound-on');
  const why = $('#notify-why');
  const supported = 'Notification' in window;
  const mentioned = new Set(); // conversations whose notes mention me
  const told = new Set();      // message ids already notified (the stream may repeat one)
  let audio = null;

  btn.append(icon('bell'));
  createPush(ctx, ctx.pushKey); // "on this device": Web Push with the console closed
  notifyBox.checked = supported && stored(NOTIFY) && Notification.permission === 'granted';
  soundBox.checked = stored(SOUND);
  if (!supported) {
    notifyBox.disabled = true;
    why.textContent = t('notify.unsupported');
  }

  btn.addEventListener('click', () => {
    menu.hidden = !menu.hidden;
    btn.setAttribute('aria-expanded', menu.hidden ? 'false' : 'true');
  });
  document.addEventListener('click', (e) => {
    if (!menu.hidden && !e.target.closest('.prefs')) {
      menu.hidden = true;
      btn.setAttribute('aria-expanded', 'false');
    }
  });

  // the agent's click: the one moment a browser lets a page ask
  notifyBox.addEventListener('change', async () => {
    if (!notifyBox.checked) { store(NOTIFY, false); return; }
    let permission = Notification.permission;
    if (permission !== 'granted') {
      try { permission = await Notification.requestPermission(); } catch { permission = 'denied'; }
    }
    notifyBox.checked = permission === 'granted';
    store(NOTIFY, notifyBox.checked);
    why.textContent = permission === 'granted' ? t('notify.which') : t('notify.denied');
  });

  soundBox.addEventListener('change', () => {
    store(SOUND, soundBox.checked);
    if (soundBox.checked) beep(); // a sample; also lets the page play sound from now on
  });

  // A short two-tone chime drawn by Web Audio: no file to fetch, nothing to license.
  function beep() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    try {
      audio = audio || new Ctx();
      if (audio.state === 'suspended') audio.resume();
      const now = audio.currentTime;
      for (const [i, freq] of [[0, 880], [1, 1320]]) {
        const osc = audio.createOscillator();
        const gain = audio.createGain();
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0.0001, now + i * 0.12);
        gain.gain.exponentialRampToValueAtTime(0.15, now + i * 0.12 + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.12 + 0.18);
        osc.connect(gain).connect(audio.destination);
        osc.start(now + i * 0.12);
        osc.stop(now + i * 0.12 + 0.2);
      }
    } catch { /* no sound device: the notification still says it */ }
  }

  if (has('GET', '/mentions')) {
    get('/mentions' + query({ limit: 100 }))
      .then((p) => { for (const m of p.items) mentioned.add(String(m.conversation_id)); })
      .catch(() => {});
  }

  async function onEvent(type, data) {
    const id = String(data.conversation_id || '');
    if (type === 'note.created' && (data.mentions || []).includes(ctx.me.name)) mentioned.add(id);
    // a customer's message: the hub's own and the agents' replies carry an author
    if (type !== 'message.created' || data.author_id || !id) return;
    const wantNote = notifyBox.checked && supported && Notification.permission === 'granted';
    if (!wantNote && !soundBox.checked) return;
    const key = id + ':' + data.message_id;
    if (told.has(key)) return;
    const looking = document.visibilityState === 'visible' && document.hasFocus()
      && ctx.current() === id;
    if (looking) return;
    let conv;
    try { conv = await get('/conversations/' + encodeURIComponent(id)); } catch { return; }
    if (conv.assignee !== ctx.me.name && !mentioned.has(id)) return;
    if (told.has(key)) return;
    told.add(key);
    if (soundBox.checked) beep();
    if (!wantNote) return;
    const [cust, page] = await Promise.all([
      get('/customers/' + encodeURIComponent(conv.customer_id)).catch(() => null),
      // (a few: a platform's time in whole seconds may sort it below the newest)
      get(`/conversations/${encodeURIComponent(id)}/messages` + query({ limit: 10 })).catch(() => null)]);
    const m = page && page.items.find((x) => String(x.id) === String(data.message_id));
    const name = (cust && cust.name) || t('customer.unnamed', { id: conv.customer_id });
    const text = m ? (m.text || m.subject || t('kind.' + m.kind)) : '';
    try {
      const n = new Notification(t('notify.new', { name }), {
        body: `${conv.channel_id} · #${id}${text ? '\n' + text.slice(0, 160) : ''}`,
        tag: 'tongdai-' + id, lang: document.documentElement.lang });
      n.onclick = () => { window.focus(); ctx.open(id); n.close(); };
    } catch { /* some browsers allow notifications only from a service worker */ }
  }

  return { onEvent };
}
