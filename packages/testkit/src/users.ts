/**
 * Drives `wsh signup` and `wsh login` the way a script would: answers as lines on stdin, the
 * OTP code computed from the otpauth:// URI that signup prints (as an authenticator app would).
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { type CliResult, runCli, succeeded } from './cli';
import { Authenticator, totpFromUri } from './totp';
import type { WardenProcess } from './warden';

const root = resolve(import.meta.dirname, '../../..');

/** Runs `wsh signup`, answering the password at once and the OTP code once the URI appears. */
export function signupWithTotp(
  args: string[],
  password: string,
  env: NodeJS.ProcessEnv,
  opts: { otp?: (uri: string) => string } = {},
): Promise<CliResult & { uri?: string }> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [join(root, 'dist', 'wsh.js'), 'signup', ...args], {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let uri: string | undefined;
    child.stdin.write(`${password}\n`);
    child.stdout.on('data', (c) => {
      stdout += c;
      const m = /otpauth:\/\/\S+/.exec(stdout);
      if (m && !uri) {
        uri = m[0];
        child.stdin.end(`${(opts.otp ?? totpFromUri)(uri)}\n`);
      }
    });
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error(`wsh signup timed out\n${stdout}\n${stderr}`));
    }, 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (!uri) child.stdin.destroy();
      res({ code: code ?? -1, stdout, stderr, uri });
    });
    child.on('error', rej);
  });
}

/**
 * As the admin, then the user on `env`'s machine: `wctl users add USER --roles=… [--logins=…]
 * [extra]` and `wsh signup` with the invite (the OTP code from the URI it prints).
 */
export async function inviteAndSignUp(
  w: Pick<WardenProcess, 'env' | 'proxy' | 'caPin'>,
  user: string,
  o: { roles: string; logins?: string; extra?: string[]; password: string; env: NodeJS.ProcessEnv },
): Promise<CliResult & { uri?: string }> {
  const add = succeeded(
    `wctl users add ${user}`,
    await runCli(
      'wctl',
      [
        'users',
        'add',
        user,
        `--roles=${o.roles}`,
        ...(o.logins !== undefined ? [`--logins=${o.logins}`] : []),
        ...(o.extra ?? []),
      ],
      { env: w.env },
    ),
  );
  const token = /--token=(\S+)/.exec(add.stdout)?.[1];
  if (!token) throw new Error(`wctl users add printed no invite token:\n${add.stdout}`);
  const signup = await signupWithTotp(
    [`--proxy=${w.proxy}`, `--token=${token}`, `--ca-pin=${w.caPin}`],
    o.password,
    o.env,
  );
  succeeded(`wsh signup for ${user}`, signup);
  return signup;
}

/**
 * As an admin and then the user would: `wctl users add USER --roles=… [--logins=…] [extra]`,
 * `wsh signup` with the invite (the OTP from its URI), then `wsh login` with the password and
 * the next OTP code. Throws with the CLI's stderr when a step fails. Returns the user's env
 * (`WARDEN_HOME` = `home`) and their authenticator, for later logins.
 *
 * @example
 *   const { env } = await addUserAndLogin(w, 'alice', { roles: 'access', logins: 'root', home });
 */
export async function addUserAndLogin(
  w: Pick<WardenProcess, 'env' | 'proxy' | 'caPin'>,
  user: string,
  o: { roles: string; logins?: string; home: string; password: string; extra?: string[] },
): Promise<{ env: NodeJS.ProcessEnv; otp: Authenticator }> {
  const env = { ...w.env, WARDEN_HOME: o.home };
  const s = await inviteAndSignUp(w, user, { ...o, env });
  const otp = new Authenticator(s.uri!);
  otp.markUsed();
  const login = await runCli('wsh', ['login', `--proxy=${w.proxy}`, `--user=${user}`], {
    env,
    input: `${o.password}\n${await otp.code()}\n`,
  });
  succeeded(`wsh login for ${user}`, login);
  return { env, otp };
}
