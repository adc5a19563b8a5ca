/**
 * A tiny DOM builder: `h('button', { onclick }, 'Sign in')`. Text always goes in as text nodes
 * (never as HTML), so nothing a server or user sends can inject markup.
 * Internal to the web package.
 */

type Child = Node | string | number | false | null | undefined | Child[];
type Props = Record<string, unknown>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v as EventListener);
    } else if (k === 'class') {
      el.className = String(v);
    } else if (k === 'value' && 'value' in el) {
      (el as HTMLInputElement).value = String(v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else
      el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** Replaces the children of `el`. */
export function mount(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A message box: error, ok, info or warn. */
export function msg(kind: 'error' | 'ok' | 'info' | 'warn', ...text: Child[]): HTMLDivElement {
  return h('div', { class: `msg ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...text);
}

export function labels(l: Record<string, string>): HTMLElement[] {
  return Object.entries(l).map(([k, v]) => h('span', { class: 'chip' }, `${k}=${v}`));
}

export function table(head: string[], rows: HTMLTableRowElement[]): HTMLTableElement {
  return h(
    'table',
    null,
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        head.map((t) => h('th', null, t)),
      ),
    ),
    h('tbody', null, rows),
  );
}
