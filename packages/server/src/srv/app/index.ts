/**
 * app_service (DESIGN §7): web apps behind the proxy. The proxy hands it TLS connections for
 * app host names (`<app>.<proxy host>`, HTTP/2 or HTTP/1.1) and `wsh proxy app` tunnels (ALPN
 * `warden-app/1`, HTTP/1.1 inside); per request it asks the one `AccessChecker` (locks, RBAC on
 * `app_labels`, device trust from the matching roles only — the cluster-wide mode does not
 * apply to apps), keeps one app session per login registered with the one `SessionMonitor`,
 * and forwards to the app with a `Warden-Jwt-Assertion` signed by the `jwt` CA (client copies
 * dropped). Refusals are HTML or JSON 403s (`Access to this app requires a trusted device.`).
 *
 * The seam for the Web UI (issue 12). An app session is opened through ONE entry point,
 * `AppService.serve(principal, app, conn?)`, where `principal` is
 * `{ identity: Identity, sessionId, via: 'cert' | 'web' }`:
 *   - today the proxy builds it from an app certificate (`via: 'cert'`, the certificate's
 *     session ID, its device extensions);
 *   - the Web UI builds it from a web session: `identity` from the session's user, roles and
 *     traits, `device` set only when the web session was marked device-trusted by the browser
 *     device ceremony, `expires` = the web session's expiry, `sessionId` = an app session ID
 *     the web session minted for this app (a cookie on the app's host), `via: 'web'`.
 * `serve` decides access, opens or finds the session (audited as `app.session.start` with
 * `via`), attaches the connection so locks cut it, and returns the `AppSession` (whose `jwt`
 * the forwarder sends) or an `AppRefusal` for `sendRefusal`. Nothing else needs to change to
 * add web-launched apps: routing by host name, forwarding, JWTs, audit and lock enforcement
 * are shared.
 *
 * Who may import: `bin/` (composition) and `proxy/` (the routing file). Tested by the
 * colocated tests and end to end in `test/app/` (a real node:http app with WebSocket and
 * SSE, nginx, curl, swtpm device trust, locks).
 */
export { badGateway, type ForwardContext, Forwarder, type Upstream, upstreamHeaders } from './forward';
export { appResourceFromConfig } from './heartbeat';
export {
  APP_DEVICE_TRUST_REQUIRED,
  type AppRefusal,
  deviceTrustRefusal,
  prefersJson,
  rawRefusal,
  refusalPage,
  sendRefusal,
} from './refusal';
export {
  type AppCertAuthority,
  AppService,
  type AppServiceOptions,
  type AppView,
  hostOnly,
  WEB_LAUNCH_PATH,
  type WebAppHooks,
} from './service';
export { type AppPrincipal, AppSession, type AppSessionOrigin, AppSessions } from './session';
