/**
 * `wsh proxy app NAME -p PORT`: a local plain HTTP listener on loopback; every connection to
 * it is dialed through the proxy (TLS, ALPN `warden-app/1`, the app certificate) and relayed
 * byte for byte, so browsers, curl and WebSocket clients reach the app as the profile's user
 * (server side: packages/server/src/proxy/app-routing.ts). Whoever reaches the port acts as
 * that user: it listens on 127.0.0.1 only.
 */
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { APP_ALPN } from '@warden/api';
import { type LocalRelay, startLocalRelay } from '../api/local-relay';
import { SPARE_IDLE_MS, SpareConnection } from '../api/spare';
import { openTunnel } from '../api/tunnel';
import type { LoadedProfile } from '../profile';
import type { AppLogin } from './logins';

/** The app as the proxy describes it on a tunnel. */
export interface AppTunnelInfo {
  name: string;
  public_addr: string;
  labels: Record<string, string>;
}

/**
 * One tunnel to the app: TLS with the app certificate and the profile's key, the request line,
 * then HTTP/1.1 inside. Throws WardenError with the proxy's reason (NOT_FOUND, BAD_CERTIFICATE…).
 *
 * @example
 *   const { stream } = await dialApp(profile, login);
 */
export async function dialApp(
  profile: LoadedProfile,
  login: AppLogin,
  connected?: Promise<TLSSocket>,
): Promise<{ stream: Duplex; app: AppTunnelInfo }> {
  const { stream, info } = await openTunnel<AppTunnelInfo>(
    appProfile(profile, login),
    APP_ALPN,
    { app: login.name },
    'app',
    connected,
  );
  return { stream, app: info };
}

/** The profile's key with the app certificate: what an app tunnel's TLS connection presents. */
function appProfile(profile: LoadedProfile, login: AppLogin): LoadedProfile {
  return { ...profile, tlsCert: login.certPem };
}

export interface AppProxyOptions {
  profile: LoadedProfile;
  login: AppLogin;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** A connection could not be dialed (the local client sees its connection close). */
  onError?: (e: Error) => void;
  /** How long a connection made ahead waits for a client (default SPARE_IDLE_MS; 0: none). */
  spareIdleMs?: number;
}

export interface AppProxy extends LocalRelay {
  /** `http://127.0.0.1:PORT`. */
  url: string;
}

/**
 * @example
 *   const p = await startAppProxy({ profile, login, port: 8888 });
 *   // curl http://127.0.0.1:8888/
 *   await p.close();
 */
export async function startAppProxy(o: AppProxyOptions): Promise<AppProxy> {
  // A browser or a load generator opens its next connection while the others are busy: one
  // made ahead spares it the TLS handshake (the proxy still decides on its request line, and
  // on every HTTP request in it).
  const spare = new SpareConnection(APP_ALPN, o.spareIdleMs ?? SPARE_IDLE_MS);
  const profile = appProfile(o.profile, o.login);
  const relay = await startLocalRelay({
    ...(o.host !== undefined ? { host: o.host } : {}),
    ...(o.port !== undefined ? { port: o.port } : {}),
    ...(o.onError ? { onError: o.onError } : {}),
    dial: () => spare.dial(profile, (ready) => dialApp(o.profile, o.login, ready)),
  });
  const close = relay.close;
  return Object.assign(relay, {
    url: `http://${relay.host}:${relay.port}`,
    close: () => {
      spare.close();
      return close();
    },
  });
}
