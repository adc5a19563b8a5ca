/**
 * `wctl tokens ls|rm`: every open one-time token — bot join tokens, user invites and device
 * enrollment tokens — by an ID that is a prefix of the token's stored SHA-256 (the backend
 * never holds a usable token, so neither does this listing).
 * Permissions are checked by the caller (`AuthServer`). Internal to `auth/`.
 */
import { type rpc, WardenError } from '@warden/api';
import type { Actor } from '../access';
import type { Backend } from '../backend';
import { ENROLL_TOKEN_PREFIX } from '../devicetrust';
import { BOT_TOKEN_PREFIX } from './bots';
import { type AuthDeps, auditWith } from './deps';
import { INVITES } from './local-auth';

/** Characters of the hash shown as a token's ID. */
const ID_CHARS = 12;

const SOURCES: readonly {
  type: rpc.TokenInfo['type'];
  prefix: string;
  forOf(v: Record<string, unknown>): unknown;
}[] = [
  { type: 'bot', prefix: BOT_TOKEN_PREFIX, forOf: (v) => v.bot },
  { type: 'invite', prefix: INVITES, forOf: (v) => v.user },
  { type: 'enroll', prefix: ENROLL_TOKEN_PREFIX, forOf: (v) => v.device_id },
];

export class TokenAdmin {
  readonly #backend: Backend;
  readonly #audit: ReturnType<typeof auditWith>;

  constructor(deps: Pick<AuthDeps, 'backend' | 'audit' | 'logger'>) {
    this.#backend = deps.backend;
    this.#audit = auditWith(deps);
  }

  /** Open tokens whose stored hash starts with `hashPrefix` (all of them for ''). */
  async #find(hashPrefix: string): Promise<{ key: string; info: rpc.TokenInfo }[]> {
    const found: { key: string; info: rpc.TokenInfo }[] = [];
    for (const s of SOURCES) {
      const { items } = await this.#backend.range(s.prefix + hashPrefix);
      for (const item of items) {
        const v = JSON.parse(item.value) as Record<string, unknown>;
        found.push({
          key: item.key,
          info: {
            id: item.key.slice(s.prefix.length, s.prefix.length + ID_CHARS),
            type: s.type,
            for: String(s.forOf(v) ?? ''),
            expires: String(v.expires ?? ''),
          },
        });
      }
    }
    return found;
  }

  async list(): Promise<rpc.TokenInfo[]> {
    return (await this.#find('')).map((f) => f.info).sort((a, b) => a.expires.localeCompare(b.expires));
  }

  /**
   * Removes the one open token whose ID (hash prefix, at least 8 characters) is `id`. The
   * removal is recorded first: a token removed can't be put back, so an audit log that
   * refuses the event leaves the token in place (issue 15 item 5).
   */
  async remove(actor: Actor, id: string): Promise<rpc.TokenInfo> {
    if (!/^[0-9a-f]{8,64}$/.test(id))
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        `"${id}" is not a token ID; \`wctl tokens ls\` lists them`,
      );
    const found = await this.#find(id);
    if (found.length === 0) throw new WardenError('WARDEN_ERR_NOT_FOUND', `no open token with ID "${id}"`);
    if (found.length > 1)
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        `token ID "${id}" is ambiguous; give more characters`,
      );
    const { key, info } = found[0]!;
    await this.#audit({
      type: 'token.removed',
      success: true,
      ...actor,
      handle: info.id,
      purpose: info.type,
      ...(info.for ? { subject: info.for } : {}),
    });
    await this.#backend.delete(key);
    return info;
  }
}
