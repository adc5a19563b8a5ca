/**
 * The TLS server options of the proxy port: its host certificate with the host CA chain, and
 * client certificates from the user CA asked for but not required by TLS — `identify` checks
 * them (and answers without one: sign-up, login), so TLS must not refuse the handshake.
 */
import type { TlsOptions } from 'node:tls';
import type { CertAuthorities, HostTlsCertificate } from './authorities';

export function proxyServerTls(cas: CertAuthorities, tls: HostTlsCertificate): TlsOptions {
  return {
    key: tls.privateKey!.toPkcs8Pem(),
    cert: [tls.certPem, ...cas.tlsCertPems('host')].join('\n'),
    ca: cas.tlsCertPems('user'),
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
  };
}
