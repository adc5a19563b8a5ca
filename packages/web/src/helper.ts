/**
 * Talking to `wsh device web-helper` on this machine: the page posts the web device challenge
 * to the first helper port that answers (JSON with a custom header: the browser sends a CORS
 * preflight, which the helper grants only to the proxies in its profile). The helper's answer
 * is only a hint: the page learns whether the session is trusted from the proxy.
 */
import type { web } from '@warden/api';

const HELPER_HEADER = 'x-warden-helper';

export type HelperOutcome =
  | { reached: true; port: number; answer: web.HelperProveResponse }
  | { reached: false; why: string };

export async function askHelper(
  ports: readonly number[],
  req: web.HelperProveRequest,
  timeoutMs = 60_000,
): Promise<HelperOutcome> {
  let why = 'no helper answered';
  for (const port of ports) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v1/prove`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [HELPER_HEADER]: '1' },
        body: JSON.stringify(req),
        signal: ctl.signal,
        // Chromium's local network access: this page asks for the loopback address explicitly.
        ...({ targetAddressSpace: 'loopback' } as object),
      });
      const answer = (await res.json().catch(() => ({
        ok: false,
        error: { code: 'WARDEN_ERR_CONNECTION', message: `the helper answered HTTP ${res.status}` },
      }))) as web.HelperProveResponse;
      return { reached: true, port, answer };
    } catch (e) {
      why = e instanceof Error ? e.message : String(e);
    } finally {
      clearTimeout(timer);
    }
  }
  return { reached: false, why };
}
