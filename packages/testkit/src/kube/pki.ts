/**
 * Throwaway certificates for the fake Kubernetes API server, made with the `openssl` CLI
 * (ECDSA P-256): one CA that signs the server certificate (SANs 127.0.0.1, ::1, localhost) and
 * client certificates in Kubernetes' convention (CN = user, O = groups).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertFiles {
  certFile: string;
  keyFile: string;
  certPem: string;
  keyPem: string;
}

/** `openssl req` arguments for a new unencrypted P-256 key, written to the file that follows. */
const NEW_P256_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout'];

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function subject(cn: string, orgs: string[] = []): string {
  const esc = (s: string) => s.replace(/[/\\=+]/g, (c) => `\\${c}`);
  return `${orgs.map((o) => `/O=${esc(o)}`).join('')}/CN=${esc(cn)}`;
}

export class TestPki {
  readonly ca: CertFiles;
  private n = 0;
  constructor(readonly dir: string) {
    const certFile = join(dir, 'ca.crt');
    const keyFile = join(dir, 'ca.key');
    openssl([
      'req',
      '-x509',
      ...NEW_P256_KEY,
      keyFile,
      '-out',
      certFile,
      '-subj',
      '/CN=fake-kubernetes-ca',
      '-days',
      '2',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    this.ca = {
      certFile,
      keyFile,
      certPem: readFileSync(certFile, 'utf8'),
      keyPem: readFileSync(keyFile, 'utf8'),
    };
  }

  /** A leaf signed by the CA; `server` adds the loopback SANs and serverAuth. */
  issue(name: string, cn: string, orgs: string[], usage: 'server' | 'client'): CertFiles {
    const base = join(this.dir, `${name}-${++this.n}`);
    const keyFile = `${base}.key`;
    const certFile = `${base}.crt`;
    const csr = `${base}.csr`;
    const ext = `${base}.ext`;
    writeFileSync(
      ext,
      usage === 'server'
        ? 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n'
        : 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n',
    );
    openssl(['req', '-new', ...NEW_P256_KEY, keyFile, '-out', csr, '-subj', subject(cn, orgs)]);
    openssl([
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      this.ca.certFile,
      '-CAkey',
      this.ca.keyFile,
      '-set_serial',
      `0x${randomBytes(12).toString('hex')}`,
      '-days',
      '2',
      '-extfile',
      ext,
      '-out',
      certFile,
    ]);
    return {
      certFile,
      keyFile,
      certPem: readFileSync(certFile, 'utf8'),
      keyPem: readFileSync(keyFile, 'utf8'),
    };
  }
}
