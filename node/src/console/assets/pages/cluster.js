// Cluster view: GET /admin/v1/cluster every 2 s — members, roles, term, log and applied
// indexes, reachability, and the leader.

import { api } from '../api.js';
import { h, replace, notice, badge } from '../dom.js';

const REFRESH_MS = 2000;

export function render(root) {
  const cards = h('div', { class: 'cards', id: 'cluster-cards' });
  const body = h('tbody');
  const status = h('div');
  const updated = h('span', { class: 'muted', id: 'cluster-updated' });
  replace(root,
    h('div', { class: 'toolbar' }, h('h1', {}, 'Cluster'), h('span', { class: 'spacer' }), updated),
    status, cards,
    h('table', { id: 'nodes-table' },
      h('thead', {}, h('tr', {}, ['Node', 'Role', 'Voter', 'Reachable', 'Term', 'Last log', 'Applied', 'Admin URL', 'Data plane', 'Error'].map((t) => h('th', {}, t)))),
      body));

  let alive = true;
  async function load() {
    try {
      const s = await api('GET', '/cluster');
      if (!alive) return;
      const nodes = s.nodes || [];
      const reachable = nodes.filter((n) => n.reachable).length;
      replace(cards,
        card('Leader', s.leader_id != null ? `node ${s.leader_id}` : 'none', 'leader'),
        card('Term', s.term ?? ''),
        card('Nodes reachable', `${reachable} / ${nodes.length}`, 'reachable'),
        card('Answered by', `node ${s.node_id}`),
        card('Cluster id', s.cluster_id || '', 'cluster-id'));
      replace(body, nodes.map((n) => {
        const leader = n.id === s.leader_id;
        return h('tr', { class: 'node-row', dataset: { nodeId: n.id, role: n.role, leader: leader ? 'true' : 'false' } },
          h('td', { class: 'mono' }, String(n.id), leader ? [' ', badge('leader')] : null),
          h('td', {}, badge(n.role)),
          h('td', {}, n.voter ? 'voter' : 'learner'),
          h('td', {}, n.reachable ? badge('yes', 'ok') : badge('no', 'bad')),
          h('td', { class: 'num' }, n.term ?? ''),
          h('td', { class: 'num' }, n.last_log_index ?? ''),
          h('td', { class: 'num' }, n.applied_index ?? ''),
          h('td', { class: 'mono' }, n.admin_url || ''),
          h('td', { class: 'mono' }, n.http_addr || ''),
          h('td', { class: 'muted' }, n.error || ''));
      }));
      replace(status);
      updated.textContent = `updated ${new Date().toLocaleTimeString(undefined, { hour12: false })}`;
    } catch (e) {
      if (alive) replace(status, notice(`Cannot read the cluster: ${e.message}`, 'error'));
    }
  }

  load();
  const timer = setInterval(load, REFRESH_MS);
  return () => {
    alive = false;
    clearInterval(timer);
  };
}

function card(label, value, id) {
  return h('div', { class: 'card', id: id ? `card-${id}` : undefined },
    h('div', { class: 'label' }, label), h('div', { class: 'value' }, String(value)));
}
