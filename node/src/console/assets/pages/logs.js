// Log explorer: GET /admin/v1/logs with filters, newest first, "Load more" following the
// server's cursor. The server merges every node's call logs and names nodes that did
// not answer (partial); a tenant admin's token only ever returns its tenant's calls.

import { api, query, ApiError } from '../api.js';
import { h, replace, notice, fmtTime, fmtNum } from '../dom.js';
import { logTime, logLatencyMs, logCost } from './charts.js';

const PAGE = 100;
const RANGES = [['15 minutes', 15], ['1 hour', 60], ['6 hours', 360], ['24 hours', 1440], ['7 days', 10080]];

export function render(root, ctx) {
  const { me } = ctx;
  const field = (name, label, attrs) => {
    const input = h('input', { name, id: `filter-${name}`, ...attrs });
    return [input, h('label', { class: 'field' }, label, input)];
  };
  const range = h('select', { id: 'filter-range' }, RANGES.map(([t, m]) => h('option', { value: m }, t)));
  range.value = '60';
  const statusClass = h('select', { id: 'filter-status' }, ['', '2xx', '3xx', '4xx', '5xx'].map((c) => h('option', { value: c }, c || 'any')));
  const [tenant, tenantLabel] = field('tenant', 'Tenant', { placeholder: 'any' });
  const [consumer, consumerLabel] = field('consumer', 'Consumer', { placeholder: 'any' });
  const [routeF, routeLabel] = field('route', 'Route', { placeholder: 'any' });
  const [model, modelLabel] = field('model', 'Model', { placeholder: 'any' });
  const [minLat, minLatLabel] = field('min_latency_ms', 'Min latency (ms)', { type: 'number', min: 0 });
  const body = h('tbody');
  const status = h('div', { id: 'logs-status' });
  const more = h('button', { id: 'logs-more', class: 'hidden', onclick: () => load(false) }, 'Load more');
  const form = h('form', { class: 'filters' },
    h('label', { class: 'field' }, 'Time', range),
    me.role === 'tenant-admin' ? null : tenantLabel,
    consumerLabel, routeLabel, modelLabel,
    h('label', { class: 'field' }, 'Status', statusClass),
    minLatLabel,
    h('button', { class: 'primary', type: 'submit' }, 'Search'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    load(true);
  });
  const cols = ['Time', 'Node', 'Request', 'Route', 'Tenant', 'Consumer', 'Model', 'Provider', 'Status', 'Latency ms', 'TTFT ms', 'Tokens in', 'Tokens out', 'Cost', 'Cache', 'Request id'];
  const table = h('table', { id: 'logs-table' }, h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c)))), body);
  replace(root, h('h1', {}, 'Call logs'), form, status, table, h('div', { class: 'toolbar' }, more));

  let cursor = null;
  let shown = 0;
  let alive = true;

  async function load(fresh) {
    if (fresh) {
      cursor = null;
      shown = 0;
      replace(body);
    }
    const params = {
      from_ms: Date.now() - Number(range.value) * 60000,
      tenant: tenant.value.trim(),
      consumer: consumer.value.trim(),
      route: routeF.value.trim(),
      model: model.value.trim(),
      status_class: statusClass.value,
      min_latency_ms: minLat.value,
      limit: PAGE,
      cursor: fresh ? null : cursor,
    };
    try {
      const ans = await api('GET', `/logs${query(params)}`);
      if (!alive) return;
      const items = ans.items || [];
      shown += items.length;
      body.append(...items.flatMap(row));
      cursor = ans.next_cursor || null;
      more.classList.toggle('hidden', !cursor);
      replace(status,
        ans.partial ? notice(`Partial result: nodes ${(ans.missing_nodes || []).join(', ')} did not answer in time.`, 'error') : null,
        h('p', { class: 'muted' }, `${shown} call${shown === 1 ? '' : 's'} shown${cursor ? ', more available' : ''}.`));
      if (!shown) body.append(h('tr', {}, h('td', { colspan: cols.length, class: 'muted' }, 'No calls match.')));
    } catch (e) {
      if (!alive) return;
      more.classList.add('hidden');
      replace(status, e instanceof ApiError && e.status === 404
        ? notice('Call logs are not available on this node (GET /admin/v1/logs answered 404).', 'error')
        : notice(`Cannot read call logs: ${e.message}`, 'error'));
    }
  }

  // Captured bodies (routes with a capture policy; admins and tenant admins only):
  // a hidden row under the call, shown by its "Body" button. Text only.
  function detail(r) {
    const part = (label, text, cut) => (text == null ? null : h('div', {},
      h('strong', {}, `${label}${cut ? ' (truncated)' : ''}`),
      h('pre', { class: 'mono capture' }, text)));
    return h('tr', { class: 'log-detail hidden' }, h('td', { colspan: cols.length },
      part('Request body', r.request_body, r.request_truncated),
      part('Response body', r.response_body, r.response_truncated)));
  }

  function row(r) {
    const captured = r.request_body != null || r.response_body != null;
    const bodies = captured ? detail(r) : null;
    const toggle = captured ? h('button', { class: 'small', type: 'button', onclick: () => bodies.classList.toggle('hidden') }, 'Body') : null;
    return [logRow(r, toggle), bodies].filter(Boolean);
  }

  function logRow(r, toggle) {
    const lat = logLatencyMs(r);
    const ttft = r.ttft_us != null ? r.ttft_us / 1000 : null;
    const st = Number(r.status) || 0;
    return h('tr', { class: 'log-row' },
      h('td', { class: 'mono' }, fmtTime(logTime(r))),
      h('td', {}, r.node_id ?? ''),
      h('td', { class: 'mono' }, `${r.method ?? ''} ${r.path ?? ''}`),
      h('td', { class: 'mono' }, r.route ?? ''),
      h('td', {}, r.tenant ?? ''),
      h('td', {}, r.consumer ?? ''),
      h('td', {}, r.model ?? ''),
      h('td', {}, r.provider ?? ''),
      h('td', { title: r.error || '' }, h('span', { class: `badge ${st >= 500 ? 'bad' : st >= 400 ? 'warn' : 'ok'}` }, r.status ?? ''), r.error ? ` ${r.error}` : ''),
      h('td', { class: 'num' }, lat == null ? '' : fmtNum(lat, 1)),
      h('td', { class: 'num' }, ttft == null ? '' : fmtNum(ttft, 1)),
      h('td', { class: 'num' }, fmtNum(r.tokens_in)),
      h('td', { class: 'num' }, fmtNum(r.tokens_out)),
      h('td', { class: 'num' }, logCost(r) == null ? '' : fmtNum(logCost(r), 6)),
      h('td', {}, r.cache_hit ? 'hit' : ''),
      h('td', { class: 'mono' }, r.request_id ?? '', toggle ? ' ' : null, toggle));
  }

  load(true);
  return () => {
    alive = false;
  };
}
