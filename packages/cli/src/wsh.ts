/** `wsh`: the user's client (its commands: wsh/commands.ts). */
const argv = process.argv.slice(2);
// kubectl runs `wsh kube credentials` before every command: a cached credential is printed
// without loading the rest of wsh (wsh/kube-fast.ts).
const fast =
  argv[0] === 'kube' && argv[1] === 'credentials'
    ? (await import('./wsh/kube-fast')).cachedKubeCredentials(argv.slice(2), process.env)
    : undefined;
if (fast !== undefined) process.stdout.write(fast);
else {
  // Only wsh's own command table (wsh/program.ts), not wctl's.
  const [{ main }, { wsh }] = await Promise.all([import('./io'), import('./wsh/program')]);
  await main(wsh);
}

export {};
