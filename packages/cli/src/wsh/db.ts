/**
 * `wsh db ls|login|logout|connect|config` and `wsh proxy db --tunnel`: thin commands over the
 * database client in `@warden/client` (dial through the proxy, local tunnel, remembered
 * choices, the database's own client).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { isWardenError, WardenError } from '@warden/api';
import {
  clientCommand,
  clientForProfile,
  type DbLogin,
  dbCertPath,
  type LoadedProfile,
  loadDbLogins,
  mysqlArgs,
  mysqlDirectArgs,
  POSTGRES_DEFAULT_PORT,
  postgresConnString,
  postgresDirectConnString,
  removeDbLogins,
  saveDbCert,
  saveDbLogin,
  startDbTunnel,
  tunnelSocketPath,
} from '@warden/client';
import { z } from 'zod';
import { type CommandContext, formatError, parseListing, str, untilInterrupted } from '../command';
import { formatData, formatLabels, parseFormat, table } from '../format';
import { profileSource, requireLiveProfile } from '../profile';

/** A database as `GET /v1/dbs` lists it. */
const DbView = z.object({
  name: z.string(),
  protocol: z.string(),
  labels: z.record(z.string(), z.string()).default({}),
  db_users: z.array(z.string()).default([]),
  db_names: z.array(z.string()).default([]),
});
type DbView = z.infer<typeof DbView>;

async function listDbs(profile: LoadedProfile): Promise<{ raw: unknown[]; dbs: DbView[] }> {
  const { items } = await clientForProfile(profile).listDbs();
  return { raw: items, dbs: parseListing(items, DbView, profile.proxy, 'database list') };
}

async function findDb(profile: LoadedProfile, name: string): Promise<DbView> {
  const { dbs } = await listDbs(profile);
  const db = dbs.find((d) => d.name === name);
  if (!db) {
    throw new WardenError(
      'WARDEN_ERR_NOT_FOUND',
      `database "${name}" not found among the databases you can reach; \`wsh db ls\` lists them`,
    );
  }
  return db;
}

export async function runDbLs(ctx: CommandContext): Promise<number> {
  const format = parseFormat(ctx.values.format);
  const profile = requireLiveProfile(ctx);
  const { raw, dbs } = await listDbs(profile);
  if (format !== 'text') {
    ctx.stdout.write(formatData(raw, format));
    return 0;
  }
  if (dbs.length === 0) {
    ctx.stdout.write('No databases found\n');
    return 0;
  }
  const logins = loadDbLogins(profile);
  const rows = dbs.map((d) => {
    const l = logins[d.name];
    return [
      `${l ? '> ' : '  '}${d.name}`,
      d.protocol,
      d.db_users.join(', '),
      formatLabels(d.labels),
      l ? [l.db_user ?? '', l.db_name ?? ''].filter(Boolean).join('@') || '(client decides)' : '',
    ];
  });
  ctx.stdout.write(table(['  Name', 'Protocol', 'Allowed Users', 'Labels', 'Logged in as'], rows));
  return 0;
}

/** A single allowed value when there is exactly one concrete choice. */
function onlyChoice(values: readonly string[]): string | undefined {
  const concrete = values.filter((v) => !v.includes('*'));
  return concrete.length === 1 && values.length === 1 ? concrete[0] : undefined;
}

export async function runDbLogin(ctx: CommandContext): Promise<number> {
  const name = ctx.positionals[0]!;
  const profile = requireLiveProfile(ctx);
  const db = await findDb(profile, name);
  const dbUser = str(ctx.values, 'db-user') ?? onlyChoice(db.db_users);
  if (!dbUser) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `pick a database user with --db-user (your roles allow: ${db.db_users.join(', ') || 'none'})`,
    );
  }
  const dbName = str(ctx.values, 'db-name') ?? onlyChoice(db.db_names);
  // A database certificate for native clients straight at the proxy; a proxy without the
  // direct path (NOT_IMPLEMENTED) still gets the remembered choices for the tunnel.
  let direct: string | undefined;
  try {
    const answer = await clientForProfile(profile).dbLogin({
      db: name,
      db_user: dbUser,
      ...(dbName ? { db_name: dbName } : {}),
    });
    for (const w of answer.warnings ?? []) ctx.stderr.write(`WARNING: ${w}\n`);
    saveDbCert(profile, answer);
    direct = directCommand(profile, name, loadDbLogins(profile)[name]);
  } catch (e) {
    if (!isWardenError(e, 'WARDEN_ERR_NOT_IMPLEMENTED') && !isWardenError(e, 'WARDEN_ERR_NOT_FOUND')) throw e;
    const login: DbLogin = { db_user: dbUser, ...(dbName ? { db_name: dbName } : {}), protocol: db.protocol };
    saveDbLogin(profile, name, login);
  }
  ctx.stdout.write(
    `Logged in to database "${name}" as ${dbUser}${dbName ? ` (database ${dbName})` : ''}.\n` +
      `Connect with \`wsh db connect ${name}\`, or start a tunnel for other clients: \`wsh proxy db ${name} --tunnel -p PORT\`.\n` +
      (direct ? `Or connect straight to the proxy with the database certificate:\n  ${direct}\n` : ''),
  );
  return 0;
}

/** Where the login's certificate lets native clients connect straight to the proxy. */
function directEndpoint(profile: LoadedProfile, name: string, login: DbLogin | undefined) {
  if (!login?.host || login.port === undefined) return undefined;
  if (login.expires && Date.parse(login.expires) <= Date.now()) return undefined;
  return {
    host: login.host,
    port: login.port,
    ...(login.db_user ? { dbUser: login.db_user } : {}),
    ...(login.db_name ? { dbName: login.db_name } : {}),
    caPath: join(profile.dir, 'host-cas.pem'),
    certPath: dbCertPath(profile, name),
    keyPath: join(profile.dir, 'key.pem'),
  };
}

/** The native client's command line straight to the proxy (psql, mysql), when the login has a certificate. */
function directCommand(profile: LoadedProfile, name: string, login: DbLogin | undefined): string | undefined {
  const e = directEndpoint(profile, name, login);
  if (!e) return undefined;
  if (login?.protocol === 'postgres') return `psql "${postgresDirectConnString(e)}"`;
  if (login?.protocol === 'mysql') return `mysql ${mysqlDirectArgs(e).join(' ')}`;
  return undefined;
}

export async function runDbLogout(ctx: CommandContext): Promise<number> {
  const profile = requireLiveProfile(ctx);
  const name = ctx.positionals[0];
  const removed = removeDbLogins(profile, name);
  if (name && removed.length === 0) {
    throw new WardenError('WARDEN_ERR_NOT_FOUND', `not logged in to database "${name}"`);
  }
  ctx.stdout.write(
    removed.length === 0
      ? 'Not logged in to any database.\n'
      : `Logged out of ${removed.map((n) => `"${n}"`).join(', ')}.\n`,
  );
  return 0;
}

/** The route for `name`: flags win over the remembered `wsh db login` choice. */
function route(ctx: CommandContext, profile: LoadedProfile, name: string) {
  const saved = loadDbLogins(profile)[name];
  const dbUser = str(ctx.values, 'db-user') ?? saved?.db_user;
  const dbName = str(ctx.values, 'db-name') ?? saved?.db_name;
  return {
    db: name,
    ...(dbUser ? { dbUser } : {}),
    ...(dbName ? { dbName } : {}),
    protocol: saved?.protocol,
  };
}

export async function runDbConnect(ctx: CommandContext): Promise<number> {
  const [name = '', ...extra] = ctx.positionals;
  const profile = requireLiveProfile(ctx);
  const r = route(ctx, profile, name);
  const protocol = r.protocol ?? (await findDb(profile, name)).protocol;
  // The client reaches the tunnel over a Unix socket in a directory only this user can open
  // (mkdtemp: 0700), not a loopback port that anyone on the machine could use while it runs;
  // loopback when the socket path would be too long for the kernel.
  const dir = mkdtempSync(join(tmpdir(), 'wsh-db-'));
  const socket = protocol === 'postgres' ? tunnelSocketPath(protocol, dir, 0) : join(dir, 'mysql.sock');
  const viaSocket = Buffer.byteLength(socket) <= 100;
  let tunnel: Awaited<ReturnType<typeof startDbTunnel>>;
  let cmd: string;
  let args: string[];
  try {
    tunnel = await startDbTunnel({
      profile,
      ...r,
      ...(viaSocket ? { path: socket } : {}),
      onError: (e) => ctx.stderr.write(`${formatError(e, ctx.env)}\n`),
    });
    const endpoint = !viaSocket
      ? { host: tunnel.host, port: tunnel.port, ...r }
      : protocol === 'postgres'
        ? { host: dir, port: POSTGRES_DEFAULT_PORT, ...r }
        : { host: tunnel.host, port: 0, socket, ...r };
    try {
      [cmd, ...args] = clientCommand(protocol, endpoint, extra) as [string, ...string[]];
    } catch (e) {
      await tunnel.close();
      throw e;
    }
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const interactive = ctx.stdin === process.stdin && ctx.stdout === process.stdout;
  // ^C goes to the client (psql cancels the query); wsh must stay up to carry the cancel.
  const ignore = () => undefined;
  process.on('SIGINT', ignore);
  try {
    return await new Promise<number>((resolve, reject) => {
      const child = spawn(cmd!, args, {
        stdio: interactive ? 'inherit' : ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, ...ctx.env },
      });
      child.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          new WardenError(
            'WARDEN_ERR_NOT_FOUND',
            e.code === 'ENOENT'
              ? `${cmd} is not installed (it is needed to connect to ${protocol} databases)`
              : e.message,
          ),
        ),
      );
      if (!interactive) {
        ctx.stdin.pipe(child.stdin!);
        child.stdout!.pipe(ctx.stdout, { end: false });
        child.stderr!.pipe(ctx.stderr, { end: false });
      }
      child.once('close', (code, signal) => {
        if (!interactive) ctx.stdin.unpipe(child.stdin!);
        resolve(code ?? (signal ? 128 + 2 : 1));
      });
    });
  } finally {
    process.off('SIGINT', ignore);
    await tunnel.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runProxyDb(ctx: CommandContext): Promise<number> {
  const name = ctx.positionals[0]!;
  if (ctx.values.tunnel !== true) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      'only --tunnel is supported: a local plain listener that any client or driver can use',
    );
  }
  const portText = str(ctx.values, 'port') ?? '0';
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port > 65535)
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `invalid --port "${portText}": expected 0 to 65535`);
  const socketOption = str(ctx.values, 'socket');
  if (socketOption === '')
    throw new WardenError('WARDEN_ERR_BAD_PARAMETER', '--socket needs a path (a directory for PostgreSQL)');
  const profile = requireLiveProfile(ctx);
  const r = route(ctx, profile, name);
  const protocol = r.protocol ?? (await findDb(profile, name)).protocol;
  if (socketOption !== undefined && protocol !== 'postgres' && str(ctx.values, 'port') !== undefined)
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      `-p is not used with --socket for ${protocol} databases: PATH is the socket file itself`,
    );
  const socket =
    socketOption === undefined ? undefined : tunnelSocketPath(protocol, resolve(socketOption), port);
  const tunnel = await startDbTunnel({
    profile: profileSource(ctx, profile),
    ...r,
    ...(socket === undefined ? { port } : { path: socket }),
    onError: (e) => ctx.stderr.write(`${formatError(e, ctx.env)}\n`),
  });
  // Over a socket, libpq takes its directory as the host and the port from its file name.
  const endpoint =
    socket === undefined
      ? { host: tunnel.host, port: tunnel.port, ...r }
      : protocol === 'postgres'
        ? { host: dirname(socket), port: port || POSTGRES_DEFAULT_PORT, ...r }
        : { host: tunnel.host, port: 0, socket, ...r };
  ctx.stdout.write(
    `Started a tunnel for database "${name}" on ${socket ?? `${tunnel.host}:${tunnel.port}`}.\n` +
      (protocol === 'postgres' ? `Connect with: psql "${postgresConnString(endpoint)}"\n` : '') +
      (protocol === 'mysql' ? `Connect with: mysql ${mysqlArgs(endpoint).join(' ')}\n` : '') +
      'Stop it with Ctrl+C.\n',
  );
  await untilInterrupted();
  await tunnel.close();
  return 0;
}

/** `wsh db config`'s fields for native clients straight at the proxy (none without a live certificate). */
function directConfig(profile: LoadedProfile, name: string, login: DbLogin | undefined) {
  const e = directEndpoint(profile, name, login);
  const command = directCommand(profile, name, login);
  if (!e || !command) return {};
  return {
    direct_command: command,
    host: e.host,
    port: e.port,
    ca: e.caPath,
    cert: e.certPath,
    key: e.keyPath,
    expires: login?.expires ?? null,
  };
}

export async function runDbConfig(ctx: CommandContext): Promise<number> {
  const format = parseFormat(ctx.values.format);
  const profile = requireLiveProfile(ctx);
  const logins = loadDbLogins(profile);
  const name = ctx.positionals[0] ?? (Object.keys(logins).length === 1 ? Object.keys(logins)[0] : undefined);
  if (!name) {
    throw new WardenError(
      'WARDEN_ERR_BAD_PARAMETER',
      Object.keys(logins).length === 0
        ? 'not logged in to any database; run `wsh db login NAME` first, or name one'
        : `name the database (logged in to: ${Object.keys(logins).join(', ')})`,
    );
  }
  const r = route(ctx, profile, name);
  const protocol = r.protocol ?? (await findDb(profile, name)).protocol;
  const port = protocol === 'mysql' ? 3307 : 5433;
  const info = {
    name,
    protocol,
    proxy: profile.proxy,
    user: profile.user,
    db_user: r.dbUser ?? null,
    db_name: r.dbName ?? null,
    tunnel_command: `wsh proxy db ${name} --tunnel -p ${port}`,
    ...(protocol === 'postgres'
      ? { connection_string: postgresConnString({ host: '127.0.0.1', port, ...r }) }
      : {}),
    ...(protocol === 'mysql'
      ? { command: `mysql ${mysqlArgs({ host: '127.0.0.1', port, ...r }).join(' ')}` }
      : {}),
    ...directConfig(profile, name, logins[name]),
  };
  if (format !== 'text') {
    ctx.stdout.write(formatData(info, format));
    return 0;
  }
  const rows: [string, string][] = [
    ['Name', name],
    ['Protocol', protocol],
    ['Proxy', profile.proxy],
    ['Database user', r.dbUser ?? '(the client decides)'],
    ['Database name', r.dbName ?? '(the client decides)'],
    ['Tunnel', info.tunnel_command],
    ...(info.connection_string ? [['Connect', `psql "${info.connection_string}"`] as [string, string]] : []),
    ...(info.command ? [['Connect', info.command] as [string, string]] : []),
    ...(info.direct_command
      ? ([
          ['Direct', info.direct_command],
          ['Certificate', `${info.cert} (until ${info.expires})`],
        ] as [string, string][])
      : ([['Direct', `run \`wsh db login ${name}\` for a database certificate`]] as [string, string][])),
  ];
  ctx.stdout.write(`${rows.map(([k, v]) => `${`${k}:`.padEnd(15)}${v}`).join('\n')}\n`);
  return 0;
}
