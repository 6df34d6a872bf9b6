// The console's service worker, served at /console/sw.js with scope /console: Web Push
// notifications for an agent whose console is closed (core/workspace/push.py sends them).
// A push carries {title, body, conversation_id, url, tag, lang}, end-to-end encrypted to this
// browser: the push service sees only that something was sent, and when.

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

function consoleTabs() {
  return self.clients.matchAll({ type: 'window', includeUncontrolled: true })
    .then((tabs) => tabs.filter((c) => new URL(c.url).pathname === '/console'));
}

// Every push shows a notification: browsers require it of a push that woke the worker
// (userVisibleOnly), and Safari revokes a subscription after a few pushes that showed none.
// With a console tab in front of the agent (it tells them itself, notify.js) it shows
// silently, under the conversation's tag, replacing that conversation's earlier one.
function showPush(data) {
  return consoleTabs().then((tabs) => {
    const watching = tabs.some((c) => c.focused && c.visibilityState === 'visible');
    return self.registration.showNotification(data.title || 'tongdai', {
      body: data.body || '',
      tag: data.tag || undefined,               // one conversation's pushes replace each other
      renotify: Boolean(data.tag) && !watching, // ... and still ring for the newer one
      silent: watching,
      lang: data.lang || '',
      data: { conversation_id: String(data.conversation_id || '') },
    });
  });
}

self.addEventListener('push', (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch { data = {}; }
  event.waitUntil(showPush(data));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const id = (event.notification.data || {}).conversation_id || '';
  event.waitUntil(consoleTabs().then((tabs) => {
    if (tabs.length) {
      // an open console opens the conversation in place (console.js listens)
      tabs[0].postMessage({ type: 'tongdai.open', conversation_id: id });
      return tabs[0].focus();
    }
    return self.clients.openWindow('/console' + (id ? '#' + encodeURIComponent(id) : ''));
  }));
});
