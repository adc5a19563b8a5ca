/**
 * `wsh proxy ssh`: OpenSSH's ProxyCommand (from `wsh config`). OpenSSH starts it for every
 * connection, so its start-up is part of every session's setup: this module loads the
 * profile and the tunnel only — no ssh2, no zod (test/cli-bundle.test.ts guards it).
 */
import { dialNode, proxyError, requireUnexpired } from '@warden/client';
import { type CommandContext, str } from '../command';
import { requireProfile } from '../profile';
import { relayFd } from './fd-relay';
import { chooseLogin, nodeFromHost, parseTarget } from './target';

export async function runProxySsh(ctx: CommandContext): Promise<number> {
  // Throws "your certificates … expired; run `wsh login …`" for an expired profile.
  const profile = requireUnexpired(requireProfile(ctx));
  const { login: targetLogin, node: host } = parseTarget(ctx.positionals[0] ?? '');
  const login = chooseLogin(str(ctx.values, 'login'), targetLogin, profile);
  let stream: Awaited<ReturnType<typeof dialNode>>['stream'];
  try {
    ({ stream } = await dialNode(profile, { node: nodeFromHost(host, profile.cluster), login }));
  } catch (e) {
    throw proxyError(e);
  }
  // OpenSSH's pipe is read into reused buffers (fd-relay.ts); a terminal or a file on fd 0, or
  // a context that is not the process's own (tests), is piped.
  const relay = ctx.stdin === process.stdin ? relayFd(0, stream) : undefined;
  await new Promise<void>((done) => {
    stream.once('close', () => done());
    stream.on('error', () => stream.destroy());
    if (!relay) ctx.stdin.pipe(stream);
    stream.pipe(ctx.stdout, { end: false });
  });
  if (relay) relay.close();
  else {
    ctx.stdin.unpipe(stream);
    ctx.stdin.pause();
  }
  return 0;
}
