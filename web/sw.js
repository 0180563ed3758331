// The page's service worker. It answers every request of the page, for two reasons:
// - Offline use: each file of this build is fetched once, checked against its sha256 from the
//   build (build.json), and kept in a cache named after the build; later visits are served
//   from there, with or without a network. A new build is a new worker (this file carries the
//   build's sums, so it changes too), which fills a new cache and deletes the old one.
// - Cross-origin isolation: it adds COOP/COEP to every answer, which gives the page
//   SharedArrayBuffer (wasm threads) on hosts that cannot send those headers (GitHub Pages).
// A file whose bytes do not match its sum is passed to the page but never cached: the host
// holds another build, and the browser will fetch that build's worker.

// The page stage replaces this line with the build's manifest: {version, files: {path: sha256},
// bundles: [folder/, ...]} (the model bundles: the page loads one of them).
const MANIFEST = { version: 'unbuilt', files: {}, bundles: [] };
const CACHE_PREFIX = 'sanet-';
const CACHE = `${CACHE_PREFIX}${MANIFEST.version}`;
const inBundle = (path) => MANIFEST.bundles.some((folder) => path.startsWith(folder));
// The model is cached as the page fetches it (it shows the download's progress), and only the
// bundle the page chose (it says which when it asks for the offline status); the rest, a few
// MB, is fetched at install so the page can start without a network.
const FETCHED_AT_INSTALL = Object.keys(MANIFEST.files).filter((path) => !inBundle(path));

function isolated(response) {
  const headers = new Headers(response.headers);
  headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
  headers.set('Cross-Origin-Opener-Policy', 'same-origin');
  headers.set('Cross-Origin-Resource-Policy', 'same-origin');
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

async function sha256(buffer) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', buffer));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

// `path` from the network, revalidated past the HTTP cache (which may hold another build's
// bytes under the same name); cached if its bytes are this build's. Returns the response.
async function fetchAndKeep(cache, path) {
  const response = await fetch(path, { cache: 'no-cache' });
  if (!response.ok) return response;
  const body = await response.arrayBuffer();
  const init = { status: response.status, statusText: response.statusText, headers: response.headers };
  if ((await sha256(body)) === MANIFEST.files[path]) await cache.put(path, new Response(body, init));
  return new Response(body, init);
}

// The path of `url` inside the worker's scope, as build.json names it.
function sitePath(url) {
  const path = url.pathname.slice(new URL(self.registration.scope).pathname.length);
  return path === '' || path.endsWith('/') ? `${path}index.html` : decodeURIComponent(path);
}

async function answer(request) {
  const url = new URL(request.url);
  const path = sitePath(url);
  if (url.origin !== location.origin || request.method !== 'GET' || !(path in MANIFEST.files)) {
    return isolated(await fetch(request));
  }
  const cache = await caches.open(CACHE);
  const kept = await cache.match(path);
  return isolated(kept || (await fetchAndKeep(cache, path)));
}

async function fetchAtInstall() {
  const cache = await caches.open(CACHE);
  for (const path of FETCHED_AT_INSTALL) {
    if (await cache.match(path)) continue;
    const response = await fetchAndKeep(cache, path);
    // Installing a worker whose files the host does not have would break the page offline.
    if (!(await cache.match(path))) throw new Error(`${path}: HTTP ${response.status} or not this build's bytes`);
  }
}

// What the page shows about offline use: how much of this build is kept (the page's files and
// the bundle in the folder `keep`), and whether the host answers now (navigator.onLine says
// only whether the device has a network). The other bundles' files are dropped from the cache.
async function offlineStatus(keep) {
  const cache = await caches.open(CACHE);
  const others = Object.keys(MANIFEST.files).filter((path) => inBundle(path) && !path.startsWith(keep));
  await Promise.all(others.map((path) => cache.delete(path)));
  const paths = Object.keys(MANIFEST.files).filter((path) => !inBundle(path) || path.startsWith(keep));
  const kept = await Promise.all(paths.map((path) => cache.match(path).then(Boolean)));
  const reachable = await fetch('build.json', { cache: 'no-store', method: 'HEAD' }).then((r) => r.ok, () => false);
  return { version: MANIFEST.version, files: paths.length, cached: kept.filter(Boolean).length, reachable };
}

self.addEventListener('install', (event) => event.waitUntil(fetchAtInstall().then(() => self.skipWaiting())));

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((name) => name.startsWith(CACHE_PREFIX) && name !== CACHE).map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  // Chromium's devtools ask for this and fail on any answer.
  if (event.request.cache === 'only-if-cached' && event.request.mode !== 'same-origin') return;
  event.respondWith(answer(event.request));
});

self.addEventListener('message', (event) => {
  if (event.data && event.data.type === 'offline-status' && event.ports[0]) {
    offlineStatus(String(event.data.keep)).then((status) => event.ports[0].postMessage(status));
  }
});
