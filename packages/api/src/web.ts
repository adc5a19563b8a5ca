/**
 * The Web UI's contract (DESIGN §7): the JSON API the single-page app at `https://<proxy>/web`
 * calls with its session cookie, and the loopback protocol between the page and
 * `wsh device web-helper`. The page (`packages/web`) imports these as types only; the server
 * validates every request body with the schemas.
 * Who may import: everyone.
 *
 * Browser device trust:
 *
 *   page                         proxy (cookie API)              wsh device web-helper
 *    │ POST /v1/web/device/challenge ─▶ │ {id, secret} bound to session,
 *    │ ◀── { id, secret, expires } ──── │ user, enrolled devices, address
 *    │ POST http://127.0.0.1:P/v1/prove { proxy, id, secret } (preflighted) ─▶ │
 *    │                                  │ ◀── mTLS /v1/devices/web/begin ──────│ 1. Init
 *    │                                  │ ── nonce ───────────────────────────▶│
 *    │                                  │ ◀── /v1/devices/web/finish (quote) ──│ 2. Challenge
 *    │                                  │ spends the challenge, marks the session trusted
 *    │ GET /v1/web/device/challenge/:id ▶ │ 3. Success: the page learns it from the server
 */
import { z } from 'zod';
import { WardenError } from './errors';

export const WebRoutes = {
  /** Static configuration for the page (cluster, helper ports, device trust mode). */
  config: '/v1/web/config',
  login: '/v1/web/login',
  logout: '/v1/web/logout',
  session: '/v1/web/session',
  resources: '/v1/web/resources',
  deviceChallenge: '/v1/web/device/challenge',
  /** Editors: `/v1/web/admin/:kind` (devices, locks, users, roles). */
  admin: '/v1/web/admin',
  locks: '/v1/web/locks',
  audit: '/v1/web/audit',
  signupBegin: '/v1/web/signup/begin',
  signupFinish: '/v1/web/signup/finish',
  /** `POST /v1/web/apps/:name/launch` → `{ url }`: a one-time link that opens the app. */
  apps: '/v1/web/apps',
} as const;

/** Header every state-changing request of the page carries: the session's CSRF token. */
export const CSRF_HEADER = 'x-warden-csrf';
/** Header the page sends to `wsh device web-helper` (not CORS-safelisted: forces a preflight). */
export const HELPER_HEADER = 'x-warden-helper';
/** The loopback ports `wsh device web-helper` listens on (the first free one). */
export const WEB_HELPER_PORTS: readonly number[] = Object.freeze([41780, 41781, 41782, 41783]);

/**
 * The helper ports in force: `WARDEN_WEB_HELPER_PORTS` (comma-separated, for tests and for
 * machines where 41780-41783 are taken), else WEB_HELPER_PORTS. The proxy (which tells the
 * page where to look) and wsh (which listens and looks) must be given the same list.
 *
 * @example
 *   webHelperPorts({ WARDEN_WEB_HELPER_PORTS: '50123' }) // [50123]
 */
export function webHelperPorts(env: Readonly<Record<string, string | undefined>>): readonly number[] {
  const v = env.WARDEN_WEB_HELPER_PORTS?.trim();
  if (!v) return WEB_HELPER_PORTS;
  const ports = v.split(',').map((p) => Number(p.trim()));
  if (ports.length > 16 || !ports.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535))
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `WARDEN_WEB_HELPER_PORTS "${v}" is not a comma-separated list of up to 16 ports (1-65535)`,
    );
  return Object.freeze(ports);
}
/** Longest life of a web device challenge. */
export const WEB_CHALLENGE_TTL_MS = 2 * 60 * 1000;

export interface ConfigResponse {
  cluster_name: string;
  proxy_public_addr: string;
  /** The cluster's device trust mode (roles may require more). */
  device_trust_mode: string;
  second_factor: string;
  helper_ports: number[];
}

export const LoginRequest = z.object({
  user: z.string().min(1).max(256),
  password: z.string().max(1024),
  otp_code: z.string().max(16).optional(),
});
export type LoginRequest = z.infer<typeof LoginRequest>;

/** A device that proved itself to this web session. */
export interface SessionDevice {
  id: string;
  asset_tag: string;
  credential_id: string;
  os_type: string;
  verified_at: string;
}

export interface SessionResponse {
  user: string;
  roles: string[];
  logins: string[];
  /** Send as the CSRF header on every state-changing request. */
  csrf_token: string;
  /** The session ends at this time whatever happens (≤ the user's certificate TTL). */
  expires: string;
  idle_timeout_ms: number;
  /** The strictest device trust mode of the cluster and the user's roles. */
  device_trust_mode: string;
  device?: SessionDevice;
  /** Whether the user may see the editor pages (devices, locks, users, roles, audit). */
  editor: boolean;
}

export interface ResourceView {
  kind: 'node' | 'db' | 'app';
  name: string;
  labels: Record<string, string>;
  /** Host name, address, protocol or URL: what the user needs to connect. */
  description: string;
  /** What the user may use: logins (nodes), db users (databases). */
  access: string[];
  /** A shell command that connects. */
  command?: string;
  /** Apps: the Launch button (POST /v1/web/apps/:name/launch answers the one-time URL). */
  launch?: boolean;
  /** True when a role or the cluster requires a trusted device for this resource. */
  requires_trusted_device?: boolean;
}

export interface ResourcesResponse {
  items: ResourceView[];
  /** Kinds this proxy does not serve (e.g. `app` before app access is configured). */
  unavailable: string[];
}

export interface DeviceChallengeResponse {
  id: string;
  secret: string;
  expires: string;
  /** The fallback link for `wsh device web-auth` (registered as the `wsh://` handler). */
  link: string;
}

export type ChallengeState = 'pending' | 'trusted' | 'failed' | 'expired';

export interface ChallengeStatusResponse {
  state: ChallengeState;
  /** Why it failed, and what to do. */
  message?: string;
  device?: SessionDevice;
}

export interface AdminItem {
  name: string;
  /** The resource as YAML (read-only view). */
  yaml: string;
  /** A few columns for the list. */
  summary: Record<string, string>;
}

export interface AdminListResponse {
  items: AdminItem[];
  /** Devices only: whether `device_trust.bind_owner` is on (a device authenticates only for its owner). */
  bind_owner?: boolean;
}

export const CreateLockRequest = z.object({
  target: z
    .object({
      user: z.string().max(256).optional(),
      role: z.string().max(256).optional(),
      login: z.string().max(256).optional(),
      node: z.string().max(256).optional(),
      device: z.string().max(256).optional(),
    })
    .refine((t) => Object.values(t).some((v) => v !== undefined && v !== ''), {
      message: 'a lock needs at least one target (user, role, login, node or device)',
    }),
  message: z.string().max(1024).optional(),
  ttl_ms: z.number().int().positive().optional(),
});
export type CreateLockRequest = z.infer<typeof CreateLockRequest>;

export interface AuditResponse {
  events: Record<string, unknown>[];
}

export const SignupBeginRequest = z.object({ token: z.string().min(1).max(512) });
export const SignupFinishRequest = z.object({
  token: z.string().min(1).max(512),
  password: z.string().max(1024),
  otp_code: z.string().max(16).optional(),
});

/** What the page posts to `wsh device web-helper`. */
export interface HelperProveRequest {
  /** The proxy the page came from (`host:port`): the helper picks the profile for it. */
  proxy: string;
  challenge_id: string;
  challenge_secret: string;
}

/** The helper's answer (the page trusts only the server's challenge status). */
export interface HelperProveResponse {
  ok: boolean;
  error?: { code: string; message: string };
}

export interface ErrorBody {
  error: { code: string; message: string };
}
