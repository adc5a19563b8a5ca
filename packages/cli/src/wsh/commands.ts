/** The `wsh` commands. Each `run` loads its implementation lazily. */
import type { Command, OptionSpec } from '../command';

const proxyOpt: OptionSpec = { type: 'string', value: 'HOST:PORT', help: 'address of the Warden proxy' };
const trustOpts: Record<string, OptionSpec> = {
  'ca-pin': {
    type: 'string',
    value: 'sha256:HEX',
    help: "pin of the cluster's host CA (first contact only)",
  },
  insecure: { type: 'boolean', help: "do not verify the proxy's certificate (not recommended)" },
};

export const wshCommands: Command[] = [
  {
    path: ['signup'],
    summary: 'Set your password and second factor with an invite token from `wctl users add`.',
    usage: 'signup --proxy=HOST:PORT --token=TOKEN [--ca-pin=sha256:HEX]',
    details:
      'Asks for a new password, prints the otpauth:// URI (and a QR code on a terminal) for your\n' +
      'authenticator app, then asks for a code from it. When stdin is not a terminal, answers are\n' +
      'read as lines: the password, then the OTP code.',
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
    usage: 'login --proxy=HOST:PORT --user=NAME [--ttl=DURATION]',
    details:
      'Asks for your password and OTP code. When stdin is not a terminal, answers are read as\n' +
      'lines: the password, then the OTP code. Keys and certificates go under ~/.warden\n' +
      '(WARDEN_HOME overrides).',
    options: {
      proxy: proxyOpt,
      user: { type: 'string', value: 'NAME', help: 'Warden user name (default: the OS user)' },
      ttl: { type: 'string', value: 'DURATION', help: 'requested certificate lifetime, e.g. 8h (max 12h)' },
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
    usage: 'ssh [-L SPEC]... [-t|-T] [-N] [--login=LOGIN] [LOGIN@]NODE [COMMAND...]',
    details:
      'Flags go before NODE; everything after NODE is the remote command (`wsh ssh web-1 ls -la`).\n' +
      'The exit code is the remote exit code (128+N when the command died of signal N).\n' +
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
      tty: { type: 'boolean', short: 't', help: 'force a pseudo-terminal' },
      'no-tty': { type: 'boolean', short: 'T', help: 'never allocate a pseudo-terminal' },
      'no-remote-exec': { type: 'boolean', short: 'N', help: 'run no command (only forward ports)' },
    },
    args: [1, Number.POSITIVE_INFINITY],
    stopAtFirstPositional: true,
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
      'Every node you may reach (and any NODE.<cluster> name) goes through `wsh proxy ssh`, with\n' +
      "your profile's key, certificate and host CA. Examples:\n" +
      '  ssh -F <(wsh config) root@web-1\n' +
      '  wsh config >> ~/.ssh/config',
    run: async (ctx) => (await import('./ssh')).runConfig(ctx),
  },
  {
    path: ['proxy', 'ssh'],
    summary: "Connect stdin/stdout to a node's SSH server through the proxy (an OpenSSH ProxyCommand).",
    usage: 'proxy ssh [--login=LOGIN] [LOGIN@]NODE[:PORT]',
    details: 'Used by the config from `wsh config`: ProxyCommand wsh proxy ssh --login=%r %h',
    options: {
      login: { type: 'string', short: 'l', value: 'LOGIN', help: 'remote login (default: your first login)' },
    },
    args: [1, 1],
    run: async (ctx) => (await import('./ssh')).runProxySsh(ctx),
  },
];
