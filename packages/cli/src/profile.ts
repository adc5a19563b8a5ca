/**
 * Which profile a `wsh` command acts with: the identity file named by `-i/--identity` (a
 * bot's destination, `wbot start`), else the `wsh login` profile for `--proxy` or the current one.
 */
import {
  clientForProfile,
  followIdentityFile,
  type LoadedProfile,
  ProfileStore,
  readIdentityFile,
  wardenHome,
} from '@warden/client';
import { type CommandContext, str } from './command';

/** The identity file's profile when `-i` is given, else the login profile (an error says how to log in). */
export function requireProfile(ctx: CommandContext, proxy?: string): LoadedProfile {
  const file = str(ctx.values, 'identity');
  if (file) return readIdentityFile(file);
  return new ProfileStore(wardenHome(ctx.env)).require(proxy);
}

/**
 * `requireProfile`, refusing a profile whose certificates have expired ("your certificates …
 * expired; run `wsh login …`"): for commands that go on to talk to the proxy.
 */
export function requireLiveProfile(ctx: CommandContext, proxy?: string): LoadedProfile {
  const profile = requireProfile(ctx, proxy);
  clientForProfile(profile);
  return profile;
}

/**
 * For long-running relays (`wsh proxy db`): with `-i`, the identity file's current profile at
 * every call (wbot renews it meanwhile), else the profile as `requireProfile` read it.
 */
export function profileSource(ctx: CommandContext, first: LoadedProfile): () => LoadedProfile {
  const file = str(ctx.values, 'identity');
  return file ? followIdentityFile(file) : () => first;
}
