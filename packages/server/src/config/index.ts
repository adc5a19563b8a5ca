/**
 * `warden.yaml`: `loadConfig` / `parseConfig` produce the frozen, fully-defaulted
 * `WardenConfig`; errors are one WARDEN_ERR_BAD_CONFIG naming file, field and line.
 * Who may import: `bin/` (composition) and tests; services receive the parts they need.
 * Tested by `config.test.ts` and `address.test.ts`.
 */
export { formatHostPort, type HostPort, parseHostPort } from './address';
export type { TrustedCaFile } from './ca-files';
export {
  type AppConfig,
  type AppServiceConfig,
  type AuditConfig,
  type AuthenticationConfig,
  type AuthServiceConfig,
  type DbConfig,
  type DbServiceConfig,
  DEFAULT_PROXY_LIMITS,
  DEFAULT_PROXY_RATE_LIMITS,
  DEFAULT_SSH_LIMITS,
  DEFAULT_SSH_LISTEN_ADDR,
  type DeviceTrustConfig,
  defaultConfig,
  type KubeClusterConfig,
  type KubeServiceConfig,
  type LoadConfigOptions,
  type LogConfig,
  loadConfig,
  type ParseConfigOptions,
  type PostgresStorageConfig,
  type ProxyLimits,
  type ProxyRateLimits,
  type ProxyServiceConfig,
  parseConfig,
  type SshLimits,
  type SshServiceConfig,
  type StorageConfig,
  type WardenConfig,
} from './config';
export { problemLines } from './problems';
