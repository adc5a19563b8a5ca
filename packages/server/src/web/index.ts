/**
 * The Web UI's server side (DESIGN §7): cookie sessions in the backend (`WebSessions`), the
 * app's files and its cookie-authenticated JSON API under `/web` and `/v1/web` (`WebUi`), and
 * browser device trust (`WebDeviceTrust`: web device challenges answered by
 * `wsh device web-helper` over mTLS, through `webDeviceRoutes` on the proxy's RPC router).
 * Who may import: `bin/` (composition). Tested by the colocated `*.test.ts` (MemoryBackend,
 * FakeClock) and in Chromium by test/web/.
 */
import { rpc } from '@warden/api';
import type { RequestContext, Route } from '../proxy';
import type { WebDeviceTrust } from './device';

export { APP_COOKIE, WebApps } from './apps';
export { WEB_CHALLENGE_PREFIX, WebDeviceErrors, WebDeviceTrust, type WebDeviceTrustOptions } from './device';
export { WebUi, type WebUiOptions } from './handler';
export { contentSecurityPolicy, SESSION_COOKIE } from './http';
export {
  DEFAULT_WEB_IDLE_TIMEOUT_MS,
  type LoadedWebSession,
  sessionIdentity,
  WEB_SESSION_PREFIX,
  type WebSessionData,
  WebSessions,
} from './sessions';
export { WebSessionWatch } from './watch';

/** The helper's two mTLS routes, for the proxy's RPC router (`auth: 'user'`). */
export function webDeviceRoutes(device: WebDeviceTrust): Route[] {
  // The router set the caller's `clientAddr`.
  const caller = (ctx: RequestContext<unknown>) => ctx.identity!;
  return [
    {
      method: 'POST',
      path: rpc.Routes.deviceWebBegin,
      auth: 'user',
      body: rpc.DeviceWebBeginRequest,
      handler: (ctx) => device.begin(caller(ctx), ctx.body as rpc.DeviceWebBeginRequest),
    },
    {
      method: 'POST',
      path: rpc.Routes.deviceWebFinish,
      auth: 'user',
      body: rpc.DeviceWebFinishRequest,
      handler: (ctx) => device.finish(caller(ctx), ctx.body as rpc.DeviceWebFinishRequest),
    },
  ];
}
