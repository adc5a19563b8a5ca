/** Where `wsh login` keeps keys and certificates (`~/.warden`, `WARDEN_HOME` overrides). */
export {
  type LoadedProfile,
  type Profile,
  type ProfileSecrets,
  ProfileStore,
  profileName,
  splitPems,
  wardenHome,
} from './store';
