import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError, WardenError } from '@warden/api';
import { channelError, proxyError, sshRejected } from './errors';

function openFailure(reason: number, description: string): Error {
  // The shape ssh2 gives channel open failures (lib/utils.js onChannelOpenFailure).
  return Object.assign(new Error(`(SSH) Channel open failure: ${description}`), { reason });
}

test('a channel refused by policy reads as ssh: rejected: administratively prohibited', () => {
  const e = channelError(openFailure(1, 'access to node denied: login root is not allowed'));
  assert.ok(isWardenError(e, 'WARDEN_ERR_ACCESS_DENIED'));
  assert.equal(
    e.message,
    'ssh: rejected: administratively prohibited (access to node denied: login root is not allowed)',
  );
});

test('other open failures keep their RFC 4254 name', () => {
  const e = channelError(openFailure(2, 'Connection refused'));
  assert.ok(isWardenError(e, 'WARDEN_ERR_CONNECTION'));
  assert.equal(e.message, 'ssh: rejected: connect failed (Connection refused)');
  assert.equal(
    (channelError(openFailure(9, '')) as Error).message,
    'ssh: rejected: reason 9 (no reason given)',
  );
});

test('errors that are not channel open failures pass through', () => {
  const plain = new Error('Unable to exec');
  assert.equal(channelError(plain), plain);
  assert.equal(channelError(undefined), undefined);
});

test('proxy denials and locks become rejections; other proxy errors pass through', () => {
  const denied = proxyError(new WardenError('WARDEN_ERR_ACCESS_DENIED', 'unauthorized device'));
  assert.ok(isWardenError(denied, 'WARDEN_ERR_ACCESS_DENIED'));
  assert.equal(denied.message, 'ssh: rejected: administratively prohibited (unauthorized device)');
  const locked = proxyError(new WardenError('WARDEN_ERR_LOCKED', 'lock targeting User:"alice" is in force'));
  assert.ok(isWardenError(locked, 'WARDEN_ERR_LOCKED'));
  assert.equal(
    locked.message,
    'ssh: rejected: administratively prohibited (lock targeting User:"alice" is in force)',
  );
  const notFound = new WardenError('WARDEN_ERR_NOT_FOUND', 'node "x" not found');
  assert.equal(proxyError(notFound), notFound);
  const already = sshRejected('x');
  assert.equal(proxyError(already), already);
});
