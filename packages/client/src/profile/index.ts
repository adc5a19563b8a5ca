/** Where `wsh login` keeps keys and certificates (`~/.warden`, `WARDEN_HOME` overrides). */
export {
  type LastOtp,
  type LastUsed,
  type LoadedProfile,
  loginProfile,
  normalizeProxy,
  type Profile,
  type ProfileSecrets,
  ProfileStore,
  profileName,
  readProfileDir,
  requireUnexpired,
  splitPems,
  wardenHome,
  writeAtomic,
  writeProfileDir,
} from './store';
