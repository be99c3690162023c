// The console shell: who is signed in, the navigation for that role, and a hash router
// (#/page/arg) that renders one page module at a time. A page's render() may return a
// function that stops its timers; it runs when the user leaves the page.

import { api, token, clearToken, onUnauthorized } from './api.js';
import { h, replace, badge, notice } from './dom.js';
import * as login from './pages/login.js';
import * as cluster from './pages/cluster.js';
import * as resources from './pages/resources.js';
import * as quotas from './pages/quotas.js';
import * as charts from './pages/charts.js';
import * as logs from './pages/logs.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('whoami');
const logoutButton = document.getElementById('logout');

/** The signed-in caller ({subject, role, tenant}), from GET /admin/v1/whoami. */
let me = null;
let stop = null;
let loginMessage = '';

/** What each role may see in the navigation; the server enforces the same rules. */
export function roleAllows(who, kind) {
  if (!who) return false;
  if (who.role === 'tenant-admin') return !['providers', 'certificates'].includes(kind);
  return true;
}

function navLinks() {
  const link = (href, text) => h('a', { href, dataset: { nav: href } }, text);
  const res = (coll, text) => (roleAllows(me, coll) ? link(`#/r/${coll}`, text) : null);
  return [
    h('h4', {}, 'Cluster'),
    link('#/cluster', 'Nodes'),
    link('#/charts', 'Charts'),
    link('#/logs', 'Call logs'),
    h('h4', {}, 'APIs'),
    res('tenants', 'Tenants'),
    res('services', 'Services'),
    res('routes', 'Routes'),
    res('upstreams', 'Upstreams'),
    res('consumers', 'Consumers'),
    res('api_keys', 'API keys'),
    res('subscriptions', 'Subscriptions'),
    res('permissions', 'Permissions'),
    res('certificates', 'Certificates'),
    h('h4', {}, 'LLM'),
    res('providers', 'Providers'),
    res('models', 'Models'),
    res('prompt_templates', 'Prompt templates'),
    h('h4', {}, 'Limits'),
    link('#/quotas', 'Quotas & usage'),
  ];
}

function renderShell() {
  if (me) {
    replace(who, me.subject, badge(me.role, 'role'), me.tenant ? badge(`tenant ${me.tenant}`, 'tenant') : null);
    who.dataset.role = me.role;
    who.dataset.tenant = me.tenant || '';
    replace(nav, navLinks());
    nav.classList.remove('hidden');
    logoutButton.classList.remove('hidden');
  } else {
    replace(who);
    nav.classList.add('hidden');
    logoutButton.classList.add('hidden');
  }
}

/** Signs in with the stored token: asks the server who that is. */
export async function refreshMe() {
  me = token() ? await api('GET', '/whoami') : null;
  renderShell();
  return me;
}

function signOut(message) {
  clearToken();
  me = null;
  loginMessage = message || '';
  renderShell();
  go('#/login');
}

async function route() {
  if (stop) {
    stop();
    stop = null;
  }
  const [page, ...args] = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (!me && token()) {
    try {
      await refreshMe();
    } catch (e) {
      clearToken();
      loginMessage = `Signed out: ${e.message}`;
    }
  }
  if (!me || page === 'login' || !page) {
    if (me && !page) {
      location.hash = '#/cluster';
      return;
    }
    replace(main);
    stop = login.render(main, { refreshMe, message: loginMessage, go });
    loginMessage = '';
    return;
  }
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', location.hash.startsWith(a.dataset.nav));
  const ctx = { me };
  replace(main);
  try {
    if (page === 'cluster') stop = cluster.render(main, ctx);
    else if (page === 'r' && args[0] && roleAllows(me, args[0])) stop = resources.render(main, ctx, args[0]);
    else if (page === 'quotas') stop = quotas.render(main, ctx);
    else if (page === 'charts') stop = charts.render(main, ctx);
    else if (page === 'logs') stop = logs.render(main, ctx);
    else replace(main, h('h1', {}, 'Not found'), notice(`No console page '${location.hash}'.`, 'error'));
  } catch (e) {
    replace(main, notice(`This page failed: ${e.message}`, 'error'));
  }
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// A signed-in session whose token stopped working (expired, secret restored from a
// backup) goes back to the login page; a wrong token on the login page is its own error.
onUnauthorized((err) => {
  if (me) signOut(`Signed out: ${err.message}`);
});
logoutButton.addEventListener('click', () => signOut('Signed out.'));
window.addEventListener('hashchange', route);
route();
