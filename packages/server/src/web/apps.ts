/**
 * Apps launched from the Web UI (DESIGN §7): the Launch button asks for a one-time launch
 * token (60 s, bound to the web session and the app); the browser goes to
 * `https://<app host>/.warden/launch?token=…`, where app_service trades it for an app cookie
 * (`__Host-warden_app`, HttpOnly, Secure, on the app's host only); every request with the
 * cookie speaks for the web session — its user and roles, and its device only once the web
 * session was device-trusted — so an app whose role requires a trusted device opens from a
 * trusted browser session and shows the 403 page otherwise.
 *
 *   /web_app_launch/<sha256(token)>     { session, app }           TTL 60 s, spent once
 *   /web_app_sessions/<sha256(cookie)>  { session, app, session_id } TTL = the web session's life
 *
 * Internal to `web/`.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { type AppResource, isWardenError } from '@warden/api';
import type { Backend } from '../backend';
import type { Clock } from '../clock';
import type { AppPrincipal, AppRefusal, WebAppHooks } from '../srv/app';
import { WEB_LAUNCH_PATH } from '../srv/app';
import { parseCookies } from './http';
import { type LoadedWebSession, sessionIdentity, type WebSessions } from './sessions';

const LAUNCH_PREFIX = '/web_app_launch/';
const APP_SESSION_PREFIX = '/web_app_sessions/';
const LAUNCH_TTL_MS = 60 * 1000;
export const APP_COOKIE = '__Host-warden_app';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

const signInAgain = (why: string): AppRefusal => ({
  code: 'WARDEN_ERR_NOT_LOGGED_IN',
  status: 401,
  message: why,
  hint: 'Sign in to the Web UI again and launch the app from the resource list.',
});

export class WebApps implements WebAppHooks {
  readonly #backend: Backend;
  readonly #clock: Clock;
  readonly #sessions: WebSessions;
  readonly deviceHelpUrl: string;

  constructor(o: { backend: Backend; clock: Clock; sessions: WebSessions; proxyPublicAddr: string }) {
    this.#backend = o.backend;
    this.#clock = o.clock;
    this.#sessions = o.sessions;
    this.deviceHelpUrl = `https://${o.proxyPublicAddr}/web/device`;
  }

  /** The Launch button: a one-time URL on the app's host (`appUri` is `https://<app host>[:port]`). */
  async launch(session: LoadedWebSession, app: string, appUri: string): Promise<{ url: string }> {
    const token = randomBytes(32).toString('base64url');
    await this.#backend.create(LAUNCH_PREFIX + sha256(token), JSON.stringify({ session: session.id, app }), {
      ttlMs: LAUNCH_TTL_MS,
    });
    return { url: `${appUri}${WEB_LAUNCH_PATH}?token=${token}` };
  }

  /** The web session behind a record, if it is still alive. */
  async #live(sessionId: string): Promise<LoadedWebSession | undefined> {
    const s = await this.#sessions.get(sessionId);
    return s && Date.parse(s.data.expires) > this.#clock.now() && s.data.locked === undefined ? s : undefined;
  }

  async exchange(token: string, app: AppResource): Promise<{ cookie: string } | AppRefusal> {
    const refused = signInAgain('This launch link expired or was already used.');
    if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return refused;
    const key = LAUNCH_PREFIX + sha256(token);
    const item = await this.#backend.get(key);
    if (!item) return refused;
    // Spend it: of two racing exchanges, one wins.
    try {
      if (!(await this.#backend.delete(key, { expectedModRev: item.modRev }))) return refused;
    } catch (e) {
      if (isWardenError(e, 'WARDEN_ERR_COMPARE_FAILED')) return refused;
      throw e;
    }
    const rec = JSON.parse(item.value) as { session: string; app: string };
    if (rec.app !== app.metadata.name) return refused;
    const session = await this.#live(rec.session);
    if (!session) return signInAgain('Your Web UI session ended.');
    const cookie = randomBytes(32).toString('base64url');
    const lifeMs = Date.parse(session.data.expires) - this.#clock.now();
    await this.#backend.create(
      APP_SESSION_PREFIX + sha256(cookie),
      JSON.stringify({ session: session.id, app: rec.app, session_id: randomUUID() }),
      { ttlMs: lifeMs },
    );
    return {
      cookie: `${APP_COOKIE}=${cookie}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=${Math.floor(lifeMs / 1000)}`,
    };
  }

  async principal(
    cookieHeader: string | undefined,
    app: AppResource,
    clientAddr: string,
  ): Promise<AppPrincipal | AppRefusal | undefined> {
    const cookie = parseCookies(cookieHeader).get(APP_COOKIE);
    if (!cookie) return undefined;
    const item = /^[A-Za-z0-9_-]{43}$/.test(cookie)
      ? await this.#backend.get(APP_SESSION_PREFIX + sha256(cookie))
      : undefined;
    if (!item) return signInAgain('Your app session ended.');
    const rec = JSON.parse(item.value) as { session: string; app: string; session_id: string };
    if (rec.app !== app.metadata.name) return signInAgain('This app session is for another app.');
    const s = await this.#live(rec.session);
    if (!s) return signInAgain('Your Web UI session ended.');
    return {
      identity: sessionIdentity(s, clientAddr),
      sessionId: rec.session_id,
      via: 'web',
    };
  }
}
