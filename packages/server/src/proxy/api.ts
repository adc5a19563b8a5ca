/**
 * The RPC routes of the proxy's HTTPS API, each a thin call into the auth service.
 */
import { parseResourceRef, rpc, WardenError } from '@warden/api';
import type { z } from 'zod';
import type { Identity } from '../access';
import type { AuthServer } from '../auth';
import type { DeviceAuthentication, DeviceEnrollment } from '../devicetrust';
import type { RequestContext, Route } from './router';

const R = rpc.Routes;

/** The caller of a route with `auth: 'user'` (the router set its `clientAddr`). */
function caller(ctx: RequestContext<unknown>): Identity {
  if (!ctx.identity) throw new WardenError('WARDEN_ERR_NOT_LOGGED_IN');
  return ctx.identity;
}

function kindOf(word: string) {
  const ref = parseResourceRef(word);
  return ref.kind;
}

export interface ApiDeps {
  /** Nodes the caller may reach (with at least one login). */
  listNodes(identity: Identity): Promise<unknown[]>;
  /** Databases the caller may reach (`DbService.listFor`); absent when no db_service runs. */
  listDbs?(identity: Identity): Promise<unknown[]>;
  /** A database certificate for the caller's key (`wsh db login`, `DbDirect.login`). */
  dbLogin?(identity: Identity, req: rpc.DbLoginRequestBody): Promise<unknown>;
  /** Kubernetes clusters the caller may reach (`KubeService.listFor`); absent when no kube_service runs. */
  listKubeClusters?(identity: Identity): Promise<unknown[]>;
  /** Issues kube client certificates (`KubeCerts.issue`); absent when no kube_service runs. */
  issueKubeCert?(
    identity: Identity,
    publicKeyPem: string,
    cluster?: string,
    lifetime?: 'short' | 'login',
  ): Promise<{ certPem: string; notAfter: Date }>;
  /** The device trust ceremonies (enrollment and authentication at login). */
  deviceTrust?: { enrollment: DeviceEnrollment; authentication: DeviceAuthentication };
  /** Web apps (`bin/app.ts`): absent when no app_service runs. */
  apps?: {
    /** Apps the caller may reach (`wsh apps ls`). */
    list(identity: Identity): unknown[];
    /** An app certificate for the caller's key (`wsh app login`). */
    login(identity: Identity, app: string): Promise<unknown>;
  };
  /** The `jwt` CA's public keys (`/.well-known/jwks.json`). */
  jwks?(): unknown;
}

function deviceTrust(deps: ApiDeps): NonNullable<ApiDeps['deviceTrust']> {
  if (!deps.deviceTrust)
    throw new WardenError('WARDEN_ERR_NOT_IMPLEMENTED', 'device trust is not served here');
  return deps.deviceTrust;
}

function route<B>(r: Omit<Route, 'handler'> & { handler(ctx: RequestContext<B>): Promise<unknown> }): Route {
  return r as unknown as Route;
}

/** POST `path` before login (`auth: 'none'`): `call` gets the body `schema` checked, and the client's address. */
function openPost<S extends z.ZodType>(
  path: string,
  schema: S,
  call: (body: z.infer<S>, addr: string) => Promise<unknown>,
): Route {
  return route<z.infer<S>>({
    method: 'POST',
    path,
    auth: 'none',
    body: schema,
    handler: (ctx) => call(ctx.body, ctx.addr),
  });
}

/** POST `path` for a logged-in caller (`auth: 'user'`): `call` gets the caller and the body `schema` checked. */
function userPost<S extends z.ZodType>(
  path: string,
  schema: S,
  call: (identity: Identity, body: z.infer<S>) => Promise<unknown>,
): Route {
  return route<z.infer<S>>({
    method: 'POST',
    path,
    auth: 'user',
    body: schema,
    handler: (ctx) => call(caller(ctx), ctx.body),
  });
}

/** GET `path` for a logged-in caller: `{ items }`, what `list` returns for the caller. */
function userList(
  path: string,
  list: (identity: Identity, ctx: RequestContext) => Promise<unknown[]> | unknown[],
): Route {
  return route({
    method: 'GET',
    path,
    auth: 'user',
    handler: async (ctx) => ({ items: await list(caller(ctx), ctx) }),
  });
}

export function apiRoutes(auth: AuthServer, deps: ApiDeps): Route[] {
  return [
    route({ method: 'GET', path: R.ping, auth: 'none', handler: () => auth.ping() }),
    openPost(R.signupBegin, rpc.SignupBeginRequest, (body) => auth.signupBegin(body.token)),
    openPost(R.signupFinish, rpc.SignupFinishRequest, (body, addr) => auth.signupFinish(body, addr)),
    openPost(R.login, rpc.LoginRequest, (body, addr) => auth.login(body, addr)),
    openPost(R.botJoin, rpc.BotJoinRequest, (body, addr) => auth.joinBot(body, addr)),
    userPost(R.botRenew, rpc.BotRenewRequest, (identity, body) => auth.renewBot(identity, body)),
    userPost(R.bots, rpc.AddBotRequest, (identity, body) => auth.addBot(identity, body)),
    userList(R.bots, (identity) => auth.listBots(identity)),
    route({
      method: 'DELETE',
      path: `${R.bots}/:name`,
      auth: 'user',
      handler: async (ctx) => {
        await auth.removeBot(caller(ctx), ctx.params.name!);
        return {};
      },
    }),
    userList(R.tokens, (identity) => auth.listTokens(identity)),
    route({
      method: 'DELETE',
      path: `${R.tokens}/:id`,
      auth: 'user',
      handler: async (ctx) => ({ removed: await auth.deleteToken(caller(ctx), ctx.params.id!) }),
    }),
    route({
      method: 'GET',
      path: R.whoami,
      auth: 'user',
      handler: async (ctx) => {
        const id = caller(ctx);
        return { user: id.user, roles: id.roles, logins: id.logins };
      },
    }),
    userList(`${R.resources}/:kind`, (identity, ctx) =>
      auth.listResources(identity, kindOf(ctx.params.kind!)),
    ),
    route({
      method: 'GET',
      path: `${R.resources}/:kind/:name`,
      auth: 'user',
      handler: async (ctx) => ({
        resource: await auth.getResource(caller(ctx), kindOf(ctx.params.kind!), ctx.params.name!),
      }),
    }),
    userPost(R.resources, rpc.CreateResourceRequest, (identity, body) =>
      auth.putResource(identity, body.resource, {
        force: body.force,
        expectedRevision: body.expected_revision,
      }),
    ),
    route({
      method: 'DELETE',
      path: `${R.resources}/:kind/:name`,
      auth: 'user',
      handler: async (ctx) => {
        await auth.deleteResource(caller(ctx), kindOf(ctx.params.kind!), ctx.params.name!);
        return {};
      },
    }),
    userPost(R.users, rpc.AddUserRequest, (identity, body) => auth.addUser(identity, body)),
    route({
      method: 'POST',
      path: `${R.users}/:name/reset`,
      auth: 'user',
      handler: (ctx) => auth.resetUser(caller(ctx), ctx.params.name!),
    }),
    userPost(R.locks, rpc.CreateLockRequest, (identity, body) => auth.createLock(identity, body)),
    userPost(R.devices, rpc.AddDeviceRequest, (identity, body) => auth.addDevice(identity, body)),
    userPost(R.deviceTokens, rpc.DeviceEnrollTokenRequest, (identity, body) =>
      auth.createDeviceEnrollToken(identity, body),
    ),
    // Device trust: enrollment is authenticated by its token (a certificate, when sent, names
    // the owner); device authentication needs the user's fresh certificate.
    route<rpc.DeviceEnrollBeginRequest>({
      method: 'POST',
      path: R.deviceEnrollBegin,
      auth: 'optional',
      body: rpc.DeviceEnrollBeginRequest,
      handler: (ctx) =>
        deviceTrust(deps).enrollment.begin(ctx.body, ctx.identity ?? { clientAddr: ctx.addr }),
    }),
    route<rpc.DeviceEnrollFinishRequest>({
      method: 'POST',
      path: R.deviceEnrollFinish,
      auth: 'optional',
      body: rpc.DeviceEnrollFinishRequest,
      handler: (ctx) =>
        deviceTrust(deps).enrollment.finish(ctx.body, ctx.identity ?? { clientAddr: ctx.addr }),
    }),
    userPost(R.deviceAuthnBegin, rpc.DeviceAuthnBeginRequest, (identity, body) =>
      deviceTrust(deps).authentication.begin(identity, body),
    ),
    userPost(R.deviceAuthnFinish, rpc.DeviceAuthnFinishRequest, (identity, body) =>
      deviceTrust(deps).authentication.finish(identity, body),
    ),
    userPost(`${R.authorities}/host/sign`, rpc.SignHostRequest, (identity, body) =>
      auth.signHost(identity, body),
    ),
    userList(R.nodes, (identity) => deps.listNodes(identity)),
    userList(R.dbs, (identity) => deps.listDbs?.(identity) ?? []),
    userPost(R.dbLogin, rpc.DbLoginRequest, async (identity, body) => {
      if (!deps.dbLogin)
        throw new WardenError('WARDEN_ERR_NOT_IMPLEMENTED', 'no db_service runs behind this proxy');
      return deps.dbLogin(identity, body);
    }),
    userList(R.apps, (identity) => deps.apps?.list(identity) ?? []),
    userPost(R.appLogin, rpc.AppLoginRequest, async (identity, body) => {
      if (!deps.apps)
        throw new WardenError('WARDEN_ERR_NOT_IMPLEMENTED', 'no app_service runs behind this proxy');
      return deps.apps.login(identity, body.app);
    }),
    route({
      method: 'GET',
      path: R.jwks,
      auth: 'none',
      handler: async () => {
        if (!deps.jwks) throw new WardenError('WARDEN_ERR_NOT_FOUND', 'no JWT keys are published here');
        return deps.jwks();
      },
    }),
    userList(R.kubeClusters, (identity) => deps.listKubeClusters?.(identity) ?? []),
    userPost(R.kubeCerts, rpc.KubeCertRequest, async (identity, body) => {
      if (!deps.issueKubeCert)
        throw new WardenError('WARDEN_ERR_NOT_IMPLEMENTED', 'no kube_service runs behind this proxy');
      const issued = await deps.issueKubeCert(identity, body.public_key, body.cluster, body.lifetime);
      return { cert_pem: issued.certPem, expires: issued.notAfter.toISOString() };
    }),
    userPost(`${R.authorities}/db/sign`, rpc.SignDbRequest, (identity, body) => auth.signDb(identity, body)),
    route({
      method: 'GET',
      path: `${R.authorities}/:type/export`,
      auth: 'user',
      handler: async (ctx) => auth.exportAuthority(ctx.params.type!),
    }),
    route({
      method: 'GET',
      path: R.audit,
      auth: 'user',
      handler: async (ctx) => {
        const q = ctx.query;
        const limit = q.get('limit') ? Number(q.get('limit')) : undefined;
        if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 10_000)) {
          throw new WardenError('WARDEN_ERR_BAD_PARAMETER', 'limit must be a whole number from 1 to 10000');
        }
        for (const t of ['from', 'to']) {
          const v = q.get(t);
          if (v && Number.isNaN(Date.parse(v)))
            throw new WardenError('WARDEN_ERR_BAD_PARAMETER', `invalid ${t} time "${v}"`);
        }
        return {
          events: await auth.searchAudit(caller(ctx), {
            from: q.get('from') ?? undefined,
            to: q.get('to') ?? undefined,
            types: q.getAll('type'),
            user: q.get('user') ?? undefined,
            limit,
          }),
        };
      },
    }),
  ];
}
