/**
 * Drives `wsh signup` and `wsh login` the way a script would: answers as lines on stdin, the
 * OTP code computed from the otpauth:// URI that signup prints (as an authenticator app would).
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import type { CliResult } from './cli';
import { totpFromUri } from './totp';

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
