// Sign in with an admin token (from `raftgate cluster init` or `POST /admin/v1/tokens`).
// The token is checked by GET /admin/v1/whoami before it is kept.

import { setToken, clearToken } from '../api.js';
import { h, replace, notice } from '../dom.js';

export function render(root, ctx) {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'eyJhbGciOiJIUzI1NiIs…', 'aria-label': 'Admin token' });
  const status = h('div', { id: 'login-status' }, ctx.message ? notice(ctx.message) : null);
  const button = h('button', { id: 'login-button', class: 'primary', type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'panel login', id: 'login-form' },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'Paste an admin token. It is kept in this tab only (sessionStorage) and sent as a bearer token to this node\'s admin API.'),
    input, button, status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    if (!t) {
      replace(status, notice('Enter a token.', 'error'));
      return;
    }
    button.disabled = true;
    setToken(t);
    try {
      const me = await ctx.refreshMe();
      replace(status, notice(`Signed in as ${me.subject} (${me.role}${me.tenant ? `, tenant ${me.tenant}` : ''}).`, 'ok'));
      ctx.go('#/cluster');
    } catch (e) {
      clearToken();
      replace(status, notice(`Sign-in failed: ${e.message}`, 'error'));
    } finally {
      button.disabled = false;
    }
  });
  replace(root, form);
  input.focus();
}
