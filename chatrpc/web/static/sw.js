// The app shell offline: the page, its styles and modules. Network first (so a new
// version shows at once), the cache when the network fails. The API and the
// WebSocket are never cached.
const CACHE = "chatrpc-shell-v4";
const SHELL = [
  "/",
  "/static/app.css",
  "/static/icon.svg",
  "/static/js/app.js",
  "/static/js/api.js",
  "/static/js/backoff.js",
  "/static/js/changes.js",
  "/static/js/commands.js",
  "/static/js/composer.js",
  "/static/js/connection.js",
  "/static/js/conversation.js",
  "/static/js/cursor.js",
  "/static/js/invitations.js",
  "/static/js/menu.js",
  "/static/js/messageview.js",
  "/static/js/moderation.js",
  "/static/js/protocol.js",
  "/static/js/render.js",
  "/static/js/roompanel.js",
  "/static/js/search.js",
  "/static/js/searchpanel.js",
  "/static/js/signals.js",
  "/static/js/typing.js",
  "/static/js/unread.js",
  "/manifest.webmanifest",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin) return;
  if (!SHELL.includes(url.pathname)) return;
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        const copy = response.clone();
        caches.open(CACHE).then((cache) => cache.put(event.request, copy));
        return response;
      })
      .catch(() => caches.match(event.request)),
  );
});
