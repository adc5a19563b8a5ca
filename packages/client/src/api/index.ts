/** The RPC client: HTTPS transport, typed calls, and trust establishment for a proxy. */
export { ApiClient, caPin, establishTrust, type Trust, type TrustOptions } from './client';
export { type HttpOptions, splitHostPort, type TlsIdentity } from './http';
