/** `wctl auth export`, `wctl auth sign` (OpenSSH hosts and databases) and `wctl status`. */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { formatAuthorizedKey, parseDuration, WardenError } from '@warden/api';
import { caPin } from '@warden/client';
import { type CommandContext, list, str } from '../command';
import { formatData, parseFormat } from '../format';
import { openSession } from './identity';

export async function runAuthExport(ctx: CommandContext): Promise<number> {
  const type = str(ctx.values, 'type');
  if (type !== 'openssh' && type !== 'user' && type !== 'host') {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      '--type must be "openssh" (TrustedUserCAKeys of agentless nodes), "user" or "host" (known_hosts)',
    );
  }
  const { api } = openSession(ctx);
  const res = await api.exportAuthority(type);
  ctx.stdout.write(`${res.line.trim()}\n`);
  return 0;
}

export async function runStatus(ctx: CommandContext): Promise<number> {
  const format = parseFormat(ctx.values.format);
  const session = openSession(ctx);
  const ping = await session.api.ping();
  if (format !== 'text') {
    const pins = ping.host_ca_pems.map(caPin);
    ctx.stdout.write(
      formatData(
        {
          cluster: ping.cluster_name,
          version: ping.server_version,
          proxy: ping.proxy_public_addr,
          second_factor: ping.auth.second_factor,
          device_trust: ping.auth.device_trust_mode,
          acting_as: session.who,
          ca_pin: pins[0],
          ca_pins: pins,
        },
        format,
      ),
    );
    return 0;
  }
  const rows: [string, string][] = [
    ['Cluster', ping.cluster_name],
    ['Version', ping.server_version],
    ['Proxy', ping.proxy_public_addr],
    ['Second factor', ping.auth.second_factor],
    ['Device trust', ping.auth.device_trust_mode],
    ['Acting as', session.who],
    ...ping.host_ca_pems.map((p): [string, string] => ['CA pin', caPin(p)]),
  ];
  ctx.stdout.write(`${rows.map(([k, v]) => `${`${k}:`.padEnd(15)}${v}`).join('\n')}\n`);
  return 0;
}

export async function runAuthSign(ctx: CommandContext): Promise<number> {
  const format = str(ctx.values, 'format') ?? 'openssh';
  if (format === 'db') return runAuthSignDb(ctx);
  if (format !== 'openssh')
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `--format must be "openssh" or "db", not "${format}"`);
  const hosts = list(ctx.values, 'host');
  const out = str(ctx.values, 'out');
  if (hosts.length === 0)
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', '--host is required, e.g. --host=db-1');
  if (!out)
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      '--out=PREFIX is required (where the key and certificate go)',
    );
  for (const f of [out, `${out}.pub`, `${out}-cert.pub`]) {
    if (existsSync(f))
      throw new WardenError(
        'WARDEN_ERR_ALREADY_EXISTS',
        `${f} already exists; remove it or pick another --out`,
      );
  }
  const ttl = str(ctx.values, 'ttl');
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const { api } = openSession(ctx);
  const res = await api.signHost({
    hostnames: hosts,
    public_key: formatAuthorizedKey(publicKey),
    ttl_ms: ttl ? parseDuration(ttl, '--ttl') : undefined,
  });
  writeFileSync(out, opensshPrivateKey(privateKey), { mode: 0o600 });
  writeFileSync(`${out}.pub`, `${formatAuthorizedKey(publicKey)}\n`);
  writeFileSync(`${out}-cert.pub`, `${res.ssh_cert.trim()}\n`);
  ctx.stdout.write(
    `Wrote ${out}, ${out}.pub and ${out}-cert.pub (host certificate for ${hosts.join(', ')}).\n`,
  );
  return 0;
}

/**
 * `wctl auth sign --format=db`: a key made here (it never leaves this machine), a server
 * certificate for it from the db CA, and the db CA for the database's `ssl_ca_file`; prints
 * the PostgreSQL and MariaDB/MySQL settings and the account form for Warden's certificates.
 */
async function runAuthSignDb(ctx: CommandContext): Promise<number> {
  const hosts = list(ctx.values, 'host');
  const out = str(ctx.values, 'out');
  if (hosts.length === 0)
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      '--host is required, e.g. --host=db-1.internal,10.0.0.5',
    );
  if (!out)
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      '--out=PREFIX is required (where the key and certificates go)',
    );
  const files = [`${out}.crt`, `${out}.key`, `${out}.cas`];
  for (const f of files) {
    if (existsSync(f))
      throw new WardenError(
        'WARDEN_ERR_ALREADY_EXISTS',
        `${f} already exists; remove it or pick another --out`,
      );
  }
  const ttl = str(ctx.values, 'ttl');
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const { api, cluster } = openSession(ctx);
  const res = await api.signDb({
    hostnames: hosts,
    public_key: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    ttl_ms: ttl ? parseDuration(ttl, '--ttl') : undefined,
  });
  writeFileSync(`${out}.key`, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), {
    mode: 0o600,
  });
  writeFileSync(`${out}.crt`, res.cert_pem);
  writeFileSync(`${out}.cas`, res.client_ca_pems.join(''));
  ctx.stdout.write(
    `Wrote ${files.join(', ')} (database certificate for ${hosts.join(', ')}, valid until ${res.expires}).\n\n` +
      'In postgresql.conf:\n' +
      `  ssl = on\n  ssl_cert_file = '${out}.crt'\n  ssl_key_file = '${out}.key'\n  ssl_ca_file = '${out}.cas'\n` +
      'In pg_hba.conf (only client certificates, whose CN is the database user):\n' +
      '  hostssl all all 0.0.0.0/0 cert\n\n' +
      'For MariaDB, in the [mariadbd] section (MySQL: [mysqld]):\n' +
      `  ssl_cert = ${out}.crt\n  ssl_key = ${out}.key\n  ssl_ca = ${out}.cas\n` +
      `Each database user logs in with Warden's certificate (subject /CN=<db user>/O=${cluster}), e.g.:\n` +
      `  CREATE USER 'alice'@'%' REQUIRE SUBJECT '/CN=alice/O=${cluster}';\n`,
  );
  return 0;
}

/** An Ed25519 private key in the openssh-key-v1 format sshd reads (unencrypted). */
function opensshPrivateKey(privateKey: import('node:crypto').KeyObject): string {
  const jwk = privateKey.export({ format: 'jwk' }) as { d: string; x: string };
  const seed = Buffer.from(jwk.d, 'base64url');
  const pub = Buffer.from(jwk.x, 'base64url');
  const str = (b: Buffer | string) => {
    const buf = typeof b === 'string' ? Buffer.from(b) : b;
    const len = Buffer.alloc(4);
    len.writeUInt32BE(buf.length);
    return Buffer.concat([len, buf]);
  };
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const pubBlob = Buffer.concat([str('ssh-ed25519'), str(pub)]);
  const check = u32(Math.floor(Math.random() * 0xffffffff));
  let priv = Buffer.concat([
    check,
    check,
    str('ssh-ed25519'),
    str(pub),
    str(Buffer.concat([seed, pub])),
    str('warden host key'),
  ]);
  const pad = (8 - (priv.length % 8)) % 8;
  priv = Buffer.concat([priv, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    str('none'),
    str('none'),
    str(Buffer.alloc(0)),
    u32(1),
    str(pubBlob),
    str(priv),
  ]);
  const b64 = body
    .toString('base64')
    .match(/.{1,70}/g)!
    .join('\n');
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}\n-----END OPENSSH PRIVATE KEY-----\n`;
}
