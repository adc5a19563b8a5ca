/** The `wbot` commands. Each `run` loads its implementation lazily. */
import type { Command } from '../command';

/** The environment variables wbot reads (listed in every `wbot … --help`). */
export const wbotEnv: [string, string][] = [
  ['WARDEN_PROXY', 'proxy address when --proxy is not given'],
  ['WARDEN_BOT_TOKEN', 'join token when --token is not given (keeps it out of the process list)'],
  ['WARDEN_DEBUG', 'set to 1 for debug details, as --debug'],
];

export const wbotCommands: Command[] = [
  {
    path: ['start'],
    summary: "Join with a bot's one-time token, then keep its certificates fresh in a directory.",
    usage:
      'start --destination=DIR [--proxy=HOST:PORT --token=TOKEN [--ca-pin=sha256:HEX]] [--app=NAME]… [--kubernetes-cluster=NAME]… [--oneshot]',
    details:
      'The first start spends the join token from `wctl bots add` (once). Later starts, and every\n' +
      'renewal, use the certificates already in DIR instead: a restart needs no new token while\n' +
      'they are valid. Certificates are renewed when a third of their lifetime is left.\n\n' +
      'DIR holds (mode 0700):\n' +
      '  identity      for `wsh -i DIR/identity …` and `wctl -i DIR/identity …`\n' +
      '  ssh_config    for `ssh -F DIR/ssh_config LOGIN@NODE.CLUSTER`\n' +
      '  key.pem, tls.pem, host-cas.pem, key-cert.pub, known_hosts   key and certificates for\n' +
      '                other clients (TLS client certificate and CA, OpenSSH)\n' +
      '  apps/NAME.pem with --app=NAME: the app certificate and its key, for\n' +
      '                `curl --cert DIR/apps/NAME.pem --cacert DIR/host-cas.pem https://NAME.<proxy host>:PORT/`\n' +
      '  kubeconfig.yaml  with --kubernetes-cluster=NAME: a context per cluster, for\n' +
      '                `kubectl --kubeconfig DIR/kubeconfig.yaml …`; its certificate and key are in\n' +
      '                kube/NAME.pem, which kubectl and client-go programs read again as it is renewed\n' +
      'Each start removes the app and cluster outputs it is no longer asked for (a restart\n' +
      'without --app=NAME deletes apps/NAME.*).\n' +
      'Databases need no output of their own: `wsh -i DIR/identity db connect NAME` or\n' +
      '`wsh -i DIR/identity proxy db NAME --tunnel` (a running tunnel uses each renewal).\n\n' +
      'A lock on the bot (`wctl bots lock NAME`) stops renewal; --oneshot then exits 1.',
    options: {
      destination: {
        type: 'string',
        value: 'DIR',
        help: 'where the identity and certificates are kept (required)',
      },
      proxy: {
        type: 'string',
        value: 'HOST:PORT',
        help: 'the Warden proxy, HOST:PORT or https://HOST:PORT (first start; default $WARDEN_PROXY)',
      },
      token: {
        type: 'string',
        value: 'TOKEN',
        help: 'the join token (first start only; default $WARDEN_BOT_TOKEN)',
      },
      'ca-pin': { type: 'string', value: 'sha256:HEX', help: "pin of the cluster's host CA (first start)" },
      insecure: { type: 'boolean', help: "do not verify the proxy's certificate (not recommended)" },
      oneshot: { type: 'boolean', help: 'get or renew the certificates once, then exit' },
      app: {
        type: 'string',
        multiple: true,
        value: 'NAME',
        help: 'also keep an app certificate for this app in DIR/apps/NAME.pem (repeatable)',
      },
      'kubernetes-cluster': {
        type: 'string',
        multiple: true,
        value: 'NAME',
        help: 'also keep a context for this Kubernetes cluster in DIR/kubeconfig.yaml (repeatable)',
      },
    },
    run: async (ctx) => (await import('./start')).runStart(ctx),
  },
];
