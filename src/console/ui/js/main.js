// The console's entry: sign-in, the frame (navigation, live indicator) and the hash router.
import { createApi, openEventStream, storedToken, storeToken, forgetToken, ApiError } from './api.js';
import { h, replace, showError } from './dom.js';

/**
 * Routes: a hash pattern, the view module and export, and the scope a token needs for it. Views are
 * loaded when first opened, so the first load carries only the frame and the inbox list.
 * A view is `async (ctx) => void`; see ctx below.
 */
const ROUTES = [
  { re: /^#\/inboxes$/, mod: 'inboxes', fn: 'inboxList', scope: 'inboxes:read' },
  { re: /^#\/inboxes\/([^/]+)$/, mod: 'inboxes', fn: 'inboxDetail', scope: 'messages:read' },
  { re: /^#\/threads\/([^/]+)$/, mod: 'thread', fn: 'threadView', scope: 'messages:read' },
  { re: /^#\/activity$/, mod: 'activity', fn: 'activityView', scope: 'messages:read' },
  { re: /^#\/health$/, mod: 'health', fn: 'healthView', scope: 'admin' },
  { re: /^#\/domains$/, mod: 'domains', fn: 'domainsView', scope: 'admin' },
  { re: /^#\/webhooks$/, mod: 'webhooks', fn: 'webhooksView', scope: 'webhooks:write' },
  { re: /^#\/campaigns$/, mod: 'campaigns', fn: 'campaignList', scope: 'campaigns:read' },
  { re: /^#\/campaigns\/([^/]+)$/, mod: 'campaigns', fn: 'campaignDetail', scope: 'campaigns:read' },
  { re: /^#\/runs\/([^/]+)$/, mod: 'run', fn: 'runView', scope: 'campaigns:read' },
  { re: /^#\/drafts$/, mod: 'drafts', fn: 'draftsView', scope: 'drafts:write|messages:read' },
];

const NAV = [
  ['#/inboxes', 'Inboxes', 'inboxes:read'],
  ['#/activity', 'Live activity', 'messages:read'],
  ['#/health', 'Sending health', 'admin'],
  ['#/domains', 'Domains', 'admin'],
  ['#/webhooks', 'Webhooks', 'webhooks:write'],
  ['#/campaigns', 'Campaigns', 'campaigns:read'],
  ['#/drafts', 'Drafts', 'drafts:write|messages:read'],
];

const app = document.getElementById('app');

async function boot() {
  // A one-time sign-in link: #signin=<code>. Spent at once, then removed from the address bar
  // and the history, so reloading or sharing the URL carries nothing.
  const m = /^#signin=([A-Za-z0-9_-]+)$/.exec(location.hash);
  if (m) {
    history.replaceState(null, '', `${location.pathname}#/inboxes`);
    try {
      const res = await fetch('/auth/signin', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: m[1] }) });
      const body = await res.json();
      if (!res.ok) throw new ApiError(res.status, body);
      storeToken(body.token);
    } catch (err) {
      return signInForm(err?.problem?.detail ?? String(err));
    }
  }
  const token = storedToken();
  if (!token) return signInForm();
  const api = createApi(token);
  let me;
  try {
    me = await api.get('/v1/tokens/self');
  } catch (err) {
    forgetToken();
    return signInForm(err instanceof ApiError && err.status === 401 ? 'That token is not valid (revoked or mistyped).' : String(err.message));
  }
  start(api, me);
}

function signInForm(error) {
  const input = h('input', { id: 'token', name: 'token', type: 'password', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'mr_…', 'aria-describedby': 'token-help' });
  const form = h('form', { class: 'signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Mailroom console'),
    h('p', { id: 'token-help' }, 'Sign in with a Mailroom token: the admin token, or a scoped one (the console offers only what it allows). ',
      'Or open the one-time link `mailroom serve` printed on its first start (`mailroom console` makes a new one).'),
    error ? h('p', { class: 'error', role: 'alert' }, error) : null,
    h('div', { class: 'field' }, h('label', { for: 'token' }, 'Token'), input),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    storeToken(input.value.trim());
    if (!/^#\//.test(location.hash)) location.hash = '#/inboxes';
    boot();
  });
  replace(app, h('main', { id: 'main' }, form));
  input.focus();
}

function start(api, me) {
  const can = (scope) => me.scopes.includes('admin') || scope.split('|').some((s) => me.scopes.includes(s));
  // One event stream for the whole console; views subscribe while they are shown.
  const listeners = new Set();
  const liveState = h('span', { class: 'live-state', role: 'status', 'aria-live': 'polite' }, 'connecting…');
  let stream = null;
  if (can('messages:read')) {
    stream = openEventStream(api.token, (e) => { for (const l of listeners) { try { l(e); } catch (err) { console.error(err); } } },
      (state) => { liveState.textContent = state === 'live' ? '● live' : '○ reconnecting…'; liveState.className = `live-state ${state}`; });
  } else liveState.textContent = '';
  const live = { on(fn) { listeners.add(fn); return () => listeners.delete(fn); } };

  const navLinks = NAV.filter(([, , scope]) => can(scope)).map(([href, label]) => h('a', { href }, label));
  const main = h('main', { id: 'main', tabindex: '-1' });
  const signOut = h('button', { type: 'button', class: 'link', onclick: () => { stream?.stop(); forgetToken(); location.hash = ''; boot(); } }, 'Sign out');
  replace(app,
    h('a', { class: 'skip', href: '#main', onclick: (e) => { e.preventDefault(); main.focus(); } }, 'Skip to content'),
    h('header', { class: 'top' },
      h('a', { class: 'brand', href: '#/inboxes' }, 'Mailroom'),
      h('nav', { 'aria-label': 'Main' }, navLinks),
      h('div', { class: 'who' }, liveState, h('span', { class: 'token-name', title: me.scopes.join(', ') }, me.name ?? me.prefix), signOut)),
    main);

  let cleanups = [];
  let seq = 0;
  const route = async () => {
    const mySeq = ++seq;
    for (const c of cleanups) { try { c(); } catch { /* a view's cleanup failing must not block the next view */ } }
    cleanups = [];
    if (!/^#\//.test(location.hash)) { location.replace('#/inboxes'); return; }
    const r = ROUTES.find((x) => x.re.test(location.hash));
    for (const a of navLinks) a.toggleAttribute('aria-current', location.hash.startsWith(a.getAttribute('href')));
    if (!r) return replace(main, h('h1', {}, 'Not found'), h('p', {}, `No page at ${location.hash}.`));
    if (!can(r.scope)) return replace(main, h('h1', {}, 'Not allowed'), h('p', {}, `This token lacks the "${r.scope}" scope.`));
    const params = r.re.exec(location.hash).slice(1).map(decodeURIComponent);
    replace(main, h('p', { class: 'loading' }, 'Loading…'));
    const ctx = {
      api, me, can, live, params, root: main,
      alive: () => mySeq === seq,
      cleanup: (fn) => cleanups.push(fn),
      navigate: (hash) => { location.hash = hash; },
    };
    try {
      const mod = await import(`./views/${r.mod}.js`);
      if (mySeq !== seq) return;
      await mod[r.fn](ctx);
    } catch (err) {
      if (mySeq !== seq) return;
      replace(main, h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, err?.problem ? `${err.problem.code}: ${err.problem.detail}` : String(err?.message ?? err)));
    }
    // Focus moves to the new page's heading, as a screen reader user expects after navigation.
    const heading = main.querySelector('h1');
    if (mySeq === seq && heading && !main.contains(document.activeElement)) { heading.tabIndex = -1; heading.focus(); }
  };
  window.onhashchange = route;
  route();
}

window.addEventListener('unhandledrejection', (e) => showError(e.reason));
boot().catch(showError);
