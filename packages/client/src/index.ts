/**
 * @warden/client: API client, profile store, keys and client ceremonies used by the CLIs.
 * May import @warden/api and @warden/tpm; never @warden/server.
 */
export * from './api';
export * from './app';
export * from './bot';
export * from './db';
export * from './devicetrust';
export * from './keys';
export * from './kube';
export * from './login';
export * from './profile';
export * from './ssh';
