/**
 * The RPC contract between `wsh`/`wctl` (via @warden/client) and the proxy's HTTPS API.
 * JSON over HTTPS on the proxy port. Unauthenticated routes: ping, signup, login, bot join.
 * Everything else needs a Warden X.509 client certificate (mTLS).
 * Errors come back as `{ error: { code, message } }` with the catalogue's HTTP status.
 * Who may import: everyone. Validate every request and response with these schemas.
 */
import { z } from 'zod';

export { Routes, RPC_VERSION } from './routes';

export const PingResponse = z.object({
  cluster_name: z.string(),
  server_version: z.string(),
  proxy_public_addr: z.string(),
  /** Host CA certificates (PEM) that sign the proxy's TLS certificate. */
  host_ca_pems: z.array(z.string()),
  auth: z.object({
    type: z.string(),
    second_factor: z.string(),
    device_trust_mode: z.string(),
    /** `device_trust.auto_enroll`: `wsh login` enrolls a registered device without a token. */
    auto_enroll: z.boolean().optional(),
  }),
});
export type PingResponse = z.infer<typeof PingResponse>;

export const SignupBeginRequest = z.object({ token: z.string().min(1).max(512) });
/** The rule for new passwords, so clients can state it and check it before the second factor. */
export const PasswordPolicy = z.object({
  /** At least this many characters (Unicode code points after NFKC normalisation). */
  min_chars: z.number().int().nonnegative(),
  /** At most this many UTF-8 bytes. */
  max_bytes: z.number().int().positive(),
  /** The rule in words, e.g. "at least 12 characters". */
  text: z.string(),
});
export type PasswordPolicy = z.infer<typeof PasswordPolicy>;

export const SignupBeginResponse = z.object({
  user: z.string(),
  /** Present when the cluster asks for a TOTP second factor. */
  totp: z.object({ secret: z.string(), uri: z.string() }).optional(),
  password_policy: PasswordPolicy.optional(),
});
export type SignupBeginResponse = z.infer<typeof SignupBeginResponse>;

export const SignupFinishRequest = z.object({
  token: z.string().min(1).max(512),
  password: z.string().max(1024),
  otp_code: z.string().max(16).optional(),
  /**
   * The new user's key (both forms, as in LoginRequest): when given, signup also logs in and
   * the response carries the certificates, so the user need not wait for a fresh OTP code.
   */
  ssh_public_key: z.string().max(8192).optional(),
  tls_public_key: z.string().max(8192).optional(),
  ttl_ms: z.number().int().positive().optional(),
});

export const LoginRequest = z.object({
  user: z.string().min(1).max(256),
  password: z.string().max(1024),
  otp_code: z.string().max(16).optional(),
  /** The user's public key in OpenSSH authorized_keys format. */
  ssh_public_key: z.string().max(8192),
  /** The same key as SPKI PEM (for the X.509 certificate). */
  tls_public_key: z.string().max(8192),
  /** Requested certificate lifetime in ms (bounded by roles and 12 h). */
  ttl_ms: z.number().int().positive().optional(),
});
export type LoginRequest = z.infer<typeof LoginRequest>;

export const LoginResponse = z.object({
  user: z.string(),
  cluster_name: z.string(),
  roles: z.array(z.string()),
  logins: z.array(z.string()),
  ssh_cert: z.string(),
  tls_cert: z.string(),
  /** User CA certificates (PEM): what the proxy trusts for mTLS. */
  user_ca_pems: z.array(z.string()),
  host_ca_pems: z.array(z.string()),
  /** known_hosts `@cert-authority` line for the host CA. */
  host_ca_known_hosts: z.string(),
  expires: z.string(),
  /**
   * The strictest device trust mode of the cluster and the user's roles: what this user's Web
   * UI sessions ask for (`wsh login` starts the device web-helper when it is `required`).
   */
  web_device_trust_mode: z.string().optional(),
});
export type LoginResponse = z.infer<typeof LoginResponse>;

export const SignupFinishResponse = z.object({
  user: z.string(),
  /** The certificates, when the request carried a key (signup logs in). */
  login: LoginResponse.optional(),
});
export type SignupFinishResponse = z.infer<typeof SignupFinishResponse>;

export const WhoamiResponse = z.object({
  user: z.string(),
  roles: z.array(z.string()),
  logins: z.array(z.string()),
});

export const CreateResourceRequest = z.object({
  /** The resource as a parsed document (the server validates it with the kind's schema). */
  resource: z.record(z.string(), z.unknown()),
  /** Overwrite an existing resource (`wctl create -f`). */
  force: z.boolean().default(false),
  /** Update only when unchanged since read (`wctl edit`). */
  expected_revision: z.string().optional(),
});

export const ResourceResponse = z.object({
  resource: z.record(z.string(), z.unknown()),
  /** created | updated */
  outcome: z.enum(['created', 'updated']),
  /** Why the resource may have no effect (e.g. a device lock while device trust is off). */
  warnings: z.array(z.string()).optional(),
});

export const ListResourcesResponse = z.object({ items: z.array(z.record(z.string(), z.unknown())) });

export const AddUserRequest = z.object({
  name: z.string().min(1).max(256),
  roles: z.array(z.string()).min(1),
  logins: z.array(z.string()).default([]),
});
export const InviteResponse = z.object({
  user: z.string(),
  token: z.string(),
  expires: z.string(),
  signup_command: z.string(),
  /** The same invite as a Web UI link (`https://<proxy>/web/signup#token=…`). */
  signup_url: z.string().optional(),
});
export type InviteResponse = z.infer<typeof InviteResponse>;

export const AddBotRequest = z.object({
  name: z.string().min(1).max(256),
  roles: z.array(z.string()).min(1),
  logins: z.array(z.string()).default([]),
  /** Each certificate's lifetime, e.g. `20m` (default 1h; at most the roles' max_session_ttl). */
  ttl: z.string().max(32).optional(),
  /** How long the join token may wait to be used, e.g. `1h` (default 1h, at most 7 days). */
  token_ttl: z.string().max(32).optional(),
});
export const BotTokenResponse = z.object({
  bot: z.string(),
  token: z.string(),
  expires: z.string(),
  /** The command that runs the bot with this token. */
  join_command: z.string(),
});
export type BotTokenResponse = z.infer<typeof BotTokenResponse>;

export const BotJoinRequest = z.object({
  token: z.string().min(1).max(512),
  ssh_public_key: z.string().max(8192),
  tls_public_key: z.string().max(8192),
});
/** Renewal: the bot's new key (both forms); the caller is the bot's current certificate. */
export const BotRenewRequest = z.object({
  ssh_public_key: z.string().max(8192),
  tls_public_key: z.string().max(8192),
});

/** An open token as `wctl tokens ls` shows it: never the token itself, only its ID (a hash prefix). */
export const TokenInfo = z.object({
  id: z.string(),
  type: z.enum(['bot', 'invite', 'enroll']),
  /** The bot, user or device the token is for. */
  for: z.string(),
  expires: z.string(),
});
export type TokenInfo = z.infer<typeof TokenInfo>;

export const CreateLockRequest = z.object({
  target: z
    .object({
      user: z.string().optional(),
      role: z.string().optional(),
      login: z.string().optional(),
      node: z.string().optional(),
      device: z.string().optional(),
    })
    .refine((t) => Object.values(t).some((v) => v !== undefined && v !== ''), {
      message: 'a lock needs at least one target (--user, --role, --login, --node or --device)',
    }),
  message: z.string().max(1024).optional(),
  ttl_ms: z.number().int().positive().optional(),
  expires: z.string().optional(),
});
export const CreateLockResponse = z.object({
  name: z.string(),
  /** Why the lock may have no effect (e.g. a device lock while device trust is off). */
  warnings: z.array(z.string()).optional(),
});

// ---- Device inventory (`wctl devices`) ------------------------------------------------

/** An enrollment token for one device, and the command to run on the device. */
export const DeviceEnrollTokenResponse = z.object({
  device_id: z.string(),
  asset_tag: z.string(),
  os_type: z.string(),
  token: z.string(),
  expires: z.string(),
  /** `wsh device enroll --token=…`, to run on the device. */
  enroll_command: z.string(),
});
export type DeviceEnrollTokenResponse = z.infer<typeof DeviceEnrollTokenResponse>;

export const AddDeviceRequest = z.object({
  os_type: z.string().min(1).max(32),
  asset_tag: z.string().min(1).max(256),
  /** Whose machine it is (an inventory import): auto-enrollment then only enrolls it for them. */
  owner: z.string().min(1).max(256).optional(),
  /** Also make an enrollment token. */
  enroll: z.boolean().default(false),
  enroll_ttl_ms: z.number().int().positive().optional(),
});
export const AddDeviceResponse = z.object({
  device: z.record(z.string(), z.unknown()),
  enroll_token: DeviceEnrollTokenResponse.optional(),
});

export const DeviceEnrollTokenRequest = z.object({
  /** Device ID or asset tag. */
  device: z.string().min(1).max(256),
  ttl_ms: z.number().int().positive().optional(),
});

export const ExportAuthorityResponse = z.object({ type: z.string(), line: z.string() });

export const SignHostRequest = z.object({
  /** Names the host answers to; the first is its ID in the certificate. */
  hostnames: z.array(z.string().min(1).max(253)).min(1).max(32),
  /** The host's public key, OpenSSH authorized_keys format. */
  public_key: z.string().max(8192),
  ttl_ms: z.number().int().positive().optional(),
});
export const SignHostResponse = z.object({ ssh_cert: z.string(), host_ca_known_hosts: z.string() });

/** `wctl auth sign --format=db`: a server certificate for a database that db_service dials. */
export const KubeCertRequest = z.object({
  /** The fresh key's public half (SPKI PEM); the private key never leaves wsh. */
  public_key: z.string().max(8192),
  /** The Kubernetes cluster kubectl is about to use: the certificate is good for it only. */
  cluster: z.string().max(253).optional(),
  /**
   * `short` (the default): at most an hour, for the exec plugin, which asks again before every
   * expiry. `login`: until the login certificate expires, for the files `wsh kube login
   * --cert-files` writes (kubectl reads them on every run; `wsh login` renews them).
   */
  lifetime: z.enum(['short', 'login']).optional(),
});
export const KubeCertResponse = z.object({
  /** A user-CA client certificate kube_service accepts (PEM). */
  cert_pem: z.string(),
  expires: z.string(),
});
export const SignDbRequest = z.object({
  /** DNS names or IPs the database answers to; the first is the certificate's CN. */
  hostnames: z.array(z.string().min(1).max(253)).min(1).max(32),
  /** The database's public key (SPKI PEM), generated by `wctl`: the private key never leaves it. */
  public_key: z.string().max(8192),
  ttl_ms: z.number().int().positive().optional(),
});
export const SignDbResponse = z.object({
  /** The database's server certificate (PEM). */
  cert_pem: z.string(),
  /** CA certificates that sign Warden's client certificates: the database's `ssl_ca_file`. */
  client_ca_pems: z.array(z.string()),
  expires: z.string(),
});

/** An app as `wsh apps ls` shows it (never its internal URI). */
export const AppInfo = z.object({
  name: z.string(),
  description: z.string().optional(),
  labels: z.record(z.string(), z.string()),
  /** The host name the app answers to at the proxy (`<name>.<proxy host>` by default). */
  public_addr: z.string(),
});
export type AppInfo = z.infer<typeof AppInfo>;

export const ListAppsResponse = z.object({ items: z.array(AppInfo) });

/** `wsh app login NAME`: an app certificate for the key of the caller's certificate. */
export const AppLoginRequest = z.object({ app: z.string().min(1).max(253) });
export const AppLoginResponse = z.object({
  /** The app certificate (PEM): the caller's identity, device extensions when it had them, the app route. */
  cert_pem: z.string(),
  /** Never later than the caller's own certificate. */
  expires: z.string(),
  session_id: z.string(),
  app: AppInfo,
  /** Where to send requests with the certificate: `https://<public_addr>:<proxy port>`. */
  uri: z.string(),
  /** What will stand in the way (e.g. the app requires a trusted device and this login has none). */
  warnings: z.array(z.string()).optional(),
});
export type AppLoginResponse = z.infer<typeof AppLoginResponse>;

/**
 * `wsh db login NAME`: a database certificate for the key of the caller's certificate, with
 * which psql, mysql and drivers connect straight to the proxy (no local tunnel).
 */
export const DbLoginRequest = z.object({
  db: z.string().min(1).max(253),
  db_user: z.string().min(1).max(253).optional(),
  db_name: z.string().min(1).max(253).optional(),
});
export type DbLoginRequestBody = z.infer<typeof DbLoginRequest>;
export const DbLoginResponse = z.object({
  /** The database certificate (PEM): the caller's identity, device extensions when it had them, the route. */
  cert_pem: z.string(),
  /** Never later than the caller's own certificate. */
  expires: z.string(),
  db: z.object({ name: z.string(), protocol: z.string() }),
  db_user: z.string().optional(),
  db_name: z.string().optional(),
  /**
   * Where native clients connect with the certificate: PostgreSQL at the proxy's own port,
   * MySQL at its MySQL listener (`proxy_service.mysql_listen_addr`); absent when not served.
   */
  endpoint: z.object({ host: z.string(), port: z.number().int() }).optional(),
  /** What will stand in the way (e.g. the database requires a trusted device and this login has none). */
  warnings: z.array(z.string()).optional(),
});
export type DbLoginResponse = z.infer<typeof DbLoginResponse>;

export const AuditSearchResponse = z.object({ events: z.array(z.record(z.string(), z.unknown())) });

// ---- Device trust ceremonies (DESIGN §6) ------------------------------------------------
//
//   enroll:  client ── begin { token, credential_id, device_data, ek, ak } ──▶ server
//            client ◀── { session_id, nonce, challenge, pcr_selection } ── (token spent)
//            client ── finish { session_id, solution, quote } ──▶ server
//            client ◀── { device } ── (device enrolled with that AK)
//   authn:   (mTLS, the user's fresh certificate)
//            client ── begin { credential_id, device_data } ──▶ server
//            client ◀── { session_id, nonce, pcr_selection }
//            client ── finish { session_id, quote, ssh_signature } ──▶ server
//            client ◀── { ssh_cert, tls_cert, expires, device } (same NotAfter, device extensions)
// Binary values are standard base64. Ceremony sessions are single use and short-lived.

const b64 = (max = 16_384) =>
  z
    .string()
    .max(max)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, { message: 'expected base64' });

/** What a device reports about itself (stored as the device's `collected_data`). */
export const DeviceData = z.object({
  collect_time: z.string().max(64),
  os_type: z.enum(['linux', 'macos', 'windows']),
  /** The asset tag the device computes for itself (DESIGN §6). */
  serial_number: z.string().min(1).max(256),
  os_version: z.string().max(1024).optional(),
  os_username: z.string().max(1024).optional(),
  hostname: z.string().max(1024).optional(),
});
export type DeviceData = z.infer<typeof DeviceData>;

/** PCRs to quote: TPM hash algorithm IDs (0x000b = SHA-256) and PCR indexes. */
export const PcrSelection = z
  .array(
    z.object({
      hash: z.number().int().min(0).max(0xffff),
      pcrs: z.array(z.number().int().min(0).max(31)).max(32),
    }),
  )
  .max(4);
export type PcrSelection = z.infer<typeof PcrSelection>;

/** A TPM2_Quote by the device's AK (TPMS_ATTEST, TPMT_SIGNATURE) and the quoted PCR values. */
export const TpmQuote = z.object({
  attest: b64(4096),
  signature: b64(4096),
  pcrs: z
    .array(
      z.object({
        hash: z.number().int().min(0).max(0xffff),
        pcr: z.number().int().min(0).max(31),
        digest: b64(128),
      }),
    )
    .max(128),
});
export type TpmQuote = z.infer<typeof TpmQuote>;

export const DeviceEnrollBeginRequest = z.object({
  /** The enrollment token; absent for auto-enrollment (a logged-in user, `auto_enroll` on). */
  token: z.string().min(1).max(512).optional(),
  /** Client-chosen UUID naming the AK (the device's credential). */
  credential_id: z.uuid(),
  device_data: DeviceData,
  /**
   * The EK: its TPMT_PUBLIC, its certificate (DER) when the TPM has one, and the certificates
   * of its issuers the TPM holds (EK certificate chain, NV 0x01c00100–0x01c001ff).
   */
  ek: z.object({
    public: b64(2048),
    cert_der: b64(8192).optional(),
    chain_der: z.array(b64(8192)).max(8).optional(),
  }),
  /** The AK: TPMT_PUBLIC, TPMS_CREATION_DATA, and TPM2_CertifyCreation by itself over them. */
  ak: z.object({
    public: b64(2048),
    creation_data: b64(2048),
    creation_attest: b64(2048),
    creation_signature: b64(2048),
  }),
});
export type DeviceEnrollBeginRequest = z.infer<typeof DeviceEnrollBeginRequest>;

export const DeviceEnrollBeginResponse = z.object({
  session_id: z.string(),
  nonce: b64(),
  /** MakeCredential bound to the EK and the AK's Name (TPM2B_ID_OBJECT contents, encrypted seed). */
  challenge: z.object({ credential_blob: b64(), secret: b64() }),
  pcr_selection: PcrSelection,
});
export type DeviceEnrollBeginResponse = z.infer<typeof DeviceEnrollBeginResponse>;

export const DeviceEnrollFinishRequest = z.object({
  session_id: z.string().min(1).max(128),
  /** What ActivateCredential released. */
  solution: b64(128),
  /** A quote by the AK over the nonce. */
  quote: TpmQuote,
});
export type DeviceEnrollFinishRequest = z.infer<typeof DeviceEnrollFinishRequest>;

/** A device as the ceremonies report it. */
export const DeviceSummary = z.object({
  id: z.string(),
  os_type: z.string(),
  asset_tag: z.string(),
  enroll_status: z.string(),
  credential_id: z.string().optional(),
  attestation_type: z.string().optional(),
  owner: z.string().optional(),
});
export type DeviceSummary = z.infer<typeof DeviceSummary>;

export const DeviceEnrollFinishResponse = z.object({ device: DeviceSummary });
export type DeviceEnrollFinishResponse = z.infer<typeof DeviceEnrollFinishResponse>;

export const DeviceAuthnBeginRequest = z.object({
  credential_id: z.string().min(1).max(256),
  device_data: DeviceData,
});
export type DeviceAuthnBeginRequest = z.infer<typeof DeviceAuthnBeginRequest>;

export const DeviceAuthnBeginResponse = z.object({
  session_id: z.string(),
  nonce: b64(),
  pcr_selection: PcrSelection,
});
export type DeviceAuthnBeginResponse = z.infer<typeof DeviceAuthnBeginResponse>;

export const DeviceAuthnFinishRequest = z.object({
  session_id: z.string().min(1).max(128),
  quote: TpmQuote,
  /** The user's key (the one in the mTLS certificate) signs `deviceAuthnSignedData(nonce, session_id)`. */
  ssh_signature: b64(1024),
});
export type DeviceAuthnFinishRequest = z.infer<typeof DeviceAuthnFinishRequest>;

export const DeviceAuthnFinishResponse = z.object({
  ssh_cert: z.string(),
  tls_cert: z.string(),
  /** Same as the certificate being augmented. */
  expires: z.string(),
  device: DeviceSummary,
});
export type DeviceAuthnFinishResponse = z.infer<typeof DeviceAuthnFinishResponse>;

/** The web device challenge the page handed to `wsh device web-helper` (see web.ts). */
const WebChallenge = {
  challenge_id: z.string().min(1).max(128),
  challenge_secret: z.string().min(1).max(256),
};
export const DeviceWebBeginRequest = DeviceAuthnBeginRequest.extend(WebChallenge);
export type DeviceWebBeginRequest = z.infer<typeof DeviceWebBeginRequest>;
export const DeviceWebFinishRequest = DeviceAuthnFinishRequest.extend(WebChallenge);
export type DeviceWebFinishRequest = z.infer<typeof DeviceWebFinishRequest>;
/** The web session is now device-trusted (the page learns it from the proxy, not from the helper). */
export const DeviceWebFinishResponse = z.object({ device: DeviceSummary });
export type DeviceWebFinishResponse = z.infer<typeof DeviceWebFinishResponse>;

/**
 * What the user's key signs in device authentication: a domain string, the nonce and the
 * session ID, so the signature binds this ceremony to the certificate being augmented.
 */
export function deviceAuthnSignedData(nonce: Uint8Array, sessionId: string): Buffer {
  return Buffer.concat([
    Buffer.from('warden-device-authn-v1\0'),
    Buffer.from(nonce),
    Buffer.from(sessionId, 'utf8'),
  ]);
}

export const ErrorResponse = z.object({
  error: z.object({ code: z.string(), message: z.string() }),
});
