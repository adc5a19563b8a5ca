/**
 * Drives `wsh signup` and `wsh login` the way a script would: answers as lines on stdin, the
 * OTP code computed from the otpauth:// URI that signup prints (as an authenticator app would).
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { type CliResult, runCli } from './cli';
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
 * As an admin and then the user would: `wctl users add USER --roles=… --logins=… [extra]`,
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
  o: { roles: string; logins: string; home: string; password: string; extra?: string[] },
): Promise<{ env: NodeJS.ProcessEnv; otp: Authenticator }> {
  const step = (what: string, r: CliResult) => {
    if (r.code !== 0) throw new Error(`${what} for ${user} failed (${r.code}):\n${r.stderr}`);
  };
  const add = await runCli(
    'wctl',
    ['users', 'add', user, `--roles=${o.roles}`, `--logins=${o.logins}`, ...(o.extra ?? [])],
    { env: w.env },
  );
  step('wctl users add', add);
  const token = /--token=(\S+)/.exec(add.stdout)?.[1];
  if (!token) throw new Error(`wctl users add printed no invite token:\n${add.stdout}`);
  const env = { ...w.env, WARDEN_HOME: o.home };
  const s = await signupWithTotp(
    [`--proxy=${w.proxy}`, `--token=${token}`, `--ca-pin=${w.caPin}`],
    o.password,
    env,
  );
  step('wsh signup', s);
  const otp = new Authenticator(s.uri!);
  otp.markUsed();
  const login = await runCli('wsh', ['login', `--proxy=${w.proxy}`, `--user=${user}`], {
    env,
    input: `${o.password}\n${await otp.code()}\n`,
  });
  step('wsh login', login);
  return { env, otp };
}
