/**
 * Warden's Web UI: a single-page app served by the proxy under `/web` (DESIGN §7). Plain DOM,
 * no framework, no runtime downloads: scripts and styles come only from the proxy (strict CSP).
 *
 * Pages: sign-in, sign-up (invite link), resources, this device (browser device trust with
 * `wsh device web-helper`), and for editors: devices, locks, users, roles, audit log.
 * Imports only types from `@warden/api`. Built by scripts/build.mjs into dist/web; tested in
 * Chromium by test/web/.
 */
import type { web } from '@warden/api';
import { ApiError, call, Routes, setCsrf } from './api';
import { h, labels, mount, msg, table } from './dom';
import { askHelper } from './helper';

interface State {
  config?: web.ConfigResponse;
  session?: web.SessionResponse;
  /** A message to show on the next page (e.g. why the session ended). */
  flash?: HTMLElement;
}

const state: State = {};

/**
 * Whether a device trust mode demands a device of the person signed in here: `required`
 * and `required-for-humans` alike (bots never sign in to the Web UI).
 */
function demandsDevice(mode: string | undefined): boolean {
  return mode === 'required' || mode === 'required-for-humans';
}
const root = document.getElementById('app')!;

// ---- Routing -------------------------------------------------------------------------

type Page = (view: HTMLElement) => Promise<void> | void;

const pages: Record<string, { title: string; page: Page; editor?: boolean; public?: boolean }> = {
  login: { title: 'Sign in', page: loginPage, public: true },
  signup: { title: 'Sign up', page: signupPage, public: true },
  resources: { title: 'Resources', page: resourcesPage },
  device: { title: 'This device', page: devicePage },
  devices: { title: 'Devices', page: devicesPage, editor: true },
  locks: { title: 'Locks', page: locksPage, editor: true },
  users: { title: 'Users', page: (v) => yamlListPage(v, 'users', 'Users'), editor: true },
  roles: { title: 'Roles', page: (v) => yamlListPage(v, 'roles', 'Roles'), editor: true },
  audit: { title: 'Audit log', page: auditPage, editor: true },
};

function currentPage(): string {
  const name = location.pathname.replace(/^\/web\/?/, '').split('/')[0] ?? '';
  return name in pages ? name : '';
}

export function go(name: string, replace = false): void {
  const url = `/web/${name}`;
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  void render();
}

function link(name: string, text: string): HTMLAnchorElement {
  return h(
    'a',
    {
      href: `/web/${name}`,
      class: currentPage() === name ? 'active' : '',
      onclick: (e: MouseEvent) => {
        e.preventDefault();
        go(name);
      },
    },
    text,
  );
}

/** Handles an API error: an ended session goes back to sign-in with the reason. */
function failed(view: HTMLElement, e: unknown): void {
  if (e instanceof ApiError && (e.code === 'WARDEN_ERR_NOT_LOGGED_IN' || e.code === 'WARDEN_ERR_LOCKED')) {
    state.session = undefined;
    state.flash = msg('error', e.message);
    go('login', true);
    return;
  }
  view.append(msg('error', e instanceof Error ? e.message : String(e)));
}

async function render(): Promise<void> {
  state.config ??= await call<web.ConfigResponse>('GET', Routes.config).catch(() => undefined);
  let name = currentPage();
  const entry = pages[name];
  if (!entry?.public && !state.session) {
    try {
      state.session = await call<web.SessionResponse>('GET', Routes.session);
      setCsrf(state.session.csrf_token);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401) && !state.flash)
        state.flash = msg('error', e instanceof Error ? e.message : String(e));
      if (e instanceof ApiError && e.status !== 401 && e.code !== 'WARDEN_ERR_CONNECTION')
        state.flash = msg('error', e.message);
      name = 'login';
      history.replaceState(null, '', '/web/login');
    }
  }
  if (!name) {
    name = state.session ? 'resources' : 'login';
    history.replaceState(null, '', `/web/${name}`);
  }
  const page = pages[name]!;
  document.title = `${page.title} — Warden`;
  const view = h('main', { id: `page-${name}` });
  mount(root, page.public ? '' : nav(), view);
  if (state.flash) {
    view.append(state.flash);
    state.flash = undefined;
  }
  if (page.editor && !state.session?.editor) {
    view.append(
      h('h1', null, page.title),
      msg('error', 'Only editors may see this page (roles: editor, auditor).'),
    );
    return;
  }
  try {
    await page.page(view);
  } catch (e) {
    failed(view, e);
  }
}

function nav(): HTMLElement {
  const s = state.session!;
  const trusted = s.device ? '✓ trusted device' : 'device not trusted';
  return h(
    'header',
    { class: 'top' },
    h('span', { class: 'brand' }, `Warden${state.config ? ` · ${state.config.cluster_name}` : ''}`),
    link('resources', 'Resources'),
    link('device', 'This device'),
    s.editor && [
      link('devices', 'Devices'),
      link('locks', 'Locks'),
      link('users', 'Users'),
      link('roles', 'Roles'),
      link('audit', 'Audit log'),
    ],
    h('span', { class: 'spacer' }),
    h('span', { id: 'whoami' }, `${s.user} · ${trusted}`),
    h('button', { id: 'sign-out', onclick: signOut }, 'Sign out'),
  );
}

async function signOut(): Promise<void> {
  try {
    await call('POST', Routes.logout);
  } catch {
    // Already ended: either way we are signed out.
  }
  state.session = undefined;
  setCsrf('');
  state.flash = msg('ok', 'You are signed out.');
  go('login');
}

// ---- Sign-in and sign-up -----------------------------------------------------------------

function field(id: string, label: string, type = 'text', extra: Record<string, unknown> = {}) {
  const input = h('input', { id, name: id, type, ...extra });
  return { input, el: h('div', null, h('label', { for: id }, label), input) };
}

function loginPage(view: HTMLElement): void {
  const user = field('user', 'User', 'text', { autocomplete: 'username', required: true });
  const password = field('password', 'Password', 'password', { autocomplete: 'current-password' });
  const otp = field('otp', 'OTP code', 'text', { inputmode: 'numeric', autocomplete: 'one-time-code' });
  const status = h('div');
  const button = h('button', { class: 'full', type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    {
      onsubmit: async (e: Event) => {
        e.preventDefault();
        button.disabled = true;
        mount(status);
        try {
          const s = await call<web.SessionResponse>('POST', Routes.login, {
            user: user.input.value,
            password: password.input.value,
            otp_code: otp.input.value || undefined,
          });
          state.session = s;
          setCsrf(s.csrf_token);
          // A session that needs a trusted device goes to "This device" first.
          go(demandsDevice(s.device_trust_mode) && !s.device ? 'device' : 'resources');
        } catch (err) {
          mount(status, msg('error', err instanceof Error ? err.message : String(err)));
        } finally {
          button.disabled = false;
        }
      },
    },
    user.el,
    password.el,
    state.config?.second_factor === 'off' ? null : otp.el,
    button,
  );
  view.classList.add('narrow');
  view.append(h('div', { class: 'card' }, h('h1', null, 'Sign in to Warden'), form, status));
}

function signupPage(view: HTMLElement): void {
  view.classList.add('narrow');
  const token = new URLSearchParams(location.hash.slice(1)).get('token') ?? '';
  const card = h('div', { class: 'card' }, h('h1', null, 'Sign up'));
  view.append(card);
  if (!token) {
    card.append(msg('error', 'This page needs the invite link from your administrator (wctl users add).'));
    return;
  }
  void (async () => {
    let begin: { user: string; totp?: { secret: string; uri: string } };
    try {
      begin = await call('POST', Routes.signupBegin, { token });
    } catch (e) {
      card.append(msg('error', e instanceof Error ? e.message : String(e)));
      return;
    }
    const password = field('password', 'New password', 'password', { autocomplete: 'new-password' });
    const again = field('password2', 'Repeat the password', 'password', { autocomplete: 'new-password' });
    const otp = field('otp', 'OTP code from your authenticator app', 'text', { inputmode: 'numeric' });
    const status = h('div');
    const form = h(
      'form',
      {
        onsubmit: async (e: Event) => {
          e.preventDefault();
          if (password.input.value !== again.input.value) {
            mount(status, msg('error', 'The two passwords differ.'));
            return;
          }
          try {
            await call('POST', Routes.signupFinish, {
              token,
              password: password.input.value,
              otp_code: otp.input.value || undefined,
            });
            history.replaceState(null, '', '/web/login');
            state.flash = msg('ok', `Welcome, ${begin.user}: sign in with your new password.`);
            go('login', true);
          } catch (err) {
            mount(status, msg('error', err instanceof Error ? err.message : String(err)));
          }
        },
      },
      h('p', null, 'User ', h('b', { id: 'signup-user' }, begin.user)),
      password.el,
      again.el,
      begin.totp && [
        h('p', { class: 'muted' }, 'Add this secret to your authenticator app (TOTP, 6 digits, 30 s):'),
        h('pre', { id: 'totp-secret' }, begin.totp.secret),
        h('p', { class: 'muted' }, h('code', { id: 'totp-uri' }, begin.totp.uri)),
        otp.el,
      ],
      h('button', { class: 'full', type: 'submit' }, 'Sign up'),
    );
    card.append(form, status);
  })();
}

// ---- Resources ----------------------------------------------------------------------------

async function resourcesPage(view: HTMLElement): Promise<void> {
  const data = await call<web.ResourcesResponse>('GET', Routes.resources);
  const search = h('input', {
    id: 'search',
    type: 'search',
    placeholder: 'Search by name, label or description',
  });
  let kind = 'all';
  const body = h('div');
  const kinds = ['all', 'node', 'db', 'app'] as const;
  const names: Record<string, string> = { all: 'All', node: 'Servers', db: 'Databases', app: 'Applications' };
  const tabs = h(
    'div',
    { class: 'tabs' },
    kinds.map((k) =>
      h(
        'button',
        {
          class: k === kind ? 'on' : '',
          'data-kind': k,
          onclick: (e: Event) => {
            kind = k;
            for (const b of tabs.querySelectorAll('button')) b.classList.toggle('on', b === e.currentTarget);
            draw();
          },
        },
        names[k]!,
      ),
    ),
  );
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const rows = data.items
      .filter((r) => kind === 'all' || r.kind === kind)
      .filter((r) => {
        if (!q) return true;
        const text = [r.name, r.description, ...Object.entries(r.labels).map(([k, v]) => `${k}=${v}`)].join(
          ' ',
        );
        return text.toLowerCase().includes(q);
      })
      .map((r) =>
        h(
          'tr',
          { 'data-name': r.name },
          h('td', null, names[r.kind] ?? r.kind),
          h('td', null, h('b', null, r.name)),
          h('td', null, labels(r.labels)),
          h('td', null, r.description),
          h('td', null, r.access.join(', ')),
          h(
            'td',
            null,
            r.launch
              ? h(
                  'button',
                  {
                    class: 'launch',
                    'data-app': r.name,
                    onclick: async () => {
                      try {
                        const { url } = await call<{ url: string }>(
                          'POST',
                          `${Routes.apps}/${encodeURIComponent(r.name)}/launch`,
                        );
                        location.assign(url);
                      } catch (e) {
                        failed(body, e);
                      }
                    },
                  },
                  'Launch',
                )
              : r.command
                ? h('code', null, r.command)
                : '',
          ),
        ),
      );
    const unavailable = data.unavailable.filter((k) => kind === 'all' || k === kind);
    mount(
      body,
      rows.length
        ? table(['Kind', 'Name', 'Labels', 'Description', 'Access', 'Connect'], rows)
        : h('p', { class: 'muted', id: 'empty' }, 'Nothing you may reach matches.'),
      unavailable.length
        ? h(
            'p',
            { class: 'muted' },
            `Not served by this proxy: ${unavailable.map((k) => names[k]).join(', ')}.`,
          )
        : null,
    );
  };
  search.addEventListener('input', draw);
  draw();
  view.append(h('div', { class: 'card' }, h('h1', null, 'Resources'), tabs, search, body));
}

// ---- This device ------------------------------------------------------------------------------

async function devicePage(view: HTMLElement): Promise<void> {
  const s = await call<web.SessionResponse>('GET', Routes.session);
  state.session = s;
  const card = h('div', { class: 'card' }, h('h1', null, 'This device'));
  view.append(card);
  const mode = s.device_trust_mode;
  if (s.device) {
    card.append(
      msg(
        'ok',
        h('span', { id: 'device-state', class: 'badge ok' }, 'This browser session is device-trusted.'),
      ),
      h(
        'dl',
        null,
        h('dt', null, 'Device ID'),
        h('dd', { id: 'device-id' }, s.device.id),
        h('dt', null, 'Asset tag'),
        h('dd', null, s.device.asset_tag),
        h('dt', null, 'OS'),
        h('dd', null, s.device.os_type),
        h('dt', null, 'Credential'),
        h('dd', null, s.device.credential_id),
        h('dt', null, 'Verified'),
        h('dd', null, new Date(s.device.verified_at).toLocaleString()),
      ),
    );
    return;
  }
  card.append(
    h(
      'p',
      null,
      h('span', { id: 'device-state', class: 'badge bad' }, 'This browser session is not device-trusted.'),
    ),
    h(
      'p',
      null,
      demandsDevice(mode)
        ? 'Your cluster or your roles require a trusted device: resources refuse you until this browser session is proved by an enrolled device.'
        : mode === 'optional'
          ? 'Device trust is optional for you; roles on some resources may still require it.'
          : 'Device trust is off for you.',
    ),
    h('h2', null, 'How'),
    h(
      'ol',
      null,
      h(
        'li',
        null,
        'Enroll this machine once: ',
        h('code', null, 'wsh device enroll --token=TOKEN'),
        ' (or ',
        h('code', null, 'wsh device enroll --current-device'),
        ').',
      ),
      h('li', null, 'Log in with wsh as the same user: ', h('code', null, `wsh login --user=${s.user}`), '.'),
      h(
        'li',
        null,
        'Run the device helper: ',
        h('code', null, 'wsh device web-helper'),
        ' (',
        h('code', null, 'wsh device web-helper --install'),
        ' starts it with your desktop session).',
      ),
      h('li', null, 'Press the button below.'),
    ),
  );
  const status = h('div', { id: 'device-status' });
  const button = h('button', { id: 'trust-device' }, 'Trust this device');
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await proveDevice(status);
    } finally {
      button.disabled = false;
    }
  });
  card.append(button, status);
}

/** Browser device trust: a challenge from the proxy, handed to the helper; the proxy says how it went. */
async function proveDevice(status: HTMLElement): Promise<void> {
  mount(status, msg('info', 'Asking wsh on this machine to prove the device with its TPM…'));
  const challenge = await call<web.DeviceChallengeResponse>('POST', Routes.deviceChallenge);
  const first = await call<web.ChallengeStatusResponse>('GET', `${Routes.deviceChallenge}/${challenge.id}`);
  if (first.state === 'failed') {
    mount(status, msg('error', first.message ?? 'device trust failed'));
    return;
  }
  const ports = state.config?.helper_ports ?? [];
  // The helper knows the proxy by the name wsh logged in to; the page names the one it is on.
  const link = new URL(challenge.link);
  link.searchParams.set('proxy', location.host);
  const helper = askHelper(ports, {
    proxy: location.host,
    challenge_id: challenge.id,
    challenge_secret: challenge.secret,
  });
  let reached: boolean | undefined;
  let helperError: string | undefined;
  void helper.then((o) => {
    reached = o.reached;
    if (o.reached && !o.answer.ok) helperError = o.answer.error?.message;
  });
  const deadline = Date.parse(challenge.expires);
  for (;;) {
    const st = await call<web.ChallengeStatusResponse>('GET', `${Routes.deviceChallenge}/${challenge.id}`);
    if (st.state === 'trusted') {
      state.flash = msg('ok', 'This device is now trusted for this browser session.');
      state.session = undefined;
      go('device', true);
      return;
    }
    if (st.state !== 'pending') {
      mount(status, msg('error', st.message ?? 'device trust failed'));
      return;
    }
    if (reached === false) {
      mount(
        status,
        msg(
          'error',
          h('b', null, 'The device helper is not running on this machine. '),
          'Start it with ',
          h('code', null, 'wsh device web-helper'),
          ' and press the button again — or open this link with wsh: ',
        ),
        h('p', null, h('a', { id: 'wsh-link', href: link.toString() }, 'Prove this device with wsh')),
        h(
          'p',
          { class: 'muted' },
          'The link runs ',
          h('code', null, 'wsh device web-auth'),
          ' (installed by ',
          h('code', null, 'wsh device web-helper --install'),
          '); this page updates when it is done.',
        ),
      );
      reached = undefined;
    }
    if (helperError && reached) {
      mount(status, msg('error', helperError));
      helperError = undefined;
    }
    if (Date.now() > deadline) {
      mount(status, msg('error', 'The device challenge expired: press "Trust this device" again.'));
      return;
    }
    await new Promise((r) => setTimeout(r, 400));
  }
}

// ---- Editors ------------------------------------------------------------------------------------

async function devicesPage(view: HTMLElement): Promise<void> {
  const data = await call<web.AdminListResponse>('GET', `${Routes.admin}/devices`);
  const rows = data.items.map((d) =>
    h(
      'tr',
      { 'data-device': d.summary.asset_tag ?? d.name },
      h('td', null, h('code', null, d.name)),
      h('td', null, d.summary.asset_tag ?? ''),
      h('td', null, d.summary.os ?? ''),
      h('td', null, d.summary.enroll_status ?? ''),
      h('td', null, d.summary.attestation ?? ''),
      h('td', { class: 'owner' }, d.summary.owner || h('span', { class: 'muted' }, 'none')),
    ),
  );
  view.append(
    h(
      'div',
      { class: 'card' },
      h('h1', null, 'Devices'),
      h(
        'p',
        { id: 'owner-binding', class: 'muted' },
        data.bind_owner
          ? 'Owner binding is on (device_trust.bind_owner): a device authenticates only for its owner; other users on it get no device trust.'
          : 'Owner binding is off: any user on a device gets its device trust; the owner is recorded (the user who enrolled it, or the imported owner).',
      ),
      rows.length
        ? table(['ID', 'Asset tag', 'OS', 'Enroll status', 'Attestation', 'Owner'], rows)
        : h('p', { class: 'muted' }, 'No devices in the inventory.'),
    ),
  );
}

async function locksPage(view: HTMLElement): Promise<void> {
  const data = await call<web.AdminListResponse>('GET', `${Routes.admin}/locks`);
  const status = h('div');
  const rows = data.items.map((l) =>
    h(
      'tr',
      { 'data-lock': l.name },
      h('td', null, l.summary.target ?? ''),
      h('td', null, l.summary.message ?? ''),
      h('td', null, l.summary.expires ?? ''),
      h(
        'td',
        null,
        h(
          'button',
          {
            class: 'danger',
            onclick: async () => {
              try {
                await call('DELETE', `${Routes.locks}/${encodeURIComponent(l.name)}`);
                go('locks', true);
              } catch (e) {
                mount(status, msg('error', e instanceof Error ? e.message : String(e)));
              }
            },
          },
          'Remove',
        ),
      ),
    ),
  );
  const targetKind = h(
    'select',
    { id: 'lock-kind' },
    ['user', 'role', 'device', 'login', 'node'].map((k) => h('option', { value: k }, k)),
  );
  const target = h('input', { id: 'lock-target', placeholder: 'alice, or a device ID' });
  const message = h('input', { id: 'lock-message', placeholder: 'why (shown to the user)' });
  const ttl = h('select', { id: 'lock-ttl' }, [
    h('option', { value: '' }, 'until removed'),
    h('option', { value: String(3600_000) }, '1 hour'),
    h('option', { value: String(12 * 3600_000) }, '12 hours'),
    h('option', { value: String(24 * 3600_000) }, '1 day'),
  ]);
  const form = h(
    'form',
    {
      onsubmit: async (e: Event) => {
        e.preventDefault();
        try {
          const r = await call<{ name: string; warnings?: string[] }>('POST', Routes.locks, {
            target: { [targetKind.value]: target.value.trim() },
            ...(message.value ? { message: message.value } : {}),
            ...(ttl.value ? { ttl_ms: Number(ttl.value) } : {}),
          });
          state.flash = msg(
            r.warnings?.length ? 'warn' : 'ok',
            `Lock ${r.name} created.`,
            ...(r.warnings ?? []).map((w) => h('div', null, w)),
          );
          go('locks', true);
        } catch (err) {
          mount(status, msg('error', err instanceof Error ? err.message : String(err)));
        }
      },
    },
    h(
      'div',
      { class: 'row' },
      h('div', null, h('label', { for: 'lock-kind' }, 'Target'), targetKind),
      h('div', null, h('label', { for: 'lock-target' }, 'Value'), target),
      h('div', null, h('label', { for: 'lock-message' }, 'Message'), message),
      h('div', null, h('label', { for: 'lock-ttl' }, 'Expires'), ttl),
      h('button', { type: 'submit', id: 'lock-create' }, 'Create lock'),
    ),
  );
  view.append(
    h(
      'div',
      { class: 'card' },
      h('h1', null, 'Locks'),
      form,
      status,
      rows.length
        ? table(['Target', 'Message', 'Expires', ''], rows)
        : h('p', { class: 'muted' }, 'No locks in force.'),
    ),
  );
}

async function yamlListPage(view: HTMLElement, kind: 'users' | 'roles', title: string): Promise<void> {
  const data = await call<web.AdminListResponse>('GET', `${Routes.admin}/${kind}`);
  const card = h(
    'div',
    { class: 'card' },
    h('h1', null, title),
    h('p', { class: 'muted' }, 'Read-only; edit with wctl edit.'),
  );
  for (const item of data.items) {
    card.append(
      h(
        'details',
        null,
        h(
          'summary',
          null,
          h('b', null, item.name),
          ' ',
          Object.values(item.summary).filter(Boolean).join(' · '),
        ),
        h('pre', null, item.yaml),
      ),
    );
  }
  view.append(card);
}

async function auditPage(view: HTMLElement): Promise<void> {
  const q = new URLSearchParams(location.search);
  const inputs = {
    from: h('input', { id: 'audit-from', type: 'datetime-local', value: q.get('from') ?? '' }),
    to: h('input', { id: 'audit-to', type: 'datetime-local', value: q.get('to') ?? '' }),
    type: h('input', { id: 'audit-type', placeholder: 'user.login', value: q.get('type') ?? '' }),
    user: h('input', { id: 'audit-user', value: q.get('user') ?? '' }),
    device: h('input', {
      id: 'audit-device',
      placeholder: 'device ID or asset tag',
      value: q.get('device') ?? '',
    }),
  };
  const results = h('div');
  const detail = h('div');
  const search = async () => {
    const p = new URLSearchParams();
    for (const [k, el] of Object.entries(inputs)) {
      const v = el.value.trim();
      if (!v) continue;
      p.set(k, k === 'from' || k === 'to' ? new Date(v).toISOString() : v);
    }
    mount(detail);
    try {
      const data = await call<web.AuditResponse>('GET', `${Routes.audit}?${p.toString()}`);
      const rows = data.events.map((e) =>
        h(
          'tr',
          {
            class: 'clickable',
            onclick: () =>
              mount(
                detail,
                h('h2', null, 'Event'),
                h('pre', { id: 'audit-detail' }, JSON.stringify(e, null, 2)),
              ),
          },
          h('td', null, String(e.time ?? '')),
          h('td', null, String(e.type ?? '')),
          h('td', null, String(e.code ?? '')),
          h('td', null, String(e.user ?? '')),
          h('td', null, e.success === false ? h('span', { class: 'badge bad' }, 'failed') : 'ok'),
          h('td', null, String((e.device as { id?: string } | undefined)?.id ?? e.device_id ?? '')),
        ),
      );
      mount(
        results,
        rows.length
          ? table(['Time', 'Type', 'Code', 'User', 'Result', 'Device'], rows)
          : h('p', { class: 'muted' }, 'No events match.'),
      );
    } catch (e) {
      failed(results, e);
    }
  };
  const form = h(
    'form',
    {
      onsubmit: (e: Event) => {
        e.preventDefault();
        void search();
      },
    },
    h(
      'div',
      { class: 'row' },
      Object.entries(inputs).map(([k, el]) => h('div', null, h('label', { for: el.id }, k), el)),
      h('button', { type: 'submit', id: 'audit-search' }, 'Search'),
    ),
  );
  view.append(h('div', { class: 'card' }, h('h1', null, 'Audit log'), form, results, detail));
  await search();
}

window.addEventListener('popstate', () => void render());
void render();
