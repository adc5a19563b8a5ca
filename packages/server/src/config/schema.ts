/**
 * The zod schema of `warden.yaml` exactly as written (snake_case, every field optional except
 * `version`). Strict: an unknown field anywhere is an error. `config.ts` turns the parsed
 * file into the defaulted, frozen `WardenConfig`. Internal to `config/`.
 */
import {
  appHeaderSchema,
  appNameSchema,
  appPublicAddrSchema,
  appUriSchema,
  parseDuration,
} from '@warden/api';
import * as z from 'zod';
import { parseHostPort } from './address';

/**
 * `second_factor: on` and `off` are strings under YAML 1.2 (yaml@2's default) but booleans
 * under YAML 1.1 (`%YAML 1.1`, or files written for other tools); accept both spellings.
 */
function onOffFromBoolean(value: unknown): unknown {
  if (value === true) return 'on';
  if (value === false) return 'off';
  return value;
}

/** `mode: off` is `false` under YAML 1.1; `true` has no meaning for a mode and stays an error. */
function offFromFalse(value: unknown): unknown {
  return value === false ? 'off' : value;
}

const pathString = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => !s.includes('\0'), 'must not contain NUL characters');

const hostPort = z.string().transform((text, ctx) => {
  const parsed = parseHostPort(text);
  if (typeof parsed === 'string') {
    ctx.addIssue({ code: 'custom', message: parsed });
    return z.NEVER;
  }
  return parsed;
});

/** `10s`, `1m30s`: a positive duration of at most a day (timeouts and grace times). */
const timeout = z.string().transform((text, ctx) => {
  try {
    const ms = parseDuration(text);
    if (ms <= 0 || ms > 86_400_000) throw new Error('must be more than 0 and at most 24h');
    return ms;
  } catch (e) {
    ctx.addIssue({
      code: 'custom',
      message: e instanceof Error ? e.message : 'expected a duration like 10s',
    });
    return z.NEVER;
  }
});

const connectionCount = z.number().int('must be a whole number').min(1, 'must be at least 1').max(1_000_000);

export const CLUSTER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

const clusterName = z
  .string()
  .regex(
    CLUSTER_NAME_PATTERN,
    'expected 1 to 253 letters, digits, ".", "_" or "-", starting with a letter or digit',
  );

export const SECOND_FACTOR_VALUES = ['on', 'otp', 'off'] as const;
export const DEVICE_TRUST_MODE_VALUES = ['off', 'optional', 'required-for-humans', 'required'] as const;
export const LOG_SEVERITY_VALUES = ['debug', 'info', 'warn', 'error'] as const;
export const LOG_FORMAT_VALUES = ['text', 'json'] as const;
export const STORAGE_TYPE_VALUES = ['sqlite', 'postgres', 'memory'] as const;
export const DB_PROTOCOL_VALUES = ['postgres', 'mysql'] as const;
export const POSTGRES_TLS_MODE_VALUES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;

/** `postgres://…` or `postgresql://…` (the backend checks the rest when it connects). */
function isPostgresUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'postgres:' || url.protocol === 'postgresql:';
  } catch {
    return false;
  }
}

export const configFileSchema = z.strictObject({
  version: z.literal('v1'),
  data_dir: pathString.optional(),
  /** The diagnostics listener (/metrics, /healthz, /readyz); off unless set. */
  diag_addr: hostPort.optional(),
  log: z
    .strictObject({
      severity: z.enum(LOG_SEVERITY_VALUES).optional(),
      format: z.enum(LOG_FORMAT_VALUES).optional(),
    })
    .optional(),
  auth_service: z
    .strictObject({
      enabled: z.boolean().optional(),
      cluster_name: clusterName.optional(),
      authentication: z
        .strictObject({
          type: z.literal('local').optional(),
          second_factor: z.preprocess(onOffFromBoolean, z.enum(SECOND_FACTOR_VALUES)).optional(),
          device_trust: z
            .strictObject({
              mode: z.preprocess(offFromFalse, z.enum(DEVICE_TRUST_MODE_VALUES)).optional(),
              auto_enroll: z.boolean().optional(),
              bind_owner: z.boolean().optional(),
              ekcert_allowed_cas: z.array(pathString).optional(),
            })
            .optional(),
        })
        .optional(),
      audit: z.strictObject({ jsonl_path: pathString.optional() }).optional(),
    })
    .optional(),
  proxy_service: z
    .strictObject({
      enabled: z.boolean().optional(),
      listen_addr: hostPort.optional(),
      public_addr: hostPort.optional(),
      /**
       * MySQL clients with their database certificate (`wsh db login`) connect here straight to
       * the proxy (MySQL's server speaks first, so it cannot share the proxy port). Off when absent.
       */
      mysql_listen_addr: hostPort.optional(),
      /** TLS handshake must finish within this (default 10s). */
      handshake_timeout: timeout.optional(),
      /** An HTTP request's headers must arrive within this (default 10s). */
      header_timeout: timeout.optional(),
      /** A whole HTTP request must arrive within this (default 60s). */
      request_timeout: timeout.optional(),
      /** An HTTPS connection with no traffic for this long is closed (default 120s). */
      idle_timeout: timeout.optional(),
      web_ui: z
        .strictObject({
          /**
           * Browser device trust: the helper (`wsh device web-helper`) must reach the proxy from
           * the browser's address (`match`, default), or from any address (`off`: NAT between them).
           */
          device_address_binding: z.enum(['match', 'off']).optional(),
        })
        .optional(),
      /** Requests to routes that need no login, per source address per minute, all replicas (default 300). */
      unauthenticated_requests_per_minute: connectionCount.optional(),
      /** Invalid tokens and passwords per source address per `failed_attempts_window` (default 10). */
      failed_attempts: connectionCount.optional(),
      /** The window of `failed_attempts`; over the limit, refused until it ends (default 10m). */
      failed_attempts_window: timeout.optional(),
    })
    .optional(),
  ssh_service: z
    .strictObject({
      enabled: z.boolean().optional(),
      listen_addr: hostPort.optional(),
      /** Where the proxy reaches this node; goes into the node resource's `addr`. */
      public_addr: hostPort.optional(),
      /** The node's name as users type it; defaults to the machine's host name. */
      hostname: z
        .string()
        .min(1, 'must not be empty')
        .max(253, 'must be at most 253 characters')
        .refine((s) => !/[\s/\p{Cc}]/u.test(s), 'must not contain spaces, "/" or control characters')
        .optional(),
      /** Static labels on the node resource (what roles' `node_labels` match). */
      labels: z.record(z.string().min(1, 'label names must not be empty'), z.string()).optional(),
      /** A connection must authenticate within this (sshd's LoginGraceTime; default 30s). */
      login_grace_time: timeout.optional(),
      /** Unauthenticated connections at once (sshd's MaxStartups; default 100). */
      max_startups: connectionCount.optional(),
      /** Unauthenticated connections at once from one address (default 10). */
      max_startups_per_source: connectionCount.optional(),
    })
    .optional(),
  db_service: z
    .strictObject({
      enabled: z.boolean().optional(),
      /** Databases this db_service serves (it heartbeats a `db` resource for each). */
      databases: z
        .array(
          z.strictObject({
            /** What users type (`wsh db connect NAME`); the `db` resource's name. */
            name: z
              .string()
              .min(1, 'must not be empty')
              .max(253, 'must be at most 253 characters')
              .refine((s) => !/[\s/\p{Cc}]/u.test(s), 'must not contain spaces, "/" or control characters'),
            protocol: z.enum(DB_PROTOCOL_VALUES),
            /** Where db_service dials the database: `host:port`. */
            uri: hostPort,
            /** Labels on the `db` resource (what roles' `db_labels` match). */
            static_labels: z
              .record(z.string().min(1, 'label names must not be empty'), z.string())
              .optional(),
            tls: z
              .strictObject({
                /** CA of the database's server certificate; default: Warden's db CA. */
                ca_cert_file: pathString.optional(),
              })
              .optional(),
          }),
        )
        .optional(),
    })
    .optional(),
  app_service: z
    .strictObject({
      enabled: z.boolean().optional(),
      /** Web apps this app_service serves (it heartbeats an `app` resource for each). */
      apps: z
        .array(
          z.strictObject({
            /** What users type (`wsh app login NAME`) and the host name's first label. */
            name: appNameSchema,
            description: z.string().optional(),
            /** Where app_service sends requests: `http://host:port` or `https://…`. */
            uri: appUriSchema,
            /** Another host name the app answers to at the proxy. */
            public_addr: appPublicAddrSchema.optional(),
            /** Labels on the `app` resource (what roles' `app_labels` match). */
            labels: z.record(z.string().min(1, 'label names must not be empty'), z.string()).optional(),
            rewrite: z.strictObject({ headers: z.array(appHeaderSchema).optional() }).optional(),
            insecure_skip_verify: z.boolean().optional(),
            /** Record an `app.request` audit event per request. */
            audit_requests: z.boolean().optional(),
          }),
        )
        .optional(),
    })
    .optional(),
  kube_service: z
    .strictObject({
      enabled: z.boolean().optional(),
      /** Kubernetes clusters this kube_service forwards to (it heartbeats a `kube_cluster` for each). */
      clusters: z
        .array(
          z
            .strictObject({
              /** What users type (`wsh kube login NAME`): a DNS label. */
              name: z
                .string()
                .regex(
                  /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/,
                  'must be a DNS label (lower-case letters, digits, "-")',
                ),
              /** A kubeconfig whose current context (server, CA, credential) kube_service uses. */
              kubeconfig_path: pathString.optional(),
              /** Or: the API server's URL with a CA file and a token file or a client certificate. */
              server: z.string().url('expected an https:// URL').optional(),
              ca_file: pathString.optional(),
              token_file: pathString.optional(),
              cert_file: pathString.optional(),
              key_file: pathString.optional(),
              /** Labels on the `kube_cluster` resource (what roles' `kubernetes_labels` match). */
              labels: z.record(z.string().min(1, 'label names must not be empty'), z.string()).optional(),
            })
            .refine((c) => (c.kubeconfig_path === undefined) !== (c.server === undefined), {
              message: 'give kubeconfig_path, or server with ca_file and token_file or cert_file/key_file',
            })
            .refine(
              (c) =>
                c.server === undefined ||
                c.token_file !== undefined ||
                (c.cert_file !== undefined && c.key_file !== undefined),
              {
                message: 'server needs token_file, or cert_file and key_file',
              },
            ),
        )
        .optional(),
    })
    .optional(),
  storage: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('sqlite'), path: pathString.optional() }),
      z
        .strictObject({
          type: z.literal('postgres'),
          /** `postgres://user@host:port/database?sslmode=…`; never echoed (it may hold a password). */
          conn_string: z
            .string()
            .min(1, 'must not be empty')
            .refine(isPostgresUrl, 'expected a URL such as postgres://warden@db.example.com:5432/warden'),
          password_file: pathString.optional(),
          password_env: z
            .string()
            .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected the name of an environment variable')
            .optional(),
          tls: z
            .strictObject({
              mode: z.enum(POSTGRES_TLS_MODE_VALUES).optional(),
              ca_file: pathString.optional(),
              cert_file: pathString.optional(),
              key_file: pathString.optional(),
              server_name: z.string().min(1, 'must not be empty').optional(),
            })
            .optional(),
          schema: z
            .string()
            .regex(
              /^[a-z_][a-z0-9_]{0,47}$/,
              'expected 1 to 48 lower-case letters, digits or "_", starting with a letter or "_"',
            )
            .refine((s) => !s.startsWith('pg_'), 'must not start with pg_ (reserved by PostgreSQL)')
            .optional(),
          pool_size: z
            .number()
            .refine(
              (n) => Number.isInteger(n) && n >= 1 && n <= 1000,
              'expected a whole number from 1 to 1000',
            )
            .optional(),
        })
        .superRefine((s, ctx) => {
          if (s.password_file !== undefined && s.password_env !== undefined) {
            ctx.addIssue({
              code: 'custom',
              path: ['password_env'],
              message: 'give password_file or password_env, not both',
            });
          }
          if ((s.tls?.cert_file === undefined) !== (s.tls?.key_file === undefined)) {
            ctx.addIssue({
              code: 'custom',
              path: ['tls', s.tls?.cert_file === undefined ? 'key_file' : 'cert_file'],
              message: 'a client certificate needs both cert_file and key_file',
            });
          }
        }),
      z.strictObject({ type: z.literal('memory') }),
    ])
    .optional(),
});

export type ConfigFile = z.output<typeof configFileSchema>;
