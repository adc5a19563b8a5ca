/**
 * App traffic on the proxy port, told apart from everything else during the TLS handshake:
 *
 *   - by server name (SNI): `<app>.<proxy public host>` (or an app's own `public_addr`) is
 *     app traffic — SNI picks a certificate for that name from the host CA (the wildcard
 *     `*.<proxy public host>` plus the exact name, cached), ALPN picks HTTP/2 or HTTP/1.1,
 *     and the connection goes to app_service as is;
 *   - by ALPN `warden-app/1` (`wsh proxy app`): one request line `{"app":"NAME"}`, one answer
 *     line `{"ok":true,"app":{…}}` (or `{"ok":false,code,message}`), then HTTP/1.1 inside the
 *     tunnel (the local browser's requests, relayed byte for byte by wsh).
 *
 *   client ── TLS (SNI grafana.proxy.example.com, ALPN h2, app certificate) ──▶ proxy ──▶ app_service
 *   wsh    ── TLS (ALPN warden-app/1, app certificate) ── {"app":"grafana"}\n ──▶ proxy
 *          ◀── {"ok":true,"app":{…}}\n ── then HTTP/1.1 ──▶ app_service
 *
 * Everything else (the API on the proxy's own name, SSH and database tunnels) is routed as
 * before; `alpnCallback` chooses the protocol for all of them. Who may import: `bin/`.
 * Tested end to end in `test/app/`.
 */
import { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { APP_ALPN, WardenError } from '@warden/api';
import type { Logger } from '../log';
import type { AppService } from '../srv/app';
import { readRequestLine, refuseTunnel } from './tunnel-line';

export { APP_ALPN };

/** Issues a TLS server certificate from the host CA for these DNS names (the proxy's key). */
export type HostCertIssuer = (dnsNames: string[]) => Promise<{ certPem: string; keyPem: string }>;

export interface AppRoutingOptions {
  /** undefined when no app_service runs behind this proxy. */
  apps: AppService | undefined;
  issueCert: HostCertIssuer;
  /** The CA certificates clients' app certificates chain to (the user CA). */
  clientCaPems: string[];
  /** The host CA chain to send after the leaf. */
  hostCaPems: string[];
  logger: Logger;
  /** Distinct app host names with a cached certificate (default 1024; oldest dropped). */
  maxCertificates?: number;
}

const NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export class AppRouting {
  readonly #o: AppRoutingOptions;
  readonly #contexts = new Map<string, Promise<SecureContext>>();

  constructor(o: AppRoutingOptions) {
    this.#o = o;
  }

  /** True when a TLS connection for `servername` is app traffic. */
  isAppHost(servername: string | false | null | undefined): boolean {
    return this.#o.apps?.isAppHost(servername) ?? false;
  }

  /**
   * `tls.createServer({ ALPNCallback })`: a tunnel protocol when the client asks for one
   * (`tunnels`: SSH, databases, apps); on app host names HTTP/2 before HTTP/1.1; elsewhere
   * (the API) HTTP/1.1. Anything else is refused during the handshake.
   */
  alpnCallback(
    tunnels: readonly string[],
  ): (arg: { servername: string; protocols: string[] }) => string | undefined {
    return ({ servername, protocols }) => {
      for (const p of protocols) if (tunnels.includes(p)) return p;
      if (this.isAppHost(servername) && protocols.includes('h2')) return 'h2';
      return protocols.includes('http/1.1') ? 'http/1.1' : undefined;
    };
  }

  /**
   * `tls.createServer({ SNICallback })`: app host names get a certificate for their own name
   * and the wildcard; other names the default context (the proxy's certificate).
   */
  sniCallback(): (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void {
    return (servername, cb) => {
      const name = servername.toLowerCase();
      if (!this.isAppHost(name)) {
        cb(null, undefined);
        return;
      }
      this.#context(name).then(
        (ctx) => cb(null, ctx),
        (e) => {
          this.#o.logger.warn({ err: e, servername: name }, 'no certificate for an app host name');
          cb(null, undefined);
        },
      );
    };
  }

  #context(name: string): Promise<SecureContext> {
    const cached = this.#contexts.get(name);
    if (cached) return cached;
    const domain = this.#o.apps?.appDomain ?? '';
    // A wildcard needs two labels under it to be honoured by TLS clients (`*.localhost` is not).
    const names = [name, ...(domain.includes('.') ? [`*.${domain}`] : [])];
    const made = this.#o.issueCert([...new Set(names)]).then(({ certPem, keyPem }) =>
      createSecureContext({
        key: keyPem,
        cert: [certPem, ...this.#o.hostCaPems].join('\n'),
        ca: this.#o.clientCaPems,
        minVersion: 'TLSv1.2',
      }),
    );
    made.catch(() => this.#contexts.delete(name));
    this.#contexts.set(name, made);
    const max = this.#o.maxCertificates ?? 1024;
    while (this.#contexts.size > max) this.#contexts.delete(this.#contexts.keys().next().value as string);
    return made;
  }

  /** A TLS connection on an app host name: straight to app_service. */
  handleHost(socket: TLSSocket): void {
    if (!this.#o.apps) {
      socket.destroy();
      return;
    }
    this.#o.apps.acceptHost(socket);
  }

  /** A TLS connection that negotiated `warden-app/1`. */
  handleTunnel(socket: TLSSocket): void {
    readRequestLine(
      socket,
      async (line, rest) => {
        const apps = this.#o.apps;
        if (!apps)
          throw new WardenError('WARDEN_ERR_NOT_IMPLEMENTED', 'no app_service runs behind this proxy');
        let req: { app?: unknown };
        try {
          req = JSON.parse(line) as typeof req;
        } catch {
          throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'malformed app request line');
        }
        if (req === null || typeof req !== 'object' || typeof req.app !== 'string' || !NAME.test(req.app))
          throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'the app request needs "app"');
        const app = apps.checkTunnel(socket, req.app);
        socket.write(
          `${JSON.stringify({
            ok: true,
            app: {
              name: app.metadata.name,
              public_addr: apps.publicAddrOf(app),
              labels: { ...(app.metadata.labels ?? {}) },
            },
          })}\n`,
        );
        if (rest.length) socket.unshift(rest);
        apps.acceptTunnel(socket, req.app);
        socket.resume();
      },
      (e) => refuseTunnel(socket, e, this.#o.logger, 'app tunnel'),
    );
  }
}
