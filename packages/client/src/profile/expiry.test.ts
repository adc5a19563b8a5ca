/**
 * requireUnexpired: what `wsh proxy ssh` (and clientForProfile) check before dialing — a
 * profile whose certificates ended is NOT_LOGGED_IN with the `wsh login` command to run.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError } from '@warden/api';
import { clientForProfile } from '../login';
import { type LoadedProfile, requireUnexpired } from './index';

const profile = (expires: string): LoadedProfile => ({
  proxy: 'proxy.example.com:3080',
  cluster: 'example',
  user: 'alice',
  roles: ['access'],
  logins: ['root'],
  expires,
  insecure: false,
  dir: '/nonexistent',
  keyPem: '',
  sshPublicKey: '',
  sshCert: '',
  tlsCert: '',
  userCaPems: [],
  hostCaPems: [],
  knownHosts: '',
});

test('a profile whose certificates have not ended is returned as it is', () => {
  const p = profile(new Date(Date.now() + 60_000).toISOString());
  assert.equal(requireUnexpired(p), p);
});

test('an expired profile is NOT_LOGGED_IN with the login command, here and in clientForProfile', () => {
  const p = profile(new Date(Date.now() - 1000).toISOString());
  for (const check of [() => requireUnexpired(p), () => clientForProfile(p)]) {
    assert.throws(
      check,
      (e) =>
        isWardenError(e) &&
        e.code === 'WARDEN_ERR_NOT_LOGGED_IN' &&
        e.message.includes('wsh login --proxy=proxy.example.com:3080 --user=alice'),
    );
  }
});
