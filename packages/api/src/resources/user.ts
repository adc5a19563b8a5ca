/**
 * `kind: user`, version v2: the user's roles and traits. Never holds secrets (password
 * hashes and second factors live apart, in the auth service's own keys).
 * Internal to `resources/`; the public surface is `resources/index.ts`.
 */
import { z } from 'zod';
import {
  durationSchema,
  metadataSchema,
  nameSchema,
  resourceSchema,
  stringListSchema,
  timestampSchema,
} from './common';

export const userSpecSchema = z.strictObject({
  roles: stringListSchema.default([]),
  /** Trait name → values, used by role templates (`{{internal.logins}}`). */
  traits: z.record(z.string().min(1, { error: 'must not be empty' }), z.array(z.string())).default({}),
  /**
   * Present on machine identities (`wctl bots add`): no password, no second factor, no Web UI;
   * certificates come from a join token once, then from renewing the current ones. `ttl` is
   * each certificate's lifetime (renewed before it ends).
   */
  bot: z.strictObject({ ttl: durationSchema }).optional(),
  /** Set by the server when it creates the user. */
  created_by: z
    .strictObject({
      user: z.string(),
      time: timestampSchema,
    })
    .optional(),
});

export const userV2Schema = resourceSchema('user', 'v2', metadataSchema(nameSchema), userSpecSchema);
export type UserResource = z.output<typeof userV2Schema>;
