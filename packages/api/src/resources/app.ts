/**
 * `kind: app`, version v3: an internal web app that app_service reverse-proxies. Two sources,
 * as for databases:
 *
 *   - app_service registers the apps of its config by heartbeat: `metadata.expires` is the
 *     heartbeat's TTL, so an app whose agent stops heartbeating drops out.
 *   - Admins `wctl create` them (usually without expiry) for an app_service to serve.
 *
 * `metadata.name` is what users type (`wsh app login NAME`) and, because browsers reach an
 * app at `<name>.<proxy public host>`, it must be a DNS label (lower-case letters, digits,
 * `-`). `metadata.labels` are what roles' `app_labels` match. `spec.uri` is where app_service
 * sends requests (`http://` or `https://`); `spec.public_addr` another host name the app
 * answers to at the proxy (default `<name>.<proxy public host>`).
 * Internal to `resources/`; the public surface is `resources/index.ts`.
 *
 * @example
 *   kind: app
 *   version: v3
 *   metadata: { name: grafana, labels: { env: prod } }
 *   spec: { uri: "http://127.0.0.1:3000", rewrite: { headers: [{ name: X-Env, value: prod }] } }
 */
import { z } from 'zod';
import { metadataSchema, resourceSchema } from './common';

/** A DNS label: what `<app>.<proxy host>` needs. */
const APP_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export const appNameSchema = z
  .string({ error: 'expected an app name' })
  .refine((name) => APP_NAME.test(name), {
    error:
      'must be a DNS label: 1 to 63 lower-case letters, digits or "-", starting and ending with a letter or digit',
  });

/** Where app_service sends requests: an absolute http(s) URL without credentials. */
export const appUriSchema = z.string({ error: 'expected a URL like "http://127.0.0.1:3000"' }).refine(
  (text) => {
    try {
      const u = new URL(text);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '' && !u.username;
    } catch {
      return false;
    }
  },
  { error: 'expected an http:// or https:// URL without user or password, like "http://127.0.0.1:3000"' },
);

const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** A DNS host name (no port). */
export const appPublicAddrSchema = z
  .string({ error: 'expected a host name' })
  .refine((text) => HOST_NAME.test(text), { error: 'expected a host name like "grafana.example.com"' });

/** RFC 9110 token: what a header name may be. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/;

/**
 * Headers app_service never lets a rewrite set: hop-by-hop headers, the ones it sets itself
 * as a reverse proxy, and Warden's identity assertion.
 */
export const APP_RESERVED_HEADERS: readonly string[] = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'content-length',
  'host',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
  'warden-jwt-assertion',
];

export const appHeaderSchema = z.strictObject({
  name: z
    .string()
    .refine((n) => HEADER_NAME.test(n), { error: 'expected an HTTP header name' })
    .refine((n) => !APP_RESERVED_HEADERS.includes(n.toLowerCase()), {
      error: `must not be one of the headers Warden sets itself (${APP_RESERVED_HEADERS.join(', ')})`,
    }),
  value: z
    .string()
    .max(8192, { error: 'must be at most 8192 characters' })
    .refine((v) => !/[\r\n\0]/.test(v), { error: 'must not contain CR, LF or NUL' }),
});
export type AppHeader = z.output<typeof appHeaderSchema>;

export const appSpecSchema = z.strictObject({
  /** Where app_service sends requests. */
  uri: appUriSchema,
  /** Another host name the app answers to at the proxy (default `<name>.<proxy public host>`). */
  public_addr: appPublicAddrSchema.optional(),
  /** Headers added to (or replacing) every request to the app. */
  rewrite: z.strictObject({ headers: z.array(appHeaderSchema).max(64).optional() }).optional(),
  /** For `https://` apps with a certificate no CA on the app_service host vouches for. */
  insecure_skip_verify: z.boolean().optional(),
  /** Record an `app.request` audit event per request (method, path, status, bytes). */
  audit_requests: z.boolean().optional(),
});

export const appV3Schema = resourceSchema('app', 'v3', metadataSchema(appNameSchema), appSpecSchema);
export type AppResource = z.output<typeof appV3Schema>;
