/** The `wsh` commands. Each `run` loads its implementation lazily. */
import type { Command, OptionSpec } from '../command';
import { proxySshSpec, wshEnv, wshGlobalOptions } from './base';

export { wshEnv, wshGlobalOptions };

const proxyOpt: OptionSpec = {
  type: 'string',
  value: 'HOST:PORT',
  help: 'the Warden proxy, HOST:PORT or https://HOST:PORT (default $WARDEN_PROXY, else the last one used)',
};
const trustOpts: Record<string, OptionSpec> = {
  'ca-pin': {
    type: 'string',
    value: 'sha256:HEX',
    help: "pin of the cluster's host CA (first contact only)",
  },
  insecure: { type: 'boolean', help: "do not verify the proxy's certificate (not recommended)" },
};

const dbRouteOpts: Record<string, OptionSpec> = {
  'db-user': { type: 'string', value: 'USER', help: 'database user' },
  'db-name': { type: 'string', value: 'DATABASE', help: 'database (schema) name' },
};

export const wshCommands: Command[] = [
  {
    path: ['signup'],
    summary: 'Set your password and second factor with an invite token from `wctl users add`.',
    usage: 'signup --proxy=HOST:PORT --token=TOKEN [--ca-pin=sha256:HEX]',
    details:
      'Asks for a new password (at least 12 characters; checked before the next step), prints the\n' +
      'otpauth:// URI (and a QR code on a terminal) for your authenticator app, then asks for a\n' +
      'code from it, and logs you in. When stdin is not a terminal, answers are read as lines:\n' +
      'the password, then the OTP code.',
    options: {
      proxy: proxyOpt,
      token: { type: 'string', value: 'TOKEN', help: 'invite token' },
      ...trustOpts,
    },
    run: async (ctx) => (await import('./signup')).runSignup(ctx),
  },
  {
    path: ['login'],
    summary: 'Log in and receive short-lived SSH and X.509 certificates.',
    usage: 'login [--proxy=HOST:PORT] [--user=NAME] [--ttl=DURATION]',
    details:
      'Asks for your password and OTP code. When stdin is not a terminal, answers are read as\n' +
      'lines: the password, then the OTP code. Keys and certificates go under ~/.warden\n' +
      '(WARDEN_HOME overrides).',
    options: {
      proxy: proxyOpt,
      user: {
        type: 'string',
        value: 'NAME',
        help: 'Warden user name (default $WARDEN_USER, else the last one on this proxy, else the OS user)',
      },
      ttl: { type: 'string', value: 'DURATION', help: 'requested certificate lifetime, e.g. 8h (max 12h)' },
      'web-helper': {
        type: 'string',
        value: 'auto|off',
        help: 'auto: start `wsh device web-helper` when Web UI sessions need a trusted device (default; $WARDEN_WEB_HELPER)',
      },
      ...trustOpts,
    },
    run: async (ctx) => (await import('./signup')).runLogin(ctx),
  },
  {
    path: ['status'],
    summary: 'Show the current profile: proxy, user, roles, logins, expiry and certificate extensions.',
    options: { format: { type: 'string', value: 'text|json|yaml', default: 'text', help: 'output format' } },
    run: async (ctx) => (await import('./status')).runStatus(ctx),
  },
  {
    path: ['logout'],
    summary: 'Delete the keys and certificates of the current profile.',
    options: { proxy: proxyOpt },
    run: async (ctx) => (await import('./status')).runLogout(ctx),
  },
  {
    path: ['ssh'],
    summary: 'Run a login shell or a command on a node, through the proxy.',
    usage: 'ssh [-L SPEC]... [-A] [-t|-T] [-N] [--login=LOGIN] [LOGIN@]NODE [COMMAND...]',
    details:
      'Flags go before NODE; everything after NODE is the remote command (`wsh ssh web-1 ls -la`).\n' +
      'The exit code is the remote exit code (128+N when the command died of signal N), or 255\n' +
      'when wsh itself fails (the proxy refused, the node is unknown or unreachable), as in ssh.\n' +
      'LOGIN defaults to your first login (`wsh status`). A PTY is allocated for an interactive\n' +
      'shell on a terminal; -t forces one, -T refuses one.\n' +
      'Examples:\n' +
      '  wsh ssh root@web-1\n' +
      '  echo hi | wsh ssh web-1 cat\n' +
      '  wsh ssh -N -L 8080:localhost:80 web-1    # forward local port 8080 to port 80 on web-1',
    options: {
      login: { type: 'string', short: 'l', value: 'LOGIN', help: 'remote login (default: your first login)' },
      forward: {
        type: 'string',
        short: 'L',
        multiple: true,
        value: '[BIND:]PORT:HOST:HOSTPORT',
        help: 'forward a local port to HOST:HOSTPORT as seen from the node (repeatable)',
      },
      'forward-agent': {
        type: 'boolean',
        short: 'A',
        help: 'forward your SSH agent (SSH_AUTH_SOCK), if your roles permit it',
      },
      tty: { type: 'boolean', short: 't', help: 'force a pseudo-terminal' },
      'no-tty': { type: 'boolean', short: 'T', help: 'never allocate a pseudo-terminal' },
      'no-remote-exec': { type: 'boolean', short: 'N', help: 'run no command (only forward ports)' },
    },
    args: [1, Number.POSITIVE_INFINITY],
    stopAtFirstPositional: true,
    errorExitCode: 255,
    run: async (ctx) => (await import('./ssh')).runSsh(ctx),
  },
  {
    path: ['ls'],
    summary: 'List the nodes you may reach.',
    options: { format: { type: 'string', value: 'text|json|yaml', default: 'text', help: 'output format' } },
    run: async (ctx) => (await import('./ssh')).runLs(ctx),
  },
  {
    path: ['config'],
    summary: 'Print an OpenSSH client config for this cluster, so plain ssh and scp reach its nodes.',
    details:
      'Every node you may reach (and any NODE.<cluster> name, for nodes added later) goes through\n' +
      "`wsh proxy ssh`, with your profile's key, certificate and host CA. Save it and include it\n" +
      'from ~/.ssh/config (the Include line before any Host line):\n' +
      '  wsh config > ~/.ssh/warden.conf\n' +
      '  echo "Include warden.conf" >> ~/.ssh/config    # or put it at the top of the file\n' +
      '  ssh root@web-1\n' +
      'or use it alone: ssh -F ~/.ssh/warden.conf root@web-1\n' +
      '--form=match prints a `Match exec` block instead: no node list to refresh, but OpenSSH then\n' +
      'runs `wsh config --is-node HOST` for every bare host name it connects to.',
    options: {
      form: {
        type: 'string',
        value: 'host|match',
        default: 'host',
        help: 'host: a Host line naming each node (default); match: a Match exec block',
      },
      'is-node': {
        type: 'string',
        value: 'HOST',
        help: 'exit 0 if HOST is a node of the cluster, else 1 (what the match form runs)',
      },
    },
    run: async (ctx) =>
      ctx.values['is-node'] !== undefined
        ? (await import('./is-node')).runIsNode(ctx)
        : (await import('./ssh')).runConfig(ctx),
  },
  {
    path: ['db', 'ls'],
    summary: 'List the databases you may reach, with the database users your roles allow.',
    options: { format: { type: 'string', value: 'text|json|yaml', default: 'text', help: 'output format' } },
    run: async (ctx) => (await import('./db')).runDbLs(ctx),
  },
  {
    path: ['db', 'login'],
    summary: 'Choose the database user (and database) for a database; get its database certificate.',
    usage: 'db login NAME [--db-user=USER] [--db-name=DATABASE]',
    details:
      'Later `wsh db connect NAME`, `wsh proxy db NAME` and `wsh db config NAME` use the choice.\n' +
      'Without --db-user, your only allowed database user is taken (if there is exactly one).\n' +
      'The database certificate lets psql, mysql and drivers connect straight to the proxy (no\n' +
      'wsh in between) until your login expires; `wsh db config NAME` prints how.',
    options: dbRouteOpts,
    args: [1, 1],
    run: async (ctx) => (await import('./db')).runDbLogin(ctx),
  },
  {
    path: ['db', 'logout'],
    summary: 'Forget the database choice and certificate for NAME (or for every database).',
    usage: 'db logout [NAME]',
    args: [0, 1],
    run: async (ctx) => (await import('./db')).runDbLogout(ctx),
  },
  {
    path: ['db', 'connect'],
    summary: 'Connect to a database with its own client (psql), through a local tunnel to the proxy.',
    usage: 'db connect NAME [--db-user=USER] [--db-name=DATABASE] [-- CLIENT ARGS...]',
    details:
      "Warden's flags go before or after NAME; arguments for psql or mysql go after --. Examples:\n" +
      '  wsh db connect orders --db-user=alice --db-name=orders\n' +
      '  wsh db connect orders --db-user=reader -- -c "select count(*) from orders"',
    options: dbRouteOpts,
    args: [1, 1],
    passThroughAfterDashDash: 'psql or mysql',
    run: async (ctx) => (await import('./db')).runDbConnect(ctx),
  },
  {
    path: ['db', 'config'],
    summary: 'Show how clients and drivers connect to a database (a tunnel, or with its certificate).',
    usage: 'db config [NAME] [--format=text|json|yaml]',
    options: {
      ...dbRouteOpts,
      format: { type: 'string', value: 'text|json|yaml', default: 'text', help: 'output format' },
    },
    args: [0, 1],
    run: async (ctx) => (await import('./db')).runDbConfig(ctx),
  },
  {
    path: ['proxy', 'db'],
    summary: 'Start a local plain listener for a database that any client or driver can use.',
    usage: 'proxy db NAME --tunnel [-p PORT | --socket=PATH] [--db-user=USER] [--db-name=DATABASE]',
    details:
      'Connections to 127.0.0.1:PORT reach the database through the proxy as you (your\n' +
      'certificate), so anyone who can reach that port acts as you: it listens on loopback only.\n' +
      'With --socket it listens on a Unix-domain socket instead, which only you can open (mode\n' +
      '0600) and costs a little less per query than the loopback port. PostgreSQL: PATH is a\n' +
      'directory and the socket is PATH/.s.PGSQL.PORT (-p, default 5432), as psql -h PATH looks\n' +
      'for it; MySQL: PATH is the socket file (mysql --socket=PATH).\n' +
      'Examples:\n' +
      '  wsh proxy db orders --tunnel -p 5433 &\n' +
      '  psql "host=127.0.0.1 port=5433 user=alice dbname=orders sslmode=disable"\n' +
      '  wsh proxy db orders --tunnel --socket=$XDG_RUNTIME_DIR &\n' +
      '  psql -h $XDG_RUNTIME_DIR -U alice orders\n' +
      '  wsh proxy db shop --tunnel --socket=$XDG_RUNTIME_DIR/shop.sock &\n' +
      '  mysql --socket=$XDG_RUNTIME_DIR/shop.sock -u alice shop',
    options: {
      ...dbRouteOpts,
      tunnel: { type: 'boolean', help: 'plain local listener (certificates stay in wsh)' },
      port: { type: 'string', short: 'p', value: 'PORT', help: 'local port (default: any free port)' },
      socket: {
        type: 'string',
        value: 'PATH',
        help: 'listen on a Unix socket: a directory for PostgreSQL, the socket file for MySQL',
      },
    },
    args: [1, 1],
    run: async (ctx) => (await import('./db')).runProxyDb(ctx),
  },
  {
    path: ['apps', 'ls'],
    summary: 'List the web apps you may reach, with their public addresses.',
    options: { format: { type: 'string', value: 'text|json|yaml', default: 'text', help: 'output format' } },
    run: async (ctx) => (await import('./app')).runAppsLs(ctx),
  },
  {
    path: ['app', 'login'],
    summary: 'Get an app certificate for a web app (for curl and other clients; see `wsh app config`).',
    usage: 'app login NAME',
    details:
      'The certificate carries your identity (and your trusted device, when your login has one)\n' +
      'and ends when your login does. It is stored in your profile; `wsh app config NAME` prints\n' +
      'its paths and a curl command.',
    args: [1, 1],
    run: async (ctx) => (await import('./app')).runAppLogin(ctx),
  },
  {
    path: ['app', 'logout'],
    summary: 'Delete the app certificate of NAME (or of every app).',
    usage: 'app logout [NAME]',
    args: [0, 1],
    run: async (ctx) => (await import('./app')).runAppLogout(ctx),
  },
  {
    path: ['app', 'config'],
    summary: 'Show how to use an app certificate: URI, CA, certificate and key paths, a curl command.',
    usage: 'app config [NAME] [--format=text|json|yaml|uri|ca|cert|key|curl]',
    details: 'Example: curl $(wsh app config grafana --format=curl | cut -d" " -f2-)',
    options: {
      format: {
        type: 'string',
        value: 'text|json|yaml|uri|ca|cert|key|curl',
        default: 'text',
        help: 'what to print',
      },
    },
    args: [0, 1],
    run: async (ctx) => (await import('./app')).runAppConfig(ctx),
  },
  {
    path: ['proxy', 'app'],
    summary: 'Serve a web app on a local port (http://127.0.0.1:PORT), through the proxy as you.',
    usage: 'proxy app NAME [-p PORT]',
    details:
      'Logs in to the app, then relays every local connection (browsers, curl, WebSockets) to it\n' +
      'with your app certificate, until Ctrl+C. Anyone who can reach the port acts as you: it\n' +
      'listens on loopback only. Example:\n' +
      '  wsh proxy app grafana -p 8888    # then open http://127.0.0.1:8888',
    options: {
      port: { type: 'string', short: 'p', value: 'PORT', help: 'local port (default: any free port)' },
    },
    args: [1, 1],
    run: async (ctx) => (await import('./app')).runProxyApp(ctx),
  },
  {
    path: ['kube', 'ls'],
    summary: 'List the Kubernetes clusters you may reach.',
    options: { format: { type: 'string', value: 'text|json|yaml', default: 'text', help: 'output format' } },
    run: async (ctx) => (await import('./kube')).runKubeLs(ctx),
  },
  {
    path: ['kube', 'login'],
    summary:
      'Add a kubectl context for a Kubernetes cluster (in $KUBECONFIG or ~/.kube/config) and make it current.',
    usage: 'kube login CLUSTER',
    details:
      'kubectl then reaches the cluster through the proxy. Its credential is an exec plugin: a\n' +
      'small /bin/sh script that prints your short-lived client certificate (standing for your\n' +
      'device after device authentication) from a 0600 cache under the profile while it is valid,\n' +
      'else runs `wsh kube credentials` for a new one. `wsh login`, `wsh logout` and\n' +
      '`wsh kube logout` delete the cache; run `wsh login` again when the login expires.\n' +
      'With --cert-files, kubectl reads a certificate and key from files under the profile instead\n' +
      '(0600; valid as long as the login, renewed by `wsh login`): no plugin runs per kubectl\n' +
      'command, so each is faster.\n' +
      'Example:\n  wsh kube login prod\n  kubectl get pods',
    options: {
      proxy: { type: 'string', value: 'HOST:PORT', help: 'profile of this proxy (default: the current one)' },
      'cert-files': {
        type: 'boolean',
        help: 'kubectl reads a certificate and key from files (no exec plugin run per command)',
      },
    },
    args: [1, 1],
    run: async (ctx) => (await import('./kube')).runKubeLogin(ctx),
  },
  {
    path: ['kube', 'logout'],
    summary: 'Remove the kubectl contexts `wsh kube login` wrote (one cluster, or all of them).',
    usage: 'kube logout [CLUSTER]',
    options: {
      proxy: { type: 'string', value: 'HOST:PORT', help: 'profile of this proxy (default: the current one)' },
    },
    args: [0, 1],
    run: async (ctx) => (await import('./kube')).runKubeLogout(ctx),
  },
  {
    path: ['kube', 'credentials'],
    summary: 'Print an ExecCredential for kubectl (the exec plugin `wsh kube login` configures).',
    options: {
      proxy: { type: 'string', value: 'HOST:PORT', help: 'profile of this proxy (default: the current one)' },
      cluster: { type: 'string', value: 'CLUSTER', help: 'the Kubernetes cluster (for messages)' },
    },
    run: async (ctx) => (await import('./kube')).runKubeCredentials(ctx),
  },
  {
    path: ['proxy', 'kube'],
    summary: 'Start a local plain-HTTP listener for a Kubernetes cluster (tools without exec plugins).',
    usage: 'proxy kube CLUSTER [-p PORT]',
    details:
      'Connections to 127.0.0.1:PORT reach the cluster through the proxy as you (your\n' +
      'certificate), so anyone who can reach that port acts as you: it listens on loopback only.\n' +
      'It prints a kubeconfig for http://127.0.0.1:PORT/kube/CLUSTER.',
    options: {
      port: { type: 'string', short: 'p', value: 'PORT', help: 'local port (default: any free port)' },
    },
    args: [1, 1],
    run: async (ctx) => (await import('./kube')).runProxyKube(ctx),
  },
  { ...proxySshSpec, run: async (ctx) => (await import('./proxy-ssh')).runProxySsh(ctx) },
  {
    path: ['device', 'asset-tag'],
    summary: "Print this device's asset tag (what `wctl devices add --asset-tag` wants).",
    details:
      'Linux: the first valid of the DMI chassis asset tag, product serial and board serial; where\n' +
      'none is readable, ek: followed by a hash of the TPM endorsement key (WARDEN_TPM).',
    options: { format: { type: 'string', value: 'text|json|yaml', default: 'text', help: 'output format' } },
    run: async (ctx) => (await import('./device')).runAssetTag(ctx),
  },
  {
    path: ['device', 'collect'],
    summary: 'Print the device data that enrollment and device authentication send, as JSON.',
    options: { format: { type: 'string', value: 'json|yaml', default: 'json', help: 'output format' } },
    run: async (ctx) => (await import('./device')).runCollect(ctx),
  },
  {
    path: ['device', 'keyget'],
    summary:
      "Print this device's credential (the TPM attestation key's public parts), creating it if needed.",
    options: { format: { type: 'string', value: 'json|yaml', default: 'json', help: 'output format' } },
    run: async (ctx) => (await import('./device')).runKeyget(ctx),
  },
  {
    path: ['device', 'enroll'],
    summary: 'Enroll this device (its TPM) as a trusted device, with a token from an administrator.',
    usage: 'device enroll --token=TOKEN [--proxy=HOST:PORT] | device enroll --current-device',
    details:
      'The token comes from `wctl devices add --enroll` or `wctl devices enroll`. Administrators can\n' +
      'register and enroll the device they are logged in on with --current-device. The TPM comes\n' +
      'from WARDEN_TPM (default /dev/tpmrm0); the attestation key stays in the TPM, its wrapped\n' +
      'blobs in ~/.cache/warden-device. When you are logged in, your certificates are renewed\n' +
      'with the device right away; otherwise log in again.',
    options: {
      token: { type: 'string', value: 'TOKEN', help: 'device enrollment token' },
      'current-device': {
        type: 'boolean',
        help: 'register this device and enroll it (needs device admin rights)',
      },
      proxy: proxyOpt,
      ...trustOpts,
    },
    run: async (ctx) => (await import('./device')).runEnroll(ctx),
  },
  {
    path: ['device', 'web-helper'],
    summary: 'Prove this device to the Web UI: a helper on 127.0.0.1 that the browser asks (device trust).',
    usage: 'device web-helper [--install]',
    details:
      'Listens on 127.0.0.1 (the first free port of 41780-41783, or of $WARDEN_WEB_HELPER_PORTS)\n' +
      'until stopped. When the Web UI needs a trusted device, the page hands it a one-time\n' +
      'challenge; the helper runs the TPM ceremony with Warden over its own connection, as the user\n' +
      'wsh is logged in as (wsh login), and Warden marks the browser session device-trusted. Only\n' +
      'pages of proxies you are logged in to may ask (exact Origin), only by 127.0.0.1 (Host), with a\n' +
      'CORS preflight; requests are rate-limited.\n' +
      '`wsh login` starts one in the background when your Web UI sessions need a trusted device and\n' +
      'none is running (log: ~/.warden/web-helper.log; it stops at `wsh logout`).\n' +
      '--install writes a systemd user unit (~/.config/systemd/user/wsh-web-helper.service) and a\n' +
      'wsh:// link handler (~/.local/share/applications/wsh-device-trust.desktop), and prints the\n' +
      'commands that enable them.',
    options: {
      install: { type: 'boolean', help: 'install as a systemd user service and wsh:// handler' },
      'until-logout': {
        type: 'string',
        value: 'PROXY',
        help: 'stop once wsh is no longer logged in to PROXY (how `wsh login` starts it on demand)',
      },
    },
    run: async (ctx) => (await import('./web-helper')).runWebHelper(ctx),
  },
  {
    path: ['device', 'web-auth'],
    summary: 'Prove this device for a browser session from a wsh:// link of the Web UI.',
    usage: 'device web-auth wsh://device-trust?proxy=...&id=...&secret=...',
    details:
      'What the wsh:// link on the Web UI\'s "This device" page runs when the browser cannot reach\n' +
      '`wsh device web-helper` (installed as the link handler by `wsh device web-helper --install`).',
    args: [1, 1],
    run: async (ctx) => (await import('./web-helper')).runWebAuth(ctx),
  },
];
