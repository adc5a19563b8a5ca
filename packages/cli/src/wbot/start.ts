/**
 * `wbot start`: join (token, first start) or renew (current certificates), write the
 * destination, and unless --oneshot keep renewing when a third of the lifetime is left. A
 * refused renewal (a lock, the bot removed) is reported and retried; --oneshot exits 1.
 */
import { join } from 'node:path';
import { isWardenError, WardenError } from '@warden/api';
import {
  currentIdentity,
  IDENTITY_FILE,
  joinBot,
  type LoadedProfile,
  normalizeProxy,
  RETRY_MS,
  renewAt,
  renewBot,
} from '@warden/client';
import { type CommandContext, str } from '../command';
import { wshCommandLine } from '../wsh/ssh';

/** The wsh next to this wbot (both are bundled into dist/), for ssh_config's ProxyCommand. */
function wshCommand(): string {
  const script = process.argv[1] ?? 'wbot';
  return wshCommandLine(process.execPath, process.execArgv, script.replace(/wbot(\.[cm]?[jt]s)?$/, 'wsh$1'));
}

function say(ctx: CommandContext, line: string): void {
  ctx.stderr.write(`wbot: ${line}\n`);
}

function describe(p: LoadedProfile): string {
  return `bot "${p.user}" (roles ${p.roles.join(', ') || 'none'}); certificates valid until ${p.expires}`;
}

export async function runStart(ctx: CommandContext): Promise<number> {
  const destination = str(ctx.values, 'destination');
  if (!destination)
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      '--destination=DIR is required (where the bot keeps its identity)',
    );
  const token = str(ctx.values, 'token') ?? (ctx.env.WARDEN_BOT_TOKEN || undefined);
  const proxyFlag = str(ctx.values, 'proxy') ?? (ctx.env.WARDEN_PROXY || undefined);
  const o = { destination, wshCommand: wshCommand() };
  const oneshot = ctx.values.oneshot === true;

  let current = currentIdentity(destination);
  const valid = current && Date.parse(current.expires) > Date.now();
  if (valid) {
    if (token)
      say(ctx, `${destination} holds valid certificates: renewing with them (the token is not needed)`);
    current = await renewBot(o, current!);
    say(ctx, `renewed ${describe(current)}`);
  } else {
    if (!token)
      throw new WardenError(
        'WARDEN_ERR_NOT_LOGGED_IN',
        current
          ? `the certificates in ${destination} expired at ${current.expires}; a new join token is needed (\`wctl bots rm NAME\`, then \`wctl bots add NAME …\`)`
          : `${destination} holds no bot identity yet: give the join token from \`wctl bots add\` with --token (or $WARDEN_BOT_TOKEN)`,
      );
    if (!proxyFlag)
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', '--proxy=HOST:PORT is required for the first start');
    const caPin = str(ctx.values, 'ca-pin');
    current = await joinBot({
      ...o,
      proxy: normalizeProxy(proxyFlag),
      token,
      ...(caPin ? { caPin } : {}),
      ...(ctx.values.insecure === true ? { insecure: true } : {}),
    });
    say(ctx, `joined as ${describe(current)}`);
  }
  say(
    ctx,
    `wrote ${join(current.dir, IDENTITY_FILE)} (use \`wsh -i ${join(current.dir, IDENTITY_FILE)} …\`)`,
  );
  if (oneshot) return 0;
  return keepRenewing(ctx, o, current);
}

/** Renews until stopped by a signal; failures are reported and retried while the certificates last. */
async function keepRenewing(
  ctx: CommandContext,
  o: { destination: string; wshCommand: string },
  first: LoadedProfile,
): Promise<number> {
  let current = first;
  // Lifetimes are measured from when the certificates arrived (their NotBefore is backdated
  // for clock skew, which would make a short lifetime look mostly spent).
  let obtainedMs = Date.now();
  let stop: () => void = () => {};
  const stopped = new Promise<void>((resolve) => {
    stop = resolve;
  });
  const onSignal = () => stop();
  process.once('SIGTERM', onSignal);
  let delay = 0;
  try {
    for (;;) {
      const expiresMs = Date.parse(current.expires);
      const at = delay > 0 ? Date.now() + delay : renewAt(obtainedMs, expiresMs, Date.now());
      if (delay === 0) say(ctx, `next renewal at ${new Date(at).toISOString()}`);
      let timer: NodeJS.Timeout | undefined;
      const due = new Promise<'due'>((resolve) => {
        timer = setTimeout(() => resolve('due'), Math.max(0, at - Date.now()));
      });
      const why = await Promise.race([due, stopped.then(() => 'stop' as const)]);
      clearTimeout(timer);
      if (why === 'stop') return 0;
      try {
        current = await renewBot(o, current);
        obtainedMs = Date.now();
        delay = 0;
        say(ctx, `renewed ${describe(current)}`);
      } catch (e) {
        const left = Date.parse(current.expires) - Date.now();
        say(ctx, `renewal refused or failed: ${isWardenError(e) ? e.message : (e as Error).message}`);
        if (left <= 0) {
          say(ctx, 'the certificates have expired; a new join token is needed (`wctl bots add`)');
          return 1;
        }
        delay = Math.min(RETRY_MS, Math.max(1000, left / 4));
      }
    }
  } finally {
    process.off('SIGTERM', onSignal);
  }
}
