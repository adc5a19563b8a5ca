/**
 * How app access says no: HTTP 403 (or the catalogue's status) as a small HTML page for
 * browsers — what happened and what to do — or JSON `{ error: { code, message } }` for API
 * clients (an `Accept` that prefers `application/json` over `text/html`). Device trust
 * refusals read exactly `Access to this app requires a trusted device.`; lock refusals carry
 * the lock message (`lock targeting User:"alice" is in force`). Nothing from the upstream (its
 * address, its error text) ever appears here.
 * Internal to `srv/app`; the public surface is `index.ts`. Tested by `refusal.test.ts`.
 */
import type { ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';
import { type ErrorCode, errorCatalogue } from '@warden/api';
import { RawResponse } from './http1';

/** The sentence users see when device trust is required for an app and their device is not trusted. */
export const APP_DEVICE_TRUST_REQUIRED = 'Access to this app requires a trusted device.';

export interface AppRefusal {
  code: ErrorCode;
  /** One line: what happened. */
  message: string;
  /** What to do about it (plain text, for the page and the JSON `hint`). */
  hint?: string;
  /** Defaults to the catalogue's status of `code`. */
  status?: number;
  /** A page that helps (the Web UI's "This device" for web sessions). */
  link?: { href: string; text: string };
}

/** The refusal for a device trust denial, with the guide's troubleshooting advice. */
export function deviceTrustRefusal(app: string): AppRefusal {
  return {
    code: 'WARDEN_ERR_DEVICE_UNAUTHORIZED',
    status: 403,
    message: APP_DEVICE_TRUST_REQUIRED,
    hint:
      `An administrator requires a trusted device for "${app}". Use \`wsh proxy app ${app}\` or the ` +
      'certificate from `wsh app login` on an enrolled device (or launch it from a device-trusted Web UI ' +
      'session). If you ' +
      'already do, your device is not registered or enrolled: ask an administrator, run ' +
      '`wsh device enroll`, then `wsh logout` and `wsh login` again.',
  };
}

/** True when the client asked for JSON rather than HTML (`Accept`, first match wins by q-value). */
export function prefersJson(accept: string | undefined): boolean {
  if (!accept) return false;
  let json = -1;
  let html = -1;
  for (const part of accept.split(',')) {
    const [type = '', ...params] = part.trim().toLowerCase().split(';');
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const q = qParam ? Number(qParam.slice(2)) : 1;
    const quality = Number.isFinite(q) ? q : 0;
    if (type === 'application/json' || type.endsWith('+json')) json = Math.max(json, quality);
    if (type === 'text/html') html = Math.max(html, quality);
  }
  return json > 0 && json >= html;
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** The HTML page of a refusal (no scripts, no external resources). */
export function refusalPage(r: AppRefusal): string {
  const status = r.status ?? errorCatalogue[r.code].status;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${status} — Warden</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}p.hint{color:#555}code{background:#eee;padding:0 .2rem}</style></head>
<body><h1>${escapeHtml(r.message)}</h1>
${r.hint ? `<p class="hint">${escapeHtml(r.hint).replace(/`([^`]+)`/g, '<code>$1</code>')}</p>` : ''}
${r.link ? `<p><a id="help-link" href="${escapeHtml(r.link.href)}">${escapeHtml(r.link.text)}</a></p>` : ''}
<p><small>Warden · ${escapeHtml(r.code)}</small></p></body></html>
`;
}

/**
 * Writes the refusal as HTML or JSON, with `cache-control: no-store` and a strict CSP.
 *
 * @example
 *   sendRefusal(req.headers.accept, res, deviceTrustRefusal('grafana'));
 */
export function sendRefusal(
  accept: string | undefined,
  res: ServerResponse | Http2ServerResponse | RawResponse,
  r: AppRefusal,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const { status, headers, body } = refusalResponse(accept, r);
  if (res instanceof RawResponse) {
    res.send(status, headers, body);
    return;
  }
  res.writeHead(status, { ...headers, 'content-length': body.length });
  res.end(body);
}

/** The status, headers (without content-length) and body of a refusal. */
function refusalResponse(
  accept: string | undefined,
  r: AppRefusal,
): { status: number; headers: Record<string, string>; body: Buffer } {
  const json = prefersJson(accept);
  return {
    status: r.status ?? errorCatalogue[r.code].status,
    headers: {
      'content-type': json ? 'application/json' : 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
      'x-content-type-options': 'nosniff',
    },
    body: Buffer.from(
      json
        ? JSON.stringify({ error: { code: r.code, message: r.message, ...(r.hint ? { hint: r.hint } : {}) } })
        : refusalPage(r),
    ),
  };
}

/** The same refusal as raw HTTP/1.1 bytes, for an upgrade request (WebSocket) that gets none. */
export function rawRefusal(accept: string | undefined, r: AppRefusal): Buffer {
  const status = r.status ?? errorCatalogue[r.code].status;
  const json = prefersJson(accept);
  const body = json
    ? JSON.stringify({ error: { code: r.code, message: r.message, ...(r.hint ? { hint: r.hint } : {}) } })
    : refusalPage(r);
  const bytes = Buffer.from(body);
  return Buffer.concat([
    Buffer.from(
      `HTTP/1.1 ${status} ${status === 403 ? 'Forbidden' : 'Refused'}\r\n` +
        `content-type: ${json ? 'application/json' : 'text/html; charset=utf-8'}\r\n` +
        `content-length: ${bytes.length}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n`,
    ),
    bytes,
  ]);
}
