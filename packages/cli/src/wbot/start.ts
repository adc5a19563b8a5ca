/**
 * `wbot start`: join (token, first start) or renew (current certificates), write the
 * destination and its app and Kubernetes outputs (removing those of apps and clusters no
 * longer named), and unless --oneshot keep renewing when a third of the lifetime is left. Outputs are refreshed with every renewal, and on their own
 * when they end first (kube certificates live at most an hour). A refused renewal (a lock,
 * the bot removed) is reported and retried; --oneshot exits 1.
 */
import { join } from 'node:path';
import { isWardenError, WardenError } from '@warden/api';
import {
  type BotOutputs,
  checkOutputs,
  currentIdentity,
  hasOutputs,
  IDENTITY_FILE,
  joinBot,
  type LoadedProfile,
  nextRenewal,
  normalizeProxy,
  pruneOutputs,
  RETRY_MS,
  renewBot,
  type WrittenOutputs,
  writeOutputs,
} from '@warden/client';
import { type CommandContext, list, str } from '../command';
import { proxySshCommandLine } from './proxy-command';

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
  const o = { destination, wshCommand: proxySshCommandLine() };
  const oneshot = ctx.values.oneshot === true;
  const outputs: BotOutputs = {
    apps: list(ctx.values, 'app'),
    kubeClusters: list(ctx.values, 'kubernetes-cluster'),
  };
  checkOutputs(outputs);
  // Outputs of apps and clusters this start no longer names go first (stale credentials).
  const pruned = pruneOutputs(destination, outputs);
  if (pruned.length) say(ctx, `removed ${pruned.join(', ')} (no longer asked for)`);

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
  let written: WrittenOutputs | undefined;
  if (hasOutputs(outputs)) {
    try {
      written = await refreshOutputs(ctx, current, outputs);
    } catch (e) {
      if (oneshot) {
        say(
          ctx,
          `the identity in ${destination} is written; start again without a token once the outputs are fixed`,
        );
        throw e;
      }
      say(ctx, `outputs refused or failed: ${isWardenError(e) ? e.message : (e as Error).message}`);
    }
  }
  if (oneshot) return 0;
  return keepRenewing(ctx, o, outputs, current, written);
}

async function refreshOutputs(
  ctx: CommandContext,
  current: LoadedProfile,
  outputs: BotOutputs,
): Promise<WrittenOutputs> {
  const written = await writeOutputs(current, outputs);
  say(ctx, `wrote ${written.files.join(', ')} (valid until ${written.expires})`);
  return written;
}

/** How long to wait before trying again after a failure, while `current` is valid. */
function retryDelay(current: LoadedProfile): number {
  return Math.min(RETRY_MS, Math.max(1000, (Date.parse(current.expires) - Date.now()) / 4));
}

/**
 * Renews until stopped by a signal: the identity when a third of its lifetime is left (then
 * the outputs, which hold certificates for the new key), the outputs alone when they end first.
 * Failures are reported and retried while the certificates last.
 */
async function keepRenewing(
  ctx: CommandContext,
  o: { destination: string; wshCommand: string },
  outputs: BotOutputs,
  first: LoadedProfile,
  firstOutputs: WrittenOutputs | undefined,
): Promise<number> {
  const wanted = hasOutputs(outputs);
  let current = first;
  // Lifetimes are measured from when the certificates arrived (their NotBefore is backdated
  // for clock skew, which would make a short lifetime look mostly spent).
  let obtainedMs = Date.now();
  let written = firstOutputs;
  let writtenMs = Date.now();
  /** Set after a failure: when to try that step again instead of its schedule. */
  let identityRetry: number | undefined;
  let outputsRetry: number | undefined = wanted && !written ? Date.now() + retryDelay(current) : undefined;
  let stop: () => void = () => {};
  const stopped = new Promise<void>((resolve) => {
    stop = resolve;
  });
  const onSignal = () => stop();
  process.once('SIGTERM', onSignal);
  try {
    for (;;) {
      const { identityAt, outputsAt } = nextRenewal(
        Date.now(),
        {
          obtainedMs,
          expiresMs: Date.parse(current.expires),
          ...(identityRetry !== undefined ? { retryAtMs: identityRetry } : {}),
        },
        !wanted
          ? undefined
          : outputsRetry !== undefined
            ? { obtainedMs: writtenMs, expiresMs: Number.POSITIVE_INFINITY, retryAtMs: outputsRetry }
            : written
              ? { obtainedMs: writtenMs, expiresMs: Date.parse(written.expires) }
              : 'missing',
      );
      const at = Math.min(identityAt, outputsAt);
      if (identityRetry === undefined && outputsRetry === undefined)
        say(ctx, `next renewal at ${new Date(at).toISOString()}`);
      let timer: NodeJS.Timeout | undefined;
      const due = new Promise<'due'>((resolve) => {
        timer = setTimeout(() => resolve('due'), Math.max(0, at - Date.now()));
      });
      const why = await Promise.race([due, stopped.then(() => 'stop' as const)]);
      clearTimeout(timer);
      if (why === 'stop') return 0;
      let renewed = false;
      if (Date.now() >= identityAt) {
        try {
          current = await renewBot(o, current);
          obtainedMs = Date.now();
          identityRetry = undefined;
          renewed = true;
          say(ctx, `renewed ${describe(current)}`);
        } catch (e) {
          say(ctx, `renewal refused or failed: ${isWardenError(e) ? e.message : (e as Error).message}`);
          if (Date.parse(current.expires) <= Date.now()) {
            say(ctx, 'the certificates have expired; a new join token is needed (`wctl bots add`)');
            return 1;
          }
          identityRetry = Date.now() + retryDelay(current);
          continue;
        }
      }
      if (wanted && (renewed || Date.now() >= outputsAt)) {
        try {
          written = await refreshOutputs(ctx, current, outputs);
          writtenMs = Date.now();
          outputsRetry = undefined;
        } catch (e) {
          say(ctx, `outputs refused or failed: ${isWardenError(e) ? e.message : (e as Error).message}`);
          outputsRetry = Date.now() + retryDelay(current);
        }
      }
    }
  } finally {
    process.off('SIGTERM', onSignal);
  }
}
