/** The `wctl` commands. Each `run` loads its implementation lazily. */
import { type Command, formatOption, identityOption, type OptionSpec } from '../command';

/** The environment variables wctl reads (listed in every `wctl … --help`). */
export const wctlEnv: [string, string][] = [
  ['WARDEN_DATA_DIR', 'data dir holding the admin identity, as --data-dir'],
  ['WARDEN_HOME', 'where wsh profiles live, used when there is no admin identity (default ~/.warden)'],
  ['VISUAL, EDITOR', 'editor for `wctl edit` (default vi)'],
  ['WARDEN_DEBUG', 'set to 1 for debug details, as --debug'],
];

export const wctlGlobalOptions: Record<string, OptionSpec> = {
  identity: identityOption,
  config: {
    type: 'string',
    short: 'c',
    value: 'FILE',
    help: 'the warden.yaml of the auth host: its data_dir holds the admin identity',
  },
  'data-dir': {
    type: 'string',
    value: 'DIR',
    help: 'Warden data dir holding the admin identity (default ./warden-data, or $WARDEN_DATA_DIR); else the wsh profile',
  },
};

const lockTargets: Record<string, OptionSpec> = {
  user: { type: 'string', value: 'NAME', help: 'lock a user' },
  role: { type: 'string', value: 'NAME', help: 'lock everyone holding a role' },
  login: { type: 'string', value: 'LOGIN', help: 'lock an OS login' },
  node: { type: 'string', value: 'NAME', help: 'lock a node' },
  device: { type: 'string', value: 'ID', help: 'lock a trusted device (its device ID)' },
};

const deviceRef: Record<string, OptionSpec> = {
  'device-id': { type: 'string', value: 'ID', help: 'device ID (see `wctl devices ls`)' },
  'asset-tag': { type: 'string', value: 'TAG', help: 'asset tag of the device' },
};

/** `--roles` and `--logins` of `users add` and `bots add`. */
const identityGrantOptions: Record<string, OptionSpec> = {
  roles: { type: 'string', multiple: true, value: 'ROLES', help: 'comma-separated roles (required)' },
  logins: {
    type: 'string',
    multiple: true,
    value: 'LOGINS',
    help: 'comma-separated OS logins (trait "logins")',
  },
};

/** What a lock says and how long it lasts: `lock` and `bots lock`. */
const lockOptions: Record<string, OptionSpec> = {
  message: { type: 'string', value: 'TEXT', help: 'message shown to the locked user' },
  ttl: { type: 'string', value: 'DURATION', help: 'lock for this long, e.g. 12h' },
  expires: { type: 'string', value: 'RFC3339', help: 'lock until this time' },
};

export const wctlCommands: Command[] = [
  {
    path: ['users', 'add'],
    summary: 'Add a user and print a one-time invite token (valid 1 h).',
    usage: 'users add NAME --roles=ROLE[,ROLE] [--logins=LOGIN[,LOGIN]] [--format=text|json|yaml]',
    options: {
      format: formatOption,
      ...identityGrantOptions,
    },
    args: [1, 1],
    run: async (ctx) => (await import('./users')).runUsersAdd(ctx),
  },
  {
    path: ['users', 'ls'],
    summary: 'List users.',
    options: { format: formatOption },
    run: async (ctx) => (await import('./users')).runUsersLs(ctx),
  },
  {
    path: ['users', 'rm'],
    summary: 'Delete a user.',
    usage: 'users rm NAME',
    args: [1, 1],
    run: async (ctx) => (await import('./users')).runUsersRm(ctx),
  },
  {
    path: ['users', 'reset'],
    summary: "Reset a user's password and second factor; prints a new invite token.",
    usage: 'users reset NAME [--format=text|json|yaml]',
    options: { format: formatOption },
    args: [1, 1],
    run: async (ctx) => (await import('./users')).runUsersReset(ctx),
  },
  {
    path: ['bots', 'add'],
    summary: 'Add a bot (a machine identity for CI jobs and scripts) and print its one-time join token.',
    usage:
      'bots add NAME --roles=ROLE[,ROLE] [--logins=LOGIN[,LOGIN]] [--ttl=DURATION] [--token-ttl=DURATION] [--format=text|json|yaml]',
    details:
      'A bot has no password, second factor or Web UI. `wbot start --token=…` (printed here) joins\n' +
      'with the token once, then renews its certificates with the current ones before they end.\n' +
      'Under device_trust mode required-for-humans a bot needs no device; under required it does.',
    options: {
      format: formatOption,
      ...identityGrantOptions,
      ttl: { type: 'string', value: 'DURATION', help: "each certificate's lifetime (default 1h, 5s–24h)" },
      'token-ttl': {
        type: 'string',
        value: 'DURATION',
        help: 'how long the join token waits to be used (default 1h, at most 7 days)',
      },
    },
    args: [1, 1],
    run: async (ctx) => (await import('./bots')).runBotsAdd(ctx),
  },
  {
    path: ['bots', 'ls'],
    summary: 'List bots.',
    options: { format: formatOption },
    run: async (ctx) => (await import('./bots')).runBotsLs(ctx),
  },
  {
    path: ['bots', 'rm'],
    summary: 'Delete a bot and its open join tokens; its certificates stop renewing.',
    usage: 'bots rm NAME',
    args: [1, 1],
    run: async (ctx) => (await import('./bots')).runBotsRm(ctx),
  },
  {
    path: ['bots', 'lock'],
    summary: 'Lock a bot: renewal stops and its live sessions end.',
    usage: 'bots lock NAME [--message=TEXT] [--ttl=DURATION|--expires=RFC3339]',
    details: 'The same as `wctl lock --user=NAME`.',
    options: { ...lockOptions, format: formatOption },
    args: [1, 1],
    run: async (ctx) => (await import('./bots')).runBotsLock(ctx),
  },
  {
    path: ['tokens', 'ls'],
    summary: 'List open one-time tokens (bot join, user invite, device enrollment) by ID.',
    details: "The ID is the start of the token's SHA-256: tokens themselves are never stored or shown again.",
    options: { format: formatOption },
    run: async (ctx) => (await import('./bots')).runTokensLs(ctx),
  },
  {
    path: ['tokens', 'rm'],
    summary: 'Remove an open token by its ID (from `wctl tokens ls`).',
    usage: 'tokens rm ID',
    args: [1, 1],
    run: async (ctx) => (await import('./bots')).runTokensRm(ctx),
  },
  {
    path: ['devices', 'import'],
    summary: 'Register many devices from a CSV inventory export (asset tag, OS, owner); idempotent.',
    usage: 'devices import FILE.csv [--format=text|json|yaml]',
    details:
      'The first line names the columns: asset_tag (or serial_number, serial), os (or os_type,\n' +
      'platform: linux, macos/darwin, windows) and optionally owner (or user). A device already in\n' +
      'the inventory is reported, not changed; every row gets an outcome, and the exit code is 1\n' +
      "when a row failed. With device_trust.auto_enroll, imported devices enroll at their owner's\n" +
      'first `wsh login`.\n' +
      'Example:\n  asset_tag,os,owner\n  C02XK0AAJG5H,macos,alice\n  PF3ABCDE,linux,bob',
    options: { format: formatOption },
    args: [1, 1],
    run: async (ctx) => (await import('./devices')).runDevicesImport(ctx),
  },
  {
    path: ['devices', 'add'],
    summary: 'Register a device in the trusted-device inventory; --enroll also prints an enrollment token.',
    usage: 'devices add --os=linux|macos|windows --asset-tag=TAG [--enroll] [--enroll-ttl=DURATION]',
    details:
      'Example:\n  wctl devices add --os=linux --asset-tag=C00AA0AAAA0A --enroll\n' +
      '  Device C00AA0AAAA0A/Linux added to the inventory\n' +
      'Then run the printed `wsh device enroll --token=…` on the device (the token works once).\n' +
      '`wsh device asset-tag` prints the asset tag of the machine it runs on.',
    options: {
      os: { type: 'string', value: 'linux|macos|windows', help: 'operating system of the device' },
      'asset-tag': { type: 'string', value: 'TAG', help: 'asset tag (serial number) of the device' },
      enroll: { type: 'boolean', help: 'also create an enrollment token' },
      'enroll-ttl': {
        type: 'string',
        value: 'DURATION',
        help: 'lifetime of the token (default 1h, at most 24h)',
      },
    },
    run: async (ctx) => (await import('./devices')).runDevicesAdd(ctx),
  },
  {
    path: ['devices', 'ls'],
    summary: 'List the devices of the inventory.',
    options: { format: formatOption },
    run: async (ctx) => (await import('./devices')).runDevicesLs(ctx),
  },
  {
    path: ['devices', 'rm'],
    summary: 'Remove a device from the inventory.',
    usage: 'devices rm --device-id=ID|--asset-tag=TAG',
    options: deviceRef,
    run: async (ctx) => (await import('./devices')).runDevicesRm(ctx),
  },
  {
    path: ['devices', 'enroll'],
    summary: 'Create a new enrollment token for a device (earlier tokens stop working).',
    usage: 'devices enroll --device-id=ID|--asset-tag=TAG [--ttl=DURATION]',
    options: {
      ...deviceRef,
      ttl: { type: 'string', value: 'DURATION', help: 'lifetime of the token (default 1h, at most 24h)' },
    },
    run: async (ctx) => (await import('./devices')).runDevicesEnroll(ctx),
  },
  {
    path: ['devices', 'lock'],
    summary: 'Lock a device: no certificates for it, and its sessions end.',
    usage: 'devices lock --device-id=ID|--asset-tag=TAG [--message=TEXT] [--ttl=DURATION|--expires=RFC3339]',
    details:
      'Same as `wctl lock --device=ID`. The lock only has an effect on an enrolled device while\n' +
      'device trust is not off; otherwise it is created with a warning.',
    options: {
      ...deviceRef,
      message: { type: 'string', value: 'TEXT', help: 'message shown to the locked user' },
      ttl: { type: 'string', value: 'DURATION', help: 'lock for this long, e.g. 12h' },
      expires: { type: 'string', value: 'RFC3339', help: 'lock until this time' },
      format: formatOption,
    },
    run: async (ctx) => (await import('./devices')).runDevicesLock(ctx),
  },
  {
    path: ['create'],
    summary: 'Create resources from a YAML or JSON file (`-` for stdin).',
    usage: 'create [-f|--force] FILE',
    details: 'Example:\n  wctl create -f cap.yaml\n  cluster auth preference has been updated',
    options: { force: { type: 'boolean', short: 'f', help: 'overwrite existing resources' } },
    args: [1, 1],
    run: async (ctx) => (await import('./apply')).runCreate(ctx),
  },
  {
    path: ['get'],
    summary:
      'Show resources: roles, users, locks, devices, nodes, dbs, cluster_auth_preference, cert_authorities.',
    usage: 'get KIND[/NAME] [--format=text|yaml|json]',
    details:
      'Devices by ID or asset tag: wctl get devices/C00AA0AAAA0A.\n' +
      'cluster_auth_preference says where its values came from in metadata.labels["warden.dev/origin"]:\n' +
      '  config-file  auth_service.authentication in the config file; applied at every start, so it wins\n' +
      '  dynamic      wctl create -f cap.yaml or wctl edit; kept while the config file does not set it\n' +
      "  default      Warden's defaults (device trust optional, second factor otp)",
    options: { format: formatOption },
    args: [1, 1],
    run: async (ctx) => (await import('./resources')).runGet(ctx),
  },
  {
    path: ['edit'],
    summary: 'Edit a resource in $EDITOR; it is validated, and reopened on error.',
    usage: 'edit KIND/NAME',
    args: [1, 1],
    run: async (ctx) => (await import('./apply')).runEdit(ctx),
  },
  {
    path: ['rm'],
    summary: 'Delete a resource.',
    usage: 'rm KIND/NAME',
    args: [1, 1],
    run: async (ctx) => (await import('./resources')).runRm(ctx),
  },
  {
    path: ['lock'],
    summary: 'Lock users, roles, logins, nodes or devices out of the cluster.',
    usage:
      'lock --user=NAME|--role=NAME|--login=LOGIN|--node=NAME|--device=ID [--message=TEXT] [--ttl=DURATION|--expires=RFC3339]',
    options: {
      ...lockTargets,
      ...lockOptions,
      format: formatOption,
    },
    run: async (ctx) => (await import('./locks')).runLock(ctx),
  },
  {
    path: ['auth', 'export'],
    summary: 'Print a CA public key in the form OpenSSH needs.',
    usage: 'auth export --type=openssh|user|host',
    details:
      '--type=openssh: the line for TrustedUserCAKeys of agentless OpenSSH nodes: only the proxy gets\n' +
      '  its certificates, one per session after the access check, so locks and device trust apply.\n' +
      "--type=user: the user CA (a node trusting it lets users' own certificates in, past the proxy).\n" +
      '--type=host: the @cert-authority line for known_hosts.',
    options: { type: { type: 'string', value: 'openssh|user|host', help: 'which CA' } },
    run: async (ctx) => (await import('./auth')).runAuthExport(ctx),
  },
  {
    path: ['auth', 'sign'],
    summary: 'Create a key and certificate for an agentless OpenSSH node or a database.',
    usage: 'auth sign [--format=openssh|db] --host=NAME[,NAME] --out=PREFIX [--ttl=DURATION]',
    details:
      '--format=openssh (default) writes PREFIX (private key, 0600), PREFIX.pub and PREFIX-cert.pub.\n' +
      'In sshd_config:\n' +
      '  HostKey PREFIX\n  HostCertificate PREFIX-cert.pub\n  TrustedUserCAKeys <file with `wctl auth export --type=openssh`>\n' +
      'Then register the node: `wctl create node.yaml` with spec.sub_kind: openssh.\n\n' +
      "--format=db writes a database's TLS server certificate from Warden's db CA: PREFIX.crt,\n" +
      'PREFIX.key (0600) and PREFIX.cas (the CA of the client certificates Warden presents).\n' +
      'In postgresql.conf:\n' +
      "  ssl = on\n  ssl_cert_file = 'PREFIX.crt'\n  ssl_key_file = 'PREFIX.key'\n  ssl_ca_file = 'PREFIX.cas'\n" +
      'and in pg_hba.conf (client certificates only, CN = database user):\n' +
      '  hostssl all all 0.0.0.0/0 cert\n' +
      'Use the names db_service dials (the host of db_service.databases[].uri) in --host.',
    options: {
      format: { type: 'string', value: 'openssh|db', default: 'openssh', help: 'what to sign for' },
      host: {
        type: 'string',
        multiple: true,
        value: 'NAMES',
        help: 'host names the certificate is valid for',
      },
      out: { type: 'string', value: 'PREFIX', help: 'where to write the key and certificate' },
      ttl: { type: 'string', value: 'DURATION', help: 'certificate lifetime (default one year)' },
    },
    run: async (ctx) => (await import('./auth')).runAuthSign(ctx),
  },
  {
    path: ['audit', 'search'],
    summary: 'Search the audit log.',
    usage: 'audit search [--from=TIME] [--to=TIME] [--type=TYPE] [--user=NAME] [--limit=N] [--format=…]',
    options: {
      from: { type: 'string', value: 'TIME', help: 'RFC3339 time or a duration ago (e.g. 1h)' },
      to: { type: 'string', value: 'TIME', help: 'RFC3339 time or a duration ago' },
      type: {
        type: 'string',
        multiple: true,
        value: 'TYPE',
        help: 'event type, e.g. user.login (repeatable)',
      },
      user: { type: 'string', value: 'NAME', help: 'events of this user' },
      limit: { type: 'string', value: 'N', default: '500', help: 'at most this many events' },
      format: formatOption,
    },
    run: async (ctx) => (await import('./audit')).runAuditSearch(ctx),
  },
  {
    path: ['status'],
    summary: 'Show the cluster, its CAs and the CA pin for `wsh --ca-pin`.',
    options: { format: formatOption },
    run: async (ctx) => (await import('./auth')).runStatus(ctx),
  },
];
