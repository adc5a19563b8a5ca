/**
 * A throwaway self-signed certificate made with the `openssl` CLI (ECDSA P-256, one day): for a
 * TLS server a test or benchmark starts (nginx over TLS), or a stand-in CA (`ca: true`).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CertFiles } from './kube';

export interface SelfSignedOptions {
  /** Where `<name>.crt` and `<name>.key` are written. */
  dir: string;
  /** The subject's common name. */
  cn: string;
  /** subjectAltName DNS names. */
  dnsNames?: readonly string[];
  /** A CA certificate (basicConstraints CA:TRUE, keyUsage keyCertSign). */
  ca?: boolean;
  /** File name stem (default `self-signed`). */
  name?: string;
}

/**
 * @example
 *   const { certFile, keyFile, certPem } = selfSignedCert({ dir, cn: 'localhost', dnsNames: ['localhost'] });
 */
export function selfSignedCert(o: SelfSignedOptions): CertFiles {
  const stem = o.name ?? 'self-signed';
  const certFile = join(o.dir, `${stem}.crt`);
  const keyFile = join(o.dir, `${stem}.key`);
  const ext: string[] = [];
  if (o.dnsNames?.length)
    ext.push('-addext', `subjectAltName=${o.dnsNames.map((d) => `DNS:${d}`).join(',')}`);
  if (o.ca)
    ext.push('-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${o.cn.replace(/[/\\=+]/g, (c) => `\\${c}`)}`,
      ...ext,
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return {
    certFile,
    keyFile,
    certPem: readFileSync(certFile, 'utf8'),
    keyPem: readFileSync(keyFile, 'utf8'),
  };
}
