/**
 * @warden/cli: the `wsh` and `wctl` commands, thin layers over @warden/client.
 * May import @warden/api and @warden/client.
 */
export {};
