/**
 * @warden/client: API client, profile store, keys and client ceremonies used by the CLIs.
 * May import @warden/api and @warden/tpm; never @warden/server.
 */
export * from './api';
export * from './app';
export * from './bot';
// Not through './bot': wsh and wctl read identity files at every start (-i) and need none of it.
export * from './bot/outputs';
export * from './db';
export * from './devicetrust';
export * from './keys';
export * from './kube';
export * from './login';
export * from './profile';
export * from './ssh';
