/**
 * `wsh proxy ssh`: OpenSSH's ProxyCommand (from `wsh config`). OpenSSH starts it for every
 * connection, so its start-up is part of every session's setup: this module loads the
 * profile and the tunnel only — no ssh2, no zod (test/cli-bundle.test.ts guards it).
 */
import { dialNode, proxyError, requireUnexpired } from '@warden/client';
import { type CommandContext, str } from '../command';
import { requireProfile } from '../profile';
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
  await new Promise<void>((done) => {
    stream.once('close', () => done());
    stream.on('error', () => stream.destroy());
    ctx.stdin.pipe(stream);
    stream.pipe(ctx.stdout, { end: false });
  });
  ctx.stdin.unpipe(stream);
  ctx.stdin.pause();
  return 0;
}
