/**
 * @warden/api: resource types and schemas, the YAML codec, the RPC contract, the error
 * catalogue and certificate-extension constants. Imports nothing internal; everyone may
 * import it.
 */

export * from './certs';
export * from './constants';
export * from './duration';
export * from './errors';
export * from './events';
export * from './input-limits';
export { pooledRandomBytes } from './random';
export * from './resources';
export { Routes as rpcRoutes } from './routes';
export * as rpc from './rpc';
export * as web from './web';
