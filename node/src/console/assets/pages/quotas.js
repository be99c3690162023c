// Quotas: the quota policies and their live, cluster-wide usage in the current window
// (GET /admin/v1/usage?window=current, refreshed every 2 s). Used units trail traffic by
// about a second (nodes report in batches); granted units are exact.

import { api } from '../api.js';
import { h, replace, notice, cell, fmtNum, fmtTime } from '../dom.js';

const REFRESH_MS = 2000;

export function render(root) {
  const policies = h('tbody');
  const usage = h('tbody');
  const status = h('div');
  replace(root,
    h('div', { class: 'toolbar' }, h('h1', {}, 'Quotas & usage'), h('span', { class: 'spacer' }),
      h('a', { class: 'button', href: '#/r/quota_policies' }, 'Edit policies')),
    status,
    h('h2', {}, 'Usage in the current window (whole cluster)'),
    h('table', { id: 'usage-table' },
      h('thead', {}, h('tr', {}, ['Policy', 'Scope', 'Metric', 'Window', 'Used', 'Granted', 'Limit', '', 'Remaining'].map((t) => h('th', {}, t)))),
      usage),
    h('h2', {}, 'Policies'),
    h('table', { id: 'policies-table' },
      h('thead', {}, h('tr', {}, ['Id', 'Tenant', 'Scope', 'Metric', 'Window', 'Limit', 'Mode'].map((t) => h('th', {}, t)))),
      policies));

  let alive = true;
  async function load() {
    try {
      const [p, u] = await Promise.all([api('GET', '/quota_policies'), api('GET', '/usage?window=current')]);
      if (!alive) return;
      replace(policies, (p.items || []).map((q) => h('tr', {},
        h('td', { class: 'mono' }, q.id), h('td', {}, q.tenant || ''), h('td', {}, cell(q.scope)),
        h('td', {}, q.metric), h('td', {}, q.window), h('td', { class: 'num' }, fmtNum(q.limit)), h('td', {}, q.mode || ''))));
      const items = u.items || [];
      replace(usage, items.length ? items.map((c) => {
        const frac = c.limit ? Math.min(1, Math.max(c.used, c.granted) / c.limit) : 0;
        const fill = h('div');
        fill.style.width = `${(frac * 100).toFixed(1)}%`;
        return h('tr', { dataset: { policy: c.policy } },
          h('td', { class: 'mono' }, c.policy),
          h('td', { class: 'mono' }, Object.entries(c.scope || {}).map(([k, v]) => `${k}=${v}`).join(' ')),
          h('td', {}, c.metric), h('td', { title: fmtTime(c.window_start_ms) }, c.window),
          h('td', { class: 'num' }, fmtNum(c.used)), h('td', { class: 'num' }, fmtNum(c.granted)),
          h('td', { class: 'num' }, fmtNum(c.limit)),
          h('td', {}, h('div', { class: `bar ${frac > 0.9 ? 'hot' : ''}` }, fill)),
          h('td', { class: 'num' }, fmtNum(c.remaining)));
      }) : h('tr', {}, h('td', { colspan: 9, class: 'muted' }, 'No counters in the current window.')));
      replace(status, u.note ? h('p', { class: 'muted' }, u.note) : null);
    } catch (e) {
      if (alive) replace(status, notice(`Cannot read quotas: ${e.message}`, 'error'));
    }
  }
  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => {
    alive = false;
    clearInterval(timer);
  };
}
