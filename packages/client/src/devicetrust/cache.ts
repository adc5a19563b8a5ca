/**
 * The device credential on disk: the AK's TPM-wrapped blobs and what the ceremonies need to
 * use it again, in `~/.cache/warden-device/` (`WARDEN_DEVICE_CACHE` overrides; tests give
 * each simulated machine its own).
 *
 *   ~/.cache/warden-device/            mode 0700
 *   ├── ak.pub          (0600)         the AK's TPMT_PUBLIC
 *   ├── ak.priv         (0600)         the AK's private part, sealed by the TPM to its SRK:
 *   │                                  useless without this TPM
 *   └── credential.json (0600)         credential ID, the AK's creation data and ticket (for
 *                                      TPM2_CertifyCreation at enrollment), and the clusters
 *                                      that enrolled it
 *
 * Files are written to a temporary name and renamed. Internal to `devicetrust/`.
 * Tested by `cache.test.ts`.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { WardenError } from '@warden/api';
import { decodePublic, publicKeyFromTpmt, type Ticket } from '@warden/tpm';

/** Where a cluster enrolled this credential (a machine may be enrolled in several clusters). */
export interface Enrollment {
  cluster: string;
  proxy: string;
  deviceId: string;
  assetTag: string;
  time: string;
}

export interface StoredCredential {
  /** The credential ID (a UUID chosen at creation). */
  id: string;
  /** TPMT_PUBLIC of the AK. */
  akPublic: Uint8Array;
  /** TPM2B_PRIVATE contents of the AK (sealed to the SRK of this TPM). */
  akPrivate: Uint8Array;
  /** TPMS_CREATION_DATA bytes, creation hash and ticket from TPM2_Create. */
  creationData: Uint8Array;
  creationHash: Uint8Array;
  creationTicket: Ticket;
  createTime: string;
  /** `ek:…` asset tag of this TPM, remembered so authentication needs no EK. */
  ekAssetTag?: string;
  enrollments: Enrollment[];
}

interface CredentialJson {
  id: string;
  create_time: string;
  creation_data: string;
  creation_hash: string;
  creation_ticket: { tag: number; hierarchy: number; digest: string };
  ek_asset_tag?: string;
  enrollments?: EnrollmentJson[];
}

/** An enrollment as credential.json stores it and `wsh device keyget` prints it. */
interface EnrollmentJson {
  cluster: string;
  proxy: string;
  device_id: string;
  asset_tag: string;
  time: string;
}

function enrollmentJson(e: Enrollment): EnrollmentJson {
  return { cluster: e.cluster, proxy: e.proxy, device_id: e.deviceId, asset_tag: e.assetTag, time: e.time };
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const unb64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));

/** The cache directory: `WARDEN_DEVICE_CACHE`, else `~/.cache/warden-device`. */
export function deviceCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.WARDEN_DEVICE_CACHE || join(homedir(), '.cache', 'warden-device');
}

function writeAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

function readOptional(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export class DeviceCache {
  readonly dir: string;

  constructor(dir: string = deviceCacheDir()) {
    this.dir = dir;
  }

  /** The stored credential, or undefined when this machine has none yet. */
  load(): StoredCredential | undefined {
    const json = readOptional(join(this.dir, 'credential.json'));
    const pub = readOptional(join(this.dir, 'ak.pub'));
    const priv = readOptional(join(this.dir, 'ak.priv'));
    if (!json || !pub || !priv) return undefined;
    let c: CredentialJson;
    try {
      c = JSON.parse(json.toString('utf8')) as CredentialJson;
      if (typeof c.id !== 'string' || !c.creation_ticket) throw new Error('shape');
    } catch {
      throw new WardenError(
        'WARDEN_ERR_BAD_PARAMETER',
        `the device credential in ${this.dir} is damaged; remove the directory and enroll the device again`,
      );
    }
    return {
      id: c.id,
      akPublic: new Uint8Array(pub),
      akPrivate: new Uint8Array(priv),
      creationData: unb64(c.creation_data),
      creationHash: unb64(c.creation_hash),
      creationTicket: {
        tag: c.creation_ticket.tag,
        hierarchy: c.creation_ticket.hierarchy,
        digest: unb64(c.creation_ticket.digest),
      },
      createTime: c.create_time,
      ...(typeof c.ek_asset_tag === 'string' ? { ekAssetTag: c.ek_asset_tag } : {}),
      enrollments: (c.enrollments ?? []).map((e) => ({
        cluster: e.cluster,
        proxy: e.proxy,
        deviceId: e.device_id,
        assetTag: e.asset_tag,
        time: e.time,
      })),
    };
  }

  /** Stores the credential (blobs first, credential.json last: it marks the set complete). */
  save(cred: StoredCredential): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    if ((statSync(this.dir).mode & 0o777) !== 0o700) chmodSync(this.dir, 0o700);
    writeAtomic(join(this.dir, 'ak.pub'), cred.akPublic);
    writeAtomic(join(this.dir, 'ak.priv'), cred.akPrivate);
    const json: CredentialJson = {
      id: cred.id,
      create_time: cred.createTime,
      creation_data: b64(cred.creationData),
      creation_hash: b64(cred.creationHash),
      creation_ticket: {
        tag: cred.creationTicket.tag,
        hierarchy: cred.creationTicket.hierarchy,
        digest: b64(cred.creationTicket.digest),
      },
      ...(cred.ekAssetTag ? { ek_asset_tag: cred.ekAssetTag } : {}),
      enrollments: cred.enrollments.map(enrollmentJson),
    };
    writeAtomic(join(this.dir, 'credential.json'), `${JSON.stringify(json, null, 2)}\n`);
  }

  /** Records (or replaces) the enrollment of this credential in `e.cluster`. */
  recordEnrollment(e: Enrollment): void {
    const cred = this.load();
    if (!cred) throw new WardenError('WARDEN_ERR_NOT_FOUND', `no device credential in ${this.dir}`);
    cred.enrollments = [...cred.enrollments.filter((x) => x.cluster !== e.cluster), e];
    this.save(cred);
  }

  /** The enrollment of this machine's credential in a cluster, if any. */
  enrollmentIn(cluster: string): Enrollment | undefined {
    return this.load()?.enrollments.find((e) => e.cluster === cluster);
  }

  /** Removes the credential (a new one is created at the next enrollment). */
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** What `wsh device keyget` prints: the credential's public parts (nothing secret). */
export function credentialView(cred: StoredCredential): {
  credential_id: string;
  public_key_der: string;
  ak_public: string;
  create_time: string;
  enrollments: EnrollmentJson[];
} {
  const spki = publicKeyFromTpmt(decodePublic(cred.akPublic)).export({ type: 'spki', format: 'der' });
  return {
    credential_id: cred.id,
    public_key_der: b64(spki),
    ak_public: b64(cred.akPublic),
    create_time: cred.createTime,
    enrollments: cred.enrollments.map(enrollmentJson),
  };
}
