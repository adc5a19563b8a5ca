/**
 * Web apps from the client side: app certificates from `wsh app login` (stored per profile),
 * tunnels to an app through the proxy (`warden-app/1`) and the local plain listener of
 * `wsh proxy app`. Who may import: the CLIs, through `@warden/client`.
 */
export { type AppLogin, listAppLogins, loadAppLogin, removeAppLogins, saveAppLogin } from './logins';
export { type AppProxy, type AppProxyOptions, type AppTunnelInfo, dialApp, startAppProxy } from './proxy';
