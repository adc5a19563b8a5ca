/**
 * Reads the CA files named by `device_trust.ekcert_allowed_cas`: PEM files holding one or
 * more `CERTIFICATE` blocks, each a parseable X.509 CA certificate (basicConstraints CA).
 * Anything else in the file (a private key, a CSR, no certificate at all) is refused, so a
 * wrong path fails at start-up rather than at the first enrollment. Only reads, never writes.
 * Internal to `config/`; tested through `config.test.ts`.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** A CA file from the config: its path and each certificate in it, as PEM. */
export interface TrustedCaFile {
  readonly path: string;
  readonly certificates: readonly string[];
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;
const READ_ERRORS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'is a directory, not a file',
};

/** Reads and checks one CA file; returns the problem as a string when it is unusable. */
export function readTrustedCaFile(path: string): TrustedCaFile | string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    return `cannot read CA file ${JSON.stringify(path)}: ${READ_ERRORS[code] ?? (e as Error).message}`;
  }
  const certificates: string[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    const [block, type] = m;
    if (type !== 'CERTIFICATE') {
      return `CA file ${JSON.stringify(path)} contains a "${type}" PEM block; expected only CERTIFICATE blocks`;
    }
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch {
      return `CA file ${JSON.stringify(path)}: certificate ${certificates.length + 1} is not a valid X.509 certificate`;
    }
    if (!cert.ca) {
      return `CA file ${JSON.stringify(path)}: certificate ${certificates.length + 1} (${cert.subject.replaceAll('\n', ', ')}) is not a CA certificate`;
    }
    certificates.push(`${cert.toString().trim()}\n`);
  }
  if (certificates.length === 0) {
    return `CA file ${JSON.stringify(path)} holds no PEM "CERTIFICATE" block`;
  }
  return Object.freeze({ path, certificates: Object.freeze(certificates) });
}
