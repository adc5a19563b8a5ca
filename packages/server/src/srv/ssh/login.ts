/**
 * Local logins: who a session runs as, and how its process is started. As OpenSSH's sshd:
 * the passwd entry of the requested login gives uid, gid, home and shell; commands run as
 * `<shell> -c <command>`, interactive shells as `<shell> -l`, subsystems through the shell
 * too (so an account whose shell is `nologin` gets nothing); the environment is built from
 * scratch (the daemon's own never leaks into sessions) plus an allow-list of what the client
 * asked for (`LANG`, `LC_*`, `TZ`, `COLORTERM`).
 *
 * Switching user: a daemon running as root starts sessions through `setpriv --reuid --regid
 * --init-groups` (util-linux), which sets the login's supplementary groups too (Node's own
 * `uid`/`gid` spawn options and node-pty's leave root's groups behind or drop them all).
 * Without root, only the daemon's own login is served (the access decision refuses others).
 * Who may import: this folder. Tested by `login.test.ts` and end to end in `test/ssh-node/`.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';

/** A local account from the passwd database. */
export interface LocalUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /** The login shell; `/bin/sh` when the entry has none (as sshd). */
  shell: string;
}

/** What the daemon itself runs as. */
export interface DaemonUser {
  uid: number;
  name: string;
}

/** POSIX-ish login names: no leading dash (never an option), at most 32 characters. */
const LOGIN_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?$/;

export function isValidLoginName(name: string): boolean {
  return LOGIN_NAME.test(name);
}

/** Parses one passwd line (`name:x:uid:gid:gecos:home:shell`). */
export function parsePasswdLine(line: string): LocalUser | undefined {
  const f = line.split(':');
  if (f.length < 7) return undefined;
  const [name = '', , uidText = '', gidText = '', , home = '', shell = ''] = f;
  const uid = Number(uidText);
  const gid = Number(gidText);
  if (!name || !/^\d+$/.test(uidText) || !/^\d+$/.test(gidText)) return undefined;
  return { name, uid, gid, home: home || '/', shell: shell || '/bin/sh' };
}

function getent(name: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('getent', ['passwd', name], { timeout: 5000 }, (err, stdout) => {
      if (err) {
        // Exit 2: no such entry. Anything else (no getent): read /etc/passwd instead.
        if ((err as { code?: unknown }).code === 2) resolve('');
        else resolve(undefined);
        return;
      }
      resolve(stdout);
    });
  });
}

/** A file read again only when it changed (inode, size or mtime). */
class WatchedFile<T> {
  readonly #path: string;
  readonly #parse: (text: string) => T;
  #stamp = '';
  #value: T | undefined;

  constructor(path: string, parse: (text: string) => T) {
    this.#path = path;
    this.#parse = parse;
  }

  /** The parsed file, or undefined when it cannot be read. */
  get(): T | undefined {
    try {
      const st = statSync(this.#path, { bigint: true });
      const stamp = `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
      if (stamp !== this.#stamp) {
        this.#value = this.#parse(readFileSync(this.#path, 'utf8'));
        this.#stamp = stamp;
      }
      return this.#value;
    } catch {
      this.#stamp = '';
      this.#value = undefined;
      return undefined;
    }
  }
}

/** The passwd entries of a passwd file by name (the first line of a name wins, as in glibc). */
export function parsePasswdFile(text: string): Map<string, LocalUser> {
  const users = new Map<string, LocalUser>();
  for (const line of text.split('\n')) {
    const user = parsePasswdLine(line.trim());
    if (user && !users.has(user.name)) users.set(user.name, user);
  }
  return users;
}

/** True when nsswitch.conf's `passwd:` line asks the `files` source first (glibc's default). */
export function passwdFilesFirst(nsswitch: string): boolean {
  for (const raw of nsswitch.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^passwd\s*:\s*(\S+)/.exec(line);
    if (m) return m[1] === 'files';
  }
  return true; // no passwd line: glibc uses files (then others)
}

/**
 * Where lookups read: /etc/passwd answers directly when NSS asks it first and it has the
 * login (what getpwnam returns then); anything else goes through `getent`.
 */
export class LoginLookup {
  readonly #passwd: WatchedFile<Map<string, LocalUser>>;
  readonly #nsswitch: WatchedFile<boolean>;
  readonly #getent: (name: string) => Promise<string | undefined>;

  constructor(
    o: {
      passwdPath?: string;
      nsswitchPath?: string;
      getent?: (name: string) => Promise<string | undefined>;
    } = {},
  ) {
    this.#passwd = new WatchedFile(o.passwdPath ?? '/etc/passwd', parsePasswdFile);
    this.#nsswitch = new WatchedFile(o.nsswitchPath ?? '/etc/nsswitch.conf', passwdFilesFirst);
    this.#getent = o.getent ?? getent;
  }

  /** See `lookupLogin`. */
  async lookup(name: string): Promise<LocalUser | undefined> {
    if (!isValidLoginName(name)) return undefined;
    // A missing nsswitch.conf means glibc's default (files first).
    if (this.#nsswitch.get() ?? true) {
      const user = this.#passwd.get()?.get(name);
      if (user) return { ...user };
    }
    const text = await this.#getent(name);
    if (text === undefined) return this.#passwd.get()?.get(name);
    return parsePasswdFile(text).get(name);
  }
}

const defaultLookup = new LoginLookup();

/**
 * The passwd entry of `name`, or undefined when there is no such login or the name is not a
 * valid login name. As getpwnam: from /etc/passwd when NSS reads it first and the login is
 * there (parsed once per change of the file: sshd resolves logins in process, and starting
 * `getent` cost a session ~8 ms of the daemon's CPU), else through NSS (`getent`: LDAP, sssd,
 * systemd's dynamic users), else /etc/passwd when there is no `getent`.
 *
 * @example
 *   await lookupLogin('root'); // { name: 'root', uid: 0, gid: 0, home: '/root', shell: '/bin/bash' }
 */
export function lookupLogin(name: string): Promise<LocalUser | undefined> {
  return defaultLookup.lookup(name);
}

/** The account the daemon runs as. */
export function daemonUser(): DaemonUser {
  return { uid: process.getuid?.() ?? -1, name: userInfo().username };
}

/**
 * Why this daemon can't serve `login`, or undefined when it can: a non-root daemon serves
 * only its own login.
 */
export function switchRefusal(daemon: DaemonUser, login: string, node: string): string | undefined {
  if (daemon.uid === 0 || login === daemon.name) return undefined;
  return `access denied: node ${JSON.stringify(node)} runs as ${JSON.stringify(daemon.name)} without root and accepts only login ${JSON.stringify(daemon.name)}`;
}

const SETPRIV_PATHS = ['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv'];

/** Where `setpriv` is, if anywhere. */
export function findSetpriv(): string | undefined {
  return SETPRIV_PATHS.find((p) => existsSync(p));
}

const SFTP_SERVER_PATHS = [
  '/usr/lib/openssh/sftp-server',
  '/usr/libexec/openssh/sftp-server',
  '/usr/libexec/sftp-server',
  '/usr/lib/ssh/sftp-server',
];

/** OpenSSH's sftp-server, if installed (what `scp` and `sftp` need). */
export function findSftpServer(): string | undefined {
  return SFTP_SERVER_PATHS.find((p) => existsSync(p));
}

/** A program and its arguments, ready for spawn or node-pty. */
export interface Command {
  file: string;
  args: string[];
}

/**
 * The command that runs `program args…` as `user`: directly when the daemon already is that
 * user, else through setpriv (which throws here when missing: no silent fallback to root).
 */
export function asUser(
  user: LocalUser,
  daemon: DaemonUser,
  setpriv: string | undefined,
  program: string[],
): Command {
  const [file, ...args] = program;
  if (!file) throw new Error('empty command');
  if (daemon.uid === user.uid) return { file, args };
  if (daemon.uid !== 0) throw new Error(`cannot switch to login ${JSON.stringify(user.name)} without root`);
  if (!setpriv) throw new Error('setpriv (util-linux) is needed to switch users and is not installed');
  return {
    file: setpriv,
    args: ['--reuid', String(user.uid), '--regid', String(user.gid), '--init-groups', '--', file, ...args],
  };
}

/** What the login shell runs for each kind of session. */
export function shellCommand(user: LocalUser, kind: { exec: string } | { shell: true }): string[] {
  return 'exec' in kind ? [user.shell, '-c', kind.exec] : [user.shell, '-l'];
}

/** Environment variables a client may set (`SendEnv`/`SetEnv`), as sshd's usual `AcceptEnv`. */
export function isAllowedEnv(name: string, value: string): boolean {
  const allowed = /^(LANG|LANGUAGE|LC_[A-Z]+|TZ|COLORTERM)$/.test(name);
  return allowed && value.length <= 4096 && !value.includes('\0');
}

export interface SessionEnvOptions {
  /** `SSH_CLIENT`: `<client ip> <client port> <server port>`. */
  sshClient: string;
  /** `SSH_CONNECTION`: `<client ip> <client port> <server ip> <server port>`. */
  sshConnection: string;
  /** TERM from the pty request, for PTY sessions. */
  term?: string;
  /** Allowed variables the client sent. */
  requested?: Readonly<Record<string, string>>;
}

/** The session's environment, from scratch: nothing of the daemon's own environment. */
export function sessionEnv(user: LocalUser, opts: SessionEnvOptions): Record<string, string> {
  const path =
    user.uid === 0
      ? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
      : '/usr/local/bin:/usr/bin:/bin:/usr/games';
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.requested ?? {})) if (isAllowedEnv(k, v)) env[k] = v;
  Object.assign(env, {
    USER: user.name,
    LOGNAME: user.name,
    HOME: user.home,
    SHELL: user.shell,
    PATH: path,
    SSH_CLIENT: opts.sshClient,
    SSH_CONNECTION: opts.sshConnection,
  });
  if (opts.term) env.TERM = opts.term;
  return env;
}

/** The directory a session starts in: the home directory when it exists, else `/`. */
export function sessionCwd(user: LocalUser): string {
  try {
    return statSync(user.home).isDirectory() ? user.home : '/';
  } catch {
    return '/';
  }
}
