/**
 * Bots: machine identities for CI jobs and scripts. A bot is a `user` resource with
 * `spec.bot` — no password, no second factor, no Web UI. `wctl bots add` creates it with a
 * one-time join token; `warden bot start` spends the token once for its first certificates,
 * then renews them with the current certificate (never the token again). A lock on the bot
 * (or one of its roles) stops renewal; sessions end through the session monitor as for
 * anyone. Certificates say `bot` (X.509 identity `kind`, SSH `warden-user-kind@…`), which is
 * how `required-for-humans` exempts them.
 *
 *   /local_auth/bot_tokens/<sha256 of token>   { bot, expires, created_by }   (TTL = token lifetime)
 *
 * Permissions are checked by the caller (`AuthServer`), except that renewal needs a bot's
 * own certificate. Internal to `auth/`; the public surface is `auth/index.ts`.
 */
import { isWardenError, parseDuration, type rpc, type UserResource, WardenError } from '@warden/api';
import type { z } from 'zod';
import type { Actor, Identity } from '../access';
import { undoUnless } from '../audit';
import { OneTimeTokens } from '../tokens';
import { clientKey, entitlements, userCertificates } from './certificates';
import { type AuthDeps, auditWith } from './deps';
import { checkUserName, newUser } from './users';

/** Backend prefix of bot join tokens (keyed by the token's SHA-256, never the token). */
export const BOT_TOKEN_PREFIX = '/local_auth/bot_tokens/';
/** A bot certificate's lifetime when `wctl bots add` names none. */
export const DEFAULT_BOT_CERT_TTL = '1h';
/** Join tokens wait this long by default, and at most 7 days. */
export const DEFAULT_BOT_TOKEN_TTL_MS = 60 * 60 * 1000;
export const MAX_BOT_TOKEN_TTL_MS = 7 * 24 * 60 * 60 * 1000;
/**
 * Bot certificates live at least 5 seconds and at most a day. `wbot` renews when a third of
 * the lifetime is left, so very short lifetimes are only for tests and demonstrations.
 */
const MIN_BOT_CERT_TTL_MS = 5 * 1000;
const MAX_BOT_CERT_TTL_MS = 24 * 60 * 60 * 1000;

/** The one message for every refused join token: unknown, spent, expired or its bot gone. */
export const INVALID_BOT_TOKEN_MESSAGE =
  'invalid or expired bot join token; make a new one with `wctl bots add NAME --roles=…` (after `wctl bots rm NAME`)';

/** A bot as `wctl bots ls` shows it. */
export interface BotInfo {
  name: string;
  roles: string[];
  logins: string[];
  ttl: string;
  created_by?: string;
  created?: string;
}

export class BotService {
  readonly #o: AuthDeps;
  readonly #audit: ReturnType<typeof auditWith>;
  readonly #tokens: OneTimeTokens<{ bot: string; created_by: string }>;

  constructor(o: AuthDeps) {
    this.#o = o;
    this.#audit = auditWith(o);
    this.#tokens = new OneTimeTokens(o.backend, o.clock, BOT_TOKEN_PREFIX);
  }

  /** `wctl bots add`: the bot user and its join token (shown once). */
  async add(actor: Actor, req: z.infer<typeof rpc.AddBotRequest>): Promise<rpc.BotTokenResponse> {
    checkUserName(req.name);
    const ttl = req.ttl ?? DEFAULT_BOT_CERT_TTL;
    const ttlMs = parseDuration(ttl, '--ttl');
    if (ttlMs < MIN_BOT_CERT_TTL_MS || ttlMs > MAX_BOT_CERT_TTL_MS)
      throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `--ttl must be between 5s and 24h, got "${ttl}"`);
    const tokenTtlMs = tokenTtl(req.token_ttl);
    const user = await newUser(this.#o, actor, req, { ttl });
    if (await this.#o.services.users.find(req.name))
      throw new WardenError(
        'WARDEN_ERR_ALREADY_EXISTS',
        `a user or bot named "${req.name}" already exists; pick another name or remove it first`,
      );
    const stored = await this.#o.services.users.create(user);
    const { token, expires } = await this.#tokens.create(
      { bot: req.name, created_by: actor.user },
      tokenTtlMs,
    );
    // Not unaudited (issue 15 item 5): a bot the audit log did not record is taken back.
    await undoUnless(
      this.#o.logger,
      this.#audit({
        type: 'bot.create',
        success: true,
        user: actor.user,
        addr: actor.addr,
        name: req.name,
        roles: req.roles,
        expires,
      }),
      async () => {
        await this.deleteTokensOf(req.name);
        await this.#o.services.users.undo({ written: stored });
      },
      'bot create',
    );
    const pin = this.#o.cas.caPin('host');
    return {
      bot: req.name,
      token,
      expires,
      join_command:
        `warden bot start --proxy=${this.#o.proxyPublicAddr} --token=${token} --ca-pin=${pin} ` +
        `--destination=./${req.name}`,
    };
  }

  /** Bots, for `wctl bots ls`. */
  async list(): Promise<BotInfo[]> {
    const users = await this.#o.services.users.list();
    return users
      .filter((u) => u.spec.bot)
      .map((u) => ({
        name: u.metadata.name,
        roles: [...u.spec.roles],
        logins: [...(u.spec.traits.logins ?? [])],
        ttl: u.spec.bot!.ttl,
        ...(u.spec.created_by ? { created_by: u.spec.created_by.user, created: u.spec.created_by.time } : {}),
      }));
  }

  /** `wctl bots rm`: the bot and its open join tokens. Its certificates stop renewing. */
  async remove(actor: Actor, name: string): Promise<void> {
    const user = await this.#o.services.users.find(name);
    if (!user?.spec.bot) throw new WardenError('WARDEN_ERR_NOT_FOUND', `bot "${name}" not found`);
    await this.#o.services.users.delete(name);
    // A removal the audit log refuses is undone; the join tokens go only once it is recorded.
    await undoUnless(
      this.#o.logger,
      this.#audit({ type: 'bot.delete', success: true, user: actor.user, addr: actor.addr, name }),
      () => this.#o.services.users.undo({ previous: user }),
      'bot removal',
    );
    await this.deleteTokensOf(name);
  }

  /**
   * The first certificates of a bot, for its join token (spent here, once: of two racing
   * joins exactly one gets certificates). Locks on the bot refuse the join.
   */
  async join(req: z.infer<typeof rpc.BotJoinRequest>, addr: string): Promise<rpc.LoginResponse> {
    const key = clientKey(req);
    const stored = await this.#tokens.find(req.token);
    const failed = async (e: WardenError, bot?: string) => {
      await this.#audit({
        type: 'bot.join',
        success: false,
        ...(bot ? { user: bot, user_kind: 'bot' as const } : {}),
        addr,
        error: e.message,
      });
      return e;
    };
    if (!stored) throw await failed(new WardenError('WARDEN_ERR_INVALID_TOKEN', INVALID_BOT_TOKEN_MESSAGE));
    const bot = await this.#o.services.users.find(stored.value.bot);
    // Spend first; a bot removed since (or a user of the same name made later) gets nothing.
    const spent = await this.#tokens.spend(stored);
    if (!spent || !bot?.spec.bot)
      throw await failed(
        new WardenError('WARDEN_ERR_INVALID_TOKEN', INVALID_BOT_TOKEN_MESSAGE),
        stored.value.bot,
      );
    return this.#issue(bot, key, addr, 'bot.join');
  }

  /**
   * Renewal: a bot's next certificates for a new key, authenticated by its current (unexpired,
   * CA-verified) certificate. Only bots renew this way; a lock refuses it.
   */
  async renew(identity: Identity, req: z.infer<typeof rpc.BotRenewRequest>) {
    const addr = identity.clientAddr;
    const key = clientKey(req);
    const bot = identity.kind === 'bot' ? await this.#o.services.users.find(identity.user) : undefined;
    if (!bot?.spec.bot) {
      const e = new WardenError(
        'WARDEN_ERR_ACCESS_DENIED',
        identity.kind === 'bot'
          ? `bot "${identity.user}" no longer exists`
          : 'only bots renew certificates this way; people log in with `wsh login`',
      );
      await this.#audit({ type: 'bot.renew', success: false, user: identity.user, addr, error: e.message });
      throw e;
    }
    return this.#issue(bot, key, addr, 'bot.renew');
  }

  async #issue(
    bot: UserResource,
    key: ReturnType<typeof clientKey>,
    addr: string | undefined,
    type: 'bot.join' | 'bot.renew',
  ): Promise<rpc.LoginResponse> {
    const name = bot.metadata.name;
    const who = { user: name, user_kind: 'bot' as const, addr };
    let login: rpc.LoginResponse;
    try {
      const grant = await entitlements(this.#o, bot, parseDuration(bot.spec.bot!.ttl));
      login = await userCertificates(this.#o, bot, grant, key);
    } catch (e) {
      if (isWardenError(e)) await this.#audit({ type, success: false, ...who, error: e.message });
      throw e;
    }
    await this.#audit({ type, success: true, ...who, expires: login.expires });
    await this.#audit({
      type: 'cert.create',
      success: true,
      ...who,
      cert_type: 'user',
      roles: login.roles,
      logins: login.logins,
      expires: login.expires,
    });
    return login;
  }

  /** Removes every open join token of a bot (on `wctl bots rm`). */
  deleteTokensOf(bot: string): Promise<void> {
    return this.#tokens.deleteWhere((v) => v.bot === bot);
  }
}

function tokenTtl(text: string | undefined): number {
  if (text === undefined) return DEFAULT_BOT_TOKEN_TTL_MS;
  const ms = parseDuration(text, '--token-ttl');
  if (ms <= 0 || ms > MAX_BOT_TOKEN_TTL_MS)
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `--token-ttl must be between 1s and 7 days, got "${text}"`,
    );
  return ms;
}
