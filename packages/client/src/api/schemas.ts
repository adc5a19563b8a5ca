/**
 * The schemas ApiClient validates answers with. client.ts loads this module on its first
 * call (while the request is on its way), so commands that validate nothing with zod start
 * without loading it. Internal to api/.
 */
import { rpc } from '@warden/api';
import { z } from 'zod';

export { rpc };
export const empty = z.object({});
export const deleted = rpc.ListResourcesResponse.partial();
export const tokenList = z.object({ items: z.array(rpc.TokenInfo) });
export const tokenRemoved = z.object({ removed: rpc.TokenInfo });
