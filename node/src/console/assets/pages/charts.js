// Charts: requests, errors, latency, tokens and cost over time, drawn by ../chart.js.
//
// Two sources, both shown when present:
// - Per minute, cluster-wide: the analytics rollups of the last hour
//   (GET /admin/v1/analytics/timeseries: every node's per-minute counts and latency
//   sketches merged by the server, percentiles within 1%). A node without them (404)
//   falls back to grouping its call logs (GET /admin/v1/logs) per minute here.
// - Live, this node: the node's Prometheus counters (/metrics), sampled every 2 s while
//   the page is open; each point is the rate over one interval. For a tenant admin only
//   series of its tenant's routes and models are counted.

import { api, query, metricsText, ApiError } from '../api.js';
import { h, replace, notice } from '../dom.js';
import { lineChart } from '../chart.js';

const SAMPLE_MS = 2000;
const KEEP_SAMPLES = 150; // 5 minutes
const LOG_PAGES = 5;
const LOG_PAGE = 500;

/** Samples survive leaving and re-opening the page (not a reload). */
const samples = [];

export function parseProm(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, '$1');
    }
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

function sum(metrics, name, pred) {
  let total = 0;
  for (const m of metrics) if (m.name === name && (!pred || pred(m.labels))) total += m.value;
  return total;
}

export function render(root, ctx) {
  const { me } = ctx;
  const scoped = me.role === 'tenant-admin';
  const historyBox = h('div', { class: 'charts', id: 'charts-history' });
  const historyNote = h('div', { id: 'charts-history-note' });
  const liveBox = h('div', { class: 'charts', id: 'charts-live' });
  const liveNote = h('div', { id: 'charts-live-note' });
  replace(root,
    h('div', { class: 'toolbar' }, h('h1', {}, 'Charts'), h('span', { class: 'spacer' }),
      h('button', { onclick: () => loadHistory() }, 'Reload history')),
    h('h2', {}, 'Last hour, per minute, whole cluster (analytics rollups)'), historyNote, historyBox,
    h('h2', {}, 'Live, this node (from /metrics, every 2 s)'), liveNote, liveBox);

  let alive = true;
  let routes = null;
  let models = null;

  async function loadScope() {
    if (!scoped) return;
    const [r, m] = await Promise.all([api('GET', '/routes'), api('GET', '/models')]);
    routes = new Set((r.items || []).map((x) => x.id));
    models = new Set((m.items || []).map((x) => x.id));
  }

  const httpOk = (l) => !scoped || l.tenant === me.tenant;
  const routeOk = (l) => !scoped || (routes && routes.has(l.route));
  const modelOk = (l) => !scoped || (models && models.has(l.model));

  async function sample() {
    try {
      const m = parseProm(await metricsText());
      if (!alive) return;
      samples.push({
        t: Date.now(),
        rest: sum(m, 'raftgate_http_requests_total', httpOk),
        llm: sum(m, 'raftgate_llm_requests_total', modelOk),
        e4: sum(m, 'raftgate_http_requests_total', (l) => httpOk(l) && l.status_class === '4xx')
          + sum(m, 'raftgate_llm_requests_total', (l) => modelOk(l) && l.status_class === '4xx'),
        e5: sum(m, 'raftgate_http_requests_total', (l) => httpOk(l) && l.status_class === '5xx')
          + sum(m, 'raftgate_llm_requests_total', (l) => modelOk(l) && l.status_class === '5xx'),
        restLatSum: sum(m, 'raftgate_http_request_duration_seconds_sum', routeOk),
        restLatN: sum(m, 'raftgate_http_request_duration_seconds_count', routeOk),
        llmLatSum: sum(m, 'raftgate_llm_request_duration_seconds_sum', modelOk),
        llmLatN: sum(m, 'raftgate_llm_request_duration_seconds_count', modelOk),
        tokIn: sum(m, 'raftgate_llm_tokens_total', (l) => modelOk(l) && l.type === 'input'),
        tokOut: sum(m, 'raftgate_llm_tokens_total', (l) => modelOk(l) && l.type === 'output'),
      });
      while (samples.length > KEEP_SAMPLES) samples.shift();
      drawLive();
    } catch (e) {
      if (alive) replace(liveNote, notice(`Cannot read /metrics: ${e.message}`, 'error'));
    }
  }

  function drawLive() {
    const series = { rest: [], llm: [], e4: [], e5: [], restLat: [], llmLat: [], tokIn: [], tokOut: [] };
    for (let i = 1; i < samples.length; i += 1) {
      const a = samples[i - 1];
      const b = samples[i];
      const secs = (b.t - a.t) / 1000;
      if (secs <= 0 || b.rest < a.rest || b.llm < a.llm) continue; // a restart reset the counters
      const per = (k) => (b[k] - a[k]) / secs;
      for (const k of ['rest', 'llm', 'e4', 'e5', 'tokIn', 'tokOut']) series[k].push([b.t, per(k)]);
      const avg = (s, n) => (b[n] > a[n] ? ((b[s] - a[s]) / (b[n] - a[n])) * 1000 : 0);
      series.restLat.push([b.t, avg('restLatSum', 'restLatN')]);
      series.llmLat.push([b.t, avg('llmLatSum', 'llmLatN')]);
    }
    replace(liveNote, samples.length < 2 ? notice('Collecting samples…') : null);
    replace(liveBox,
      lineChart({ id: 'chart-live-requests', title: 'Requests', unit: 'per second', seconds: true,
        series: [{ name: 'REST', points: series.rest }, { name: 'LLM', points: series.llm }] }),
      lineChart({ id: 'chart-live-errors', title: 'Errors', unit: 'per second', seconds: true,
        series: [{ name: '4xx', points: series.e4 }, { name: '5xx', points: series.e5 }] }),
      lineChart({ id: 'chart-live-latency', title: 'Average latency', unit: 'ms', seconds: true,
        series: [{ name: 'REST', points: series.restLat }, { name: 'LLM', points: series.llmLat }] }),
      lineChart({ id: 'chart-live-tokens', title: 'LLM tokens', unit: 'per second', seconds: true,
        series: [{ name: 'input', points: series.tokIn }, { name: 'output', points: series.tokOut }] }));
  }

  async function loadHistory() {
    const since = Date.now() - 3600 * 1000;
    const range = [Math.floor(since / 60000) * 60000, Date.now()];
    let minutes;
    const notes = [];
    try {
      const ans = await api('GET', `/analytics/timeseries${query({ from_ms: since, dimension: 'all' })}`);
      minutes = (ans.points || []).map((p) => ({
        t: p.minute_ms, n: p.requests, e4: p.errors_4xx, e5: p.errors_5xx,
        p50: p.requests ? p.p50_ms : null, p95: p.requests ? p.p95_ms : null, p99: p.requests ? p.p99_ms : null,
        tin: p.tokens_in, tout: p.tokens_out, cost: p.cost,
      }));
      if (ans.partial) notes.push(notice(`Partial: nodes ${(ans.missing_nodes || []).join(', ')} did not answer.`, 'error'));
    } catch (e) {
      if (!alive) return;
      if (!(e instanceof ApiError && e.status === 404)) {
        replace(historyNote, notice(`Cannot read analytics: ${e.message}`, 'error'));
        replace(historyBox);
        return;
      }
      const fromLogs = await historyFromLogs(since);
      if (!alive) return;
      if (fromLogs.error) {
        replace(historyNote, fromLogs.error);
        replace(historyBox);
        return;
      }
      minutes = fromLogs.minutes;
      notes.push(...fromLogs.notes);
    }
    if (!alive) return;
    replace(historyNote, ...notes);
    const pts = (f) => minutes.map((m) => [m.t, f(m)]).filter((p) => p[1] != null);
    replace(historyBox,
      lineChart({ id: 'chart-requests', range, title: 'Requests', unit: 'per minute', series: [{ name: 'requests', points: pts((m) => m.n) }] }),
      lineChart({ id: 'chart-errors', range, title: 'Errors', unit: 'per minute',
        series: [{ name: '4xx', points: pts((m) => m.e4) }, { name: '5xx', points: pts((m) => m.e5) }] }),
      lineChart({ id: 'chart-latency', range, title: 'Latency', unit: 'ms',
        series: [{ name: 'p50', points: pts((m) => m.p50) }, { name: 'p95', points: pts((m) => m.p95) },
          { name: 'p99', points: pts((m) => m.p99) }] }),
      lineChart({ id: 'chart-tokens', range, title: 'Tokens', unit: 'per minute',
        series: [{ name: 'input', points: pts((m) => m.tin) }, { name: 'output', points: pts((m) => m.tout) }] }),
      lineChart({ id: 'chart-cost', range, title: 'Cost', unit: 'price currency per minute', series: [{ name: 'cost', points: pts((m) => m.cost) }] }));
  }

  /** The per-minute history grouped from call logs, for nodes without analytics. */
  async function historyFromLogs(since) {
    const rows = [];
    let cursor = null;
    let partial = null;
    try {
      for (let page = 0; page < LOG_PAGES; page += 1) {
        const ans = await api('GET', `/logs${query({ from_ms: since, limit: LOG_PAGE, cursor })}`);
        rows.push(...(ans.items || []));
        if (ans.partial) partial = ans.missing_nodes || [];
        cursor = ans.next_cursor;
        if (!cursor) break;
      }
    } catch (e) {
      const msg = e instanceof ApiError && e.status === 404
        ? 'Neither analytics nor call logs are available on this node, so there is no per-minute history; the live charts below still work.'
        : `Cannot read call logs: ${e.message}`;
      return { error: notice(msg, e.status === 404 ? '' : 'error') };
    }
    const notes = [];
    if (partial) notes.push(notice(`Partial: nodes ${partial.join(', ')} did not answer.`, 'error'));
    if (cursor) notes.push(notice(`Showing the newest ${rows.length} calls only.`));
    return { minutes: groupPerMinute(rows, since, Date.now()), notes };
  }

  loadScope().catch(() => {}).finally(() => {
    if (!alive) return;
    sample();
    loadHistory();
  });
  drawLive();
  const timer = setInterval(sample, SAMPLE_MS);
  return () => {
    alive = false;
    clearInterval(timer);
  };
}

/** A call record's start, Unix ms (records carry `time_us`). */
export function logTime(r) {
  if (r.time_us != null) return r.time_us / 1000;
  return r.time_ms;
}

export function logLatencyMs(r) {
  if (r.latency_us != null) return r.latency_us / 1000;
  return r.latency_ms ?? null;
}

/** Cost in the model's price currency (records carry micro-units). */
export function logCost(r) {
  if (r.cost_micros != null) return r.cost_micros / 1e6;
  return r.cost ?? null;
}

function quantile(sorted, q) {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/**
 * Per-minute figures of call records between `from` and `to` (Unix ms); minutes without
 * calls count as zero so the lines do not skip them.
 */
export function groupPerMinute(rows, from, to) {
  const byMinute = new Map();
  for (let k = Math.floor(from / 60000) * 60000; k <= to; k += 60000) byMinute.set(k, []);
  for (const r of rows) {
    const t = logTime(r);
    if (!Number.isFinite(t)) continue;
    const k = Math.floor(t / 60000) * 60000;
    if (!byMinute.has(k)) byMinute.set(k, []);
    byMinute.get(k).push(r);
  }
  return [...byMinute.entries()].sort((a, b) => a[0] - b[0]).map(([t, rs]) => {
    const lat = rs.map(logLatencyMs).filter((v) => v != null).sort((a, b) => a - b);
    const status = (r) => Number(r.status) || 0;
    return {
      t,
      n: rs.length,
      e4: rs.filter((r) => status(r) >= 400 && status(r) < 500).length,
      e5: rs.filter((r) => status(r) >= 500).length,
      p50: lat.length ? quantile(lat, 0.5) : null,
      p95: lat.length ? quantile(lat, 0.95) : null,
      tin: rs.reduce((s, r) => s + (Number(r.tokens_in) || 0), 0),
      tout: rs.reduce((s, r) => s + (Number(r.tokens_out) || 0), 0),
      cost: rs.reduce((s, r) => s + (Number(logCost(r)) || 0), 0),
    };
  });
}
