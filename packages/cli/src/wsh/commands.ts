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
];
