// One page per resource collection: a table from GET /admin/v1/{collection} (the server
// already hides what the token may not read), and a JSON editor that creates (POST),
// updates (PUT) or deletes a resource. Controls the role cannot use are not shown; the
// server checks every write anyway. Subscriptions get approve / reject / revoke buttons,
// consumers a "New key" button.

import { api } from '../api.js';
import { h, replace, notice, cell, badge, fmtTime } from '../dom.js';

const withTenant = (me, body) => (me.tenant ? { ...body, tenant: me.tenant } : body);

/** Columns and a starting body per collection. */
export const KINDS = {
  tenants: { title: 'Tenants', cols: ['name', 'description'], template: () => ({ id: '', name: '' }) },
  services: { title: 'Services', cols: ['tenant', 'name', 'state', 'visibility', 'approval_required'],
    template: (me) => ({ id: '', tenant: me.tenant || '', name: '', state: 'draft', visibility: 'tenant', approval_required: false }) },
  routes: { title: 'Routes', cols: ['tenant', 'service', 'hosts', 'path', 'methods', 'target', 'policies'],
    template: (me) => withTenant(me, { id: '', path: '/example', methods: ['GET'], target: { upstream: '' }, policies: [{ key_auth: {} }] }) },
  upstreams: { title: 'Upstreams', cols: ['tenant', 'targets', 'balancer', 'scheme'],
    template: (me) => withTenant(me, { id: '', targets: [{ address: '127.0.0.1:8000', weight: 1 }] }) },
  consumers: { title: 'Consumers', cols: ['tenant', 'name', 'enabled'],
    template: (me) => ({ id: '', tenant: me.tenant || '', name: '' }) },
  api_keys: { title: 'API keys', cols: ['consumer', 'name', 'prefix', 'expires_at_ms'],
    noCreate: 'Create API keys from the Consumers page ("New key"): the secret is shown once.' },
  subscriptions: { title: 'Subscriptions', cols: ['consumer', 'service', 'state', 'note'],
    template: () => ({ id: '', consumer: '', service: '', note: '' }) },
  permissions: { title: 'Permissions', cols: ['consumer', 'target'],
    template: () => ({ id: '', consumer: '', target: { model: '' } }) },
  certificates: { title: 'Certificates', cols: ['snis'],
    template: () => ({ id: '', snis: ['example.com'], cert_pem: '', key_pem: '' }) },
  providers: { title: 'LLM providers', cols: ['type', 'base_url', 'api_version'],
    template: () => ({ id: '', type: 'openai', base_url: 'https://api.openai.com/v1', api_key: '' }) },
  models: { title: 'Models', cols: ['tenant', 'deployments', 'fallbacks', 'quotas'],
    template: (me) => withTenant(me, { id: '', deployments: [{ provider: '', model: '' }] }) },
  prompt_templates: { title: 'Prompt templates', cols: ['tenant', 'versions'],
    template: (me) => withTenant(me, { id: '', versions: [{ version: 1, model: '', messages: [{ role: 'user', content: 'Hello {{name}}' }], variables: ['name'] }] }) },
  quota_policies: { title: 'Quota policies', cols: ['tenant', 'scope', 'metric', 'window', 'limit', 'mode'],
    template: (me) => withTenant(me, { id: '', scope: ['consumer'], metric: 'requests', window: 'minute', limit: 1000 }) },
};

const META = ['revision', 'created_at_ms', 'updated_at_ms'];

/** May this role write `item` (or a new resource when item is null)? */
export function canWrite(me, coll, item) {
  if (me.role === 'admin') return true;
  if (me.role !== 'tenant-admin') return false;
  if (['tenants', 'providers', 'certificates'].includes(coll)) return false;
  if (item && Object.prototype.hasOwnProperty.call(item, 'tenant')) return item.tenant === me.tenant;
  return true; // owned through a consumer: the server listed it, so it is this tenant's
}

export function render(root, ctx, coll) {
  const kind = KINDS[coll];
  if (!kind) {
    replace(root, notice(`Unknown collection '${coll}'.`, 'error'));
    return undefined;
  }
  const { me } = ctx;
  const status = h('div', { id: 'resource-status' });
  const body = h('tbody');
  const editor = h('div', { class: 'editor panel hidden', id: 'editor' });
  const count = h('span', { class: 'muted' });
  const newButton = !kind.noCreate && canWrite(me, coll, null)
    ? h('button', { id: 'new-resource', class: 'primary', onclick: () => openEditor(null) }, `New ${kind.title.toLowerCase().replace(/s$/, '')}`)
    : null;
  const head = ['id', ...kind.cols, 'revision', ''];
  replace(root,
    h('div', { class: 'toolbar' }, h('h1', {}, kind.title), count, h('span', { class: 'spacer' }),
      h('button', { onclick: () => load() }, 'Refresh'), newButton),
    kind.noCreate && canWrite(me, coll, null) ? h('p', { class: 'muted' }, kind.noCreate) : null,
    status, editor,
    h('table', { id: 'resource-table', dataset: { collection: coll } },
      h('thead', {}, h('tr', {}, head.map((c) => h('th', {}, c.replace(/_/g, ' '))))), body));

  let items = [];
  let services = [];
  let consumers = [];

  async function load() {
    try {
      const [list, svc, con] = await Promise.all([
        api('GET', `/${coll}`),
        coll === 'subscriptions' ? api('GET', '/services') : null,
        coll === 'subscriptions' && me.role === 'tenant-admin' ? api('GET', '/consumers') : null,
      ]);
      items = list.items || [];
      services = svc ? svc.items || [] : [];
      consumers = con ? con.items || [] : [];
      count.textContent = `${items.length} item${items.length === 1 ? '' : 's'}`;
      replace(body, items.length ? items.map(row) : h('tr', {}, h('td', { colspan: head.length, class: 'muted' }, 'Nothing here yet.')));
    } catch (e) {
      replace(status, notice(`Cannot list ${coll}: ${e.message}`, 'error'));
    }
  }

  function row(item) {
    const tr = h('tr', { class: 'clickable', dataset: { id: item.id } },
      h('td', { class: 'mono' }, item.id),
      kind.cols.map((c) => h('td', { class: c === 'path' ? 'mono' : '' }, value(c, item[c]))),
      h('td', { class: 'num' }, item.revision ?? ''),
      h('td', { class: 'actions' }, actions(item)));
    tr.addEventListener('click', (ev) => {
      if (ev.target.closest('button')) return;
      openEditor(item);
    });
    return tr;
  }

  function value(col, v) {
    if (col === 'state') return badge(v);
    if (col === 'expires_at_ms') return v ? fmtTime(v) : 'never';
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    return cell(v);
  }

  function actions(item) {
    if (coll === 'subscriptions') {
      const svc = services.find((s) => s.id === item.service);
      const approver = me.role === 'admin' || (me.role === 'tenant-admin' && svc && svc.tenant === me.tenant);
      const owner = me.role === 'admin' || consumers.some((c) => c.id === item.consumer);
      const act = (name, label, cls) => h('button', { class: `small ${cls || ''}`, dataset: { action: name, id: item.id },
        onclick: () => transition(item, name) }, label);
      return [
        approver && item.state !== 'approved' ? act('approve', 'Approve', 'primary') : null,
        approver && item.state === 'pending' ? act('reject', 'Reject', 'danger') : null,
        (approver || owner) && (item.state === 'approved' || item.state === 'pending') ? act('revoke', 'Revoke', 'danger') : null,
      ];
    }
    if (coll === 'consumers' && canWrite(me, coll, item)) {
      return h('button', { class: 'small', dataset: { action: 'new-key', id: item.id }, onclick: () => newKey(item) }, 'New key');
    }
    return null;
  }

  async function transition(item, action) {
    try {
      const sub = await api('POST', `/subscriptions/${encodeURIComponent(item.id)}/${action}`, {});
      replace(status, notice(`Subscription ${sub.id} is now ${sub.state}.`, 'ok'));
      await load();
    } catch (e) {
      replace(status, notice(`Cannot ${action} ${item.id}: ${e.message}`, 'error'));
    }
  }

  async function newKey(consumer) {
    try {
      const key = await api('POST', `/consumers/${encodeURIComponent(consumer.id)}/keys`, {});
      replace(status, h('div', { class: 'notice ok', id: 'new-key' },
        `New API key ${key.id} for ${consumer.id} — copy it now, it is not shown again: `,
        h('span', { class: 'mono' }, key.key)));
    } catch (e) {
      replace(status, notice(`Cannot create a key: ${e.message}`, 'error'));
    }
  }

  function openEditor(item) {
    const writable = canWrite(me, coll, item);
    const shown = item ? Object.fromEntries(Object.entries(item).filter(([k]) => !META.includes(k))) : kind.template(me);
    const text = h('textarea', { id: 'resource-json', class: 'json', spellcheck: 'false', readonly: !writable });
    text.value = JSON.stringify(shown, null, 2);
    const msg = h('div', { id: 'editor-status' });
    let armed = false;
    const del = item && writable ? h('button', { id: 'delete-resource', class: 'danger', onclick: async () => {
      if (!armed) {
        armed = true;
        del.textContent = `Really delete ${item.id}?`;
        return;
      }
      try {
        await api('DELETE', `/${coll}/${encodeURIComponent(item.id)}`);
        replace(status, notice(`Deleted ${item.id}.`, 'ok'));
        editor.classList.add('hidden');
        await load();
      } catch (e) {
        replace(msg, notice(`Delete failed: ${e.message}`, 'error'));
      }
    } }, 'Delete') : null;
    const save = writable ? h('button', { id: 'save-resource', class: 'primary', onclick: async () => {
      let parsed;
      try {
        parsed = JSON.parse(text.value);
      } catch (e) {
        replace(msg, notice(`Not valid JSON: ${e.message}`, 'error'));
        return;
      }
      try {
        const saved = item
          ? await api('PUT', `/${coll}/${encodeURIComponent(item.id)}`, parsed)
          : await api('POST', `/${coll}`, parsed);
        replace(status, notice(`${item ? 'Updated' : 'Created'} ${saved.id} (revision ${saved.revision}).`, 'ok'));
        editor.classList.add('hidden');
        await load();
      } catch (e) {
        replace(msg, notice(`Save failed: ${e.message}`, 'error'));
      }
    } }, item ? 'Save' : 'Create') : null;
    replace(editor,
      h('h2', {}, item ? `${item.id}` : `New ${coll}`, writable ? '' : ' (read-only)'),
      h('p', { class: 'muted' }, item ? 'Edit the JSON and save (PUT). Bookkeeping fields are left out.' : 'Fill in the JSON and create (POST). The admin API docs list every field.'),
      text, msg,
      h('div', { class: 'toolbar' }, save, del, h('button', { onclick: () => editor.classList.add('hidden') }, 'Close')));
    editor.classList.remove('hidden');
    text.focus();
  }

  load();
  return undefined;
}
