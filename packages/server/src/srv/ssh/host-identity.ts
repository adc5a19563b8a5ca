/**
 * The node's stable identity in its data directory, created at first start:
 *
 *   <data_dir>/host_uuid      the node's ID (UUID v4, the `node` resource's name)
 *   <data_dir>/ssh_host_key   its SSH host key: ECDSA P-256, SEC1 PEM, mode 0600
 *
 * A host key readable by group or others is refused (as sshd refuses one), and so is a
 * file that does not hold what it should: fix or delete it, never guess.
 * Who may import: this folder. Tested by `host-identity.test.ts`.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WardenError } from '@warden/api';

export const HOST_UUID_FILE = 'host_uuid';
export const HOST_KEY_FILE = 'ssh_host_key';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface HostIdentity {
  hostId: string;
  /** The private key (SEC1 PEM, the form ssh2 reads). */
  keyPem: string;
  privateKey: KeyObject;
}

function badFile(path: string, why: string): WardenError {
  return new WardenError(
    'WARDEN_ERR_BAD_CONFIG',
    `${path}: ${why}; fix or delete it (a new one is made at start)`,
  );
}

/** Writes atomically with mode 0600. */
function writePrivate(path: string, text: string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

function loadOrCreateHostId(dataDir: string): string {
  const path = join(dataDir, HOST_UUID_FILE);
  if (!existsSync(path)) {
    const id = randomUUID();
    writePrivate(path, `${id}\n`);
    return id;
  }
  const id = readFileSync(path, 'utf8').trim();
  if (!UUID.test(id)) throw badFile(path, 'does not hold a UUID');
  return id;
}

function loadOrCreateHostKey(dataDir: string): { keyPem: string; privateKey: KeyObject } {
  const path = join(dataDir, HOST_KEY_FILE);
  if (!existsSync(path)) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const keyPem = privateKey.export({ type: 'sec1', format: 'pem' }) as string;
    writePrivate(path, keyPem);
    return { keyPem, privateKey };
  }
  if ((statSync(path).mode & 0o077) !== 0)
    throw badFile(path, 'is readable by others than its owner (chmod 600)');
  const keyPem = readFileSync(path, 'utf8');
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(keyPem);
  } catch {
    throw badFile(path, 'is not a PEM private key');
  }
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    throw badFile(path, 'is not an ECDSA P-256 key');
  if (!keyPem.includes('-----BEGIN EC PRIVATE KEY-----')) throw badFile(path, 'is not in SEC1 PEM form');
  return { keyPem, privateKey };
}

/**
 * Loads the node's ID and host key from `dataDir`, creating them (and the directory, 0700)
 * at first start.
 *
 * @example
 *   const { hostId, keyPem } = loadHostIdentity('/var/lib/warden');
 */
export function loadHostIdentity(dataDir: string): HostIdentity {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const hostId = loadOrCreateHostId(dataDir);
  return { hostId, ...loadOrCreateHostKey(dataDir) };
}
