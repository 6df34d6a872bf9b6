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

self.addEventListener('push', (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch { data = {}; }
  event.waitUntil(consoleTabs().then((tabs) => {
    // a console in front of the agent tells them itself (notify.js); a push must still be
    // shown when none is (browsers require it of a push they woke the worker for)
    if (tabs.some((c) => c.focused && c.visibilityState === 'visible')) return undefined;
    return self.registration.showNotification(data.title || 'tongdai', {
      body: data.body || '',
      tag: data.tag || undefined,   // one conversation's pushes replace each other
      renotify: Boolean(data.tag),  // ... and still ring for the newer one
      lang: data.lang || '',
      data: { conversation_id: String(data.conversation_id || '') },
    });
  }));
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
