// A real, independently written OpenID Provider (panva/oidc-provider) for the
// oidc-e2e Rust tests. Started and stopped by the Rust harness (tests/src/lib.rs).
//
// Environment:
//   PORT          port to listen on (default 4000; 0 = pick a free port)
//   HOST          address to bind (default 127.0.0.1)
//   API_RESOURCE  resource indicator / JWT `aud` of the API (default http://localhost:3000/api)
//   OTHER_RESOURCE a second resource server, for wrong-audience tokens
//                 (default http://localhost:3999/other-api)
//   APP_URL       base URL of the relying party for the code-flow client
//                 (default http://localhost:3000; redirect URI = APP_URL/auth/callback,
//                 post-logout redirect URI = APP_URL/). Several URLs separated by spaces
//                 register all of them (one provider for several relying parties).
//   WEB_APPS      optional JSON array of further code-flow clients, one per relying party, for
//                 single sign-on and single logout across apps:
//                 [{"client_id": "app-one", "client_secret": "…", "app_url": "http://127.0.0.1:4001"}]
//                 (client_secret defaults to `<client_id>-secret`). Each gets the redirect URI
//                 <app_url>/auth/callback, the post-logout redirect URI <app_url>/ and the
//                 back-channel logout URI <app_url>/auth/backchannel-logout, with
//                 backchannel_logout_session_required (so its ID and logout tokens carry `sid`).
//                 The app URLs must be distinct. `"require_par": true` makes the OP accept
//                 only pushed authorization requests (RFC 9126) from that client.
//   AT_TTL        lifetime in seconds of the access tokens of `web-app` and of the WEB_APPS
//                 clients (default 3600)
//   JWKS_FILE     optional path of a private JWKS kept across restarts
//   ROTATE_KEYS=1 generate a new RSA key and put it *first* (it signs from now on);
//                 keys already in JWKS_FILE stay published after it
//
// Refresh tokens are rotated: each refresh_token grant returns a new refresh token and consumes
// the one presented (a consumed one replayed revokes the grant).
//
// Prints exactly one line `READY <issuer>` on stdout once it accepts connections, one line
// `GRANT <grant_type> <client_id> <account id or ->` per successful token request, one line
// `BACKCHANNEL <client_id> <HTTP status> <Cache-Control of the answer, or ->` per back-channel
// logout delivery that got an answer (`BACKCHANNEL <client_id> error <reason>` when it got
// none), and exits with status 0 on SIGTERM/SIGINT, or when stdin is closed if
// EXIT_ON_STDIN_EOF=1.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number.parseInt(process.env.PORT ?? '4000', 10);
const API_RESOURCE = process.env.API_RESOURCE || 'http://localhost:3000/api';
const OTHER_RESOURCE = process.env.OTHER_RESOURCE || 'http://localhost:3999/other-api';
// A resource server whose access tokens are opaque, validated by introspection (RFC 7662) as
// the client INTROSPECTOR (tests/tests/introspection.rs).
const OPAQUE_RESOURCE = process.env.OPAQUE_RESOURCE || 'http://localhost:3998/opaque-api';
const INTROSPECTOR = 'api-introspect';
const APP_URLS = (process.env.APP_URL || 'http://localhost:3000')
  .split(/\s+/)
  .filter(Boolean)
  .map((url) => url.replace(/\/+$/, ''));
const AT_TTL = Number.parseInt(process.env.AT_TTL || '3600', 10) || 3600;
const BACKCHANNEL_LOGOUT_PATH = '/auth/backchannel-logout';
const WEB_APPS = JSON.parse(process.env.WEB_APPS || '[]').map((app) => {
  if (typeof app?.client_id !== 'string' || typeof app?.app_url !== 'string') {
    throw new TypeError(`WEB_APPS: each entry needs a client_id and an app_url: ${JSON.stringify(app)}`);
  }
  return {
    clientId: app.client_id,
    clientSecret: app.client_secret ?? `${app.client_id}-secret`,
    appUrl: app.app_url.replace(/\/+$/, ''),
    requirePar: app.require_par === true,
  };
});
// Clients whose access tokens live AT_TTL seconds.
const CODE_FLOW_CLIENTS = new Set(['web-app', ...WEB_APPS.map((app) => app.clientId)]);
// backchannel_logout_uri (normalized as oidc-provider requests it) -> client_id.
const BACKCHANNEL_CLIENTS = new Map();
for (const { clientId, appUrl } of WEB_APPS) {
  const uri = new URL(`${appUrl}${BACKCHANNEL_LOGOUT_PATH}`).href;
  if (BACKCHANNEL_CLIENTS.has(uri)) {
    throw new TypeError(`WEB_APPS: ${clientId} and ${BACKCHANNEL_CLIENTS.get(uri)} share the app URL ${appUrl}`);
  }
  BACKCHANNEL_CLIENTS.set(uri, clientId);
}
const JWKS_FILE = process.env.JWKS_FILE;
const ROTATE_KEYS = process.env.ROTATE_KEYS === '1';

function newRsaKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return {
    ...jwk, kid: `rsa-${Date.now()}-${randomBytes(4).toString('hex')}`, alg: 'RS256', use: 'sig',
  };
}

function loadKeys() {
  let keys = [];
  if (JWKS_FILE && existsSync(JWKS_FILE)) {
    keys = JSON.parse(readFileSync(JWKS_FILE, 'utf8')).keys;
  }
  if (keys.length === 0) {
    keys = [newRsaKey()];
  } else if (ROTATE_KEYS) {
    // New signing key first; the previous keys stay in the JWKS so that tokens
    // already issued keep verifying (oidc-provider signs with the first usable key).
    keys = [newRsaKey(), ...keys];
  }
  if (JWKS_FILE) {
    writeFileSync(JWKS_FILE, JSON.stringify({ keys }, null, 2), { mode: 0o600 });
  }
  return { keys };
}

// Resource servers known to this OP. Access tokens for them are RFC 9068 JWTs.
const resourceServers = new Map([
  [API_RESOURCE, { scope: 'api:read api:write' }],
  [OTHER_RESOURCE, { scope: 'api:read api:write' }],
  [OPAQUE_RESOURCE, { scope: 'api:read api:write', accessTokenFormat: 'opaque' }],
]);

const configuration = {
  clients: [
    {
      client_id: 'svc-reader',
      client_secret: 'reader-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: 'api:read',
    },
    {
      client_id: 'svc-writer',
      client_secret: 'writer-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: 'api:read api:write',
    },
    {
      // Authenticates with client_secret_post only (tests/tests/client_credentials.rs).
      client_id: 'svc-post',
      client_secret: 'post-secret',
      token_endpoint_auth_method: 'client_secret_post',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: 'api:read',
    },
    {
      // Gets no default resource: its client_credentials tokens are opaque.
      client_id: 'svc-opaque',
      client_secret: 'opaque-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: 'api:read',
    },
    {
      // The resource server of OPAQUE_RESOURCE: it only introspects (features.introspection).
      client_id: INTROSPECTOR,
      client_secret: 'introspect-secret',
      grant_types: [],
      redirect_uris: [],
      response_types: [],
    },
    {
      // Confidential client for the authorization code flow (browser login tests).
      client_id: 'web-app',
      client_secret: 'web-secret',
      redirect_uris: APP_URLS.map((url) => `${url}/auth/callback`),
      post_logout_redirect_uris: APP_URLS.map((url) => `${url}/`),
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      scope: 'openid profile email offline_access api:read api:write',
    },
    // One confidential client per single sign-on relying party, with back-channel logout.
    ...WEB_APPS.map(({ clientId, clientSecret, appUrl, requirePar }) => ({
      client_id: clientId,
      // RFC 9126: this client's authorization requests must be pushed (tests/tests/par.rs).
      require_pushed_authorization_requests: requirePar,
      client_secret: clientSecret,
      redirect_uris: [`${appUrl}/auth/callback`],
      post_logout_redirect_uris: [`${appUrl}/`],
      backchannel_logout_uri: `${appUrl}${BACKCHANNEL_LOGOUT_PATH}`,
      backchannel_logout_session_required: true,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      scope: 'openid profile email offline_access api:read api:write',
    })),
  ],
  // OAuth scopes of the API must be known to the OP so that clients may register them.
  scopes: ['openid', 'offline_access', 'api:read', 'api:write'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  // The devInteractions login page accepts any login: the account id is the login typed in,
  // and its claims are derived from it.
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          email: `${sub}@example.com`,
          email_verified: true,
          name: `User ${sub}`,
          preferred_username: sub,
        };
      },
    };
  },
  ttl: {
    AccessToken(ctx, token, client) {
      if (CODE_FLOW_CLIENTS.has(client?.clientId)) return AT_TTL;
      return token.resourceServer?.accessTokenTTL || 60 * 60;
    },
  },
  rotateRefreshToken: true,
  // Outgoing requests. oidc-provider passes its own undici dispatcher, which refuses to connect
  // to special-use addresses (SSRF protection), loopback included; the relying parties of the
  // tests are on loopback by design, so deliveries to their *registered* back-channel logout
  // URIs go through Node's default dispatcher, and each delivery is logged with the answer's
  // status and Cache-Control. Every other request keeps the protection.
  fetch(url, options) {
    const clientId = BACKCHANNEL_CLIENTS.get(String(url));
    if (clientId === undefined) return globalThis.fetch(url, options);
    const direct = { ...options };
    delete direct.dispatcher;
    return globalThis.fetch(url, direct).then((response) => {
      const cacheControl = response.headers.get('cache-control') ?? '-';
      process.stdout.write(`BACKCHANNEL ${clientId} ${response.status} ${cacheControl}\n`);
      return response;
    }, (err) => {
      process.stdout.write(`BACKCHANNEL ${clientId} error ${err.cause?.code ?? err.name}\n`);
      throw err;
    });
  },
  jwks: loadKeys(),
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: {
    // Back-Channel Logout 1.0: on logout the provider POSTs a logout token to the
    // backchannel_logout_uri of every client of the ended session.
    backchannelLogout: { enabled: true },
    clientCredentials: { enabled: true },
    // RFC 7662: only the resource server client may introspect (an allow-list).
    introspection: {
      enabled: true,
      allowedPolicy(ctx, client) {
        return client.clientId === INTROSPECTOR;
      },
    },
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource(ctx, client, oneOf) {
        if (oneOf) return oneOf;
        if (client?.clientId === 'svc-opaque') return undefined;
        return API_RESOURCE;
      },
      useGrantedResource() {
        return true;
      },
      getResourceServerInfo(ctx, resourceIndicator) {
        const rs = resourceServers.get(resourceIndicator);
        if (!rs) throw new errors.InvalidTarget();
        return {
          scope: rs.scope,
          audience: resourceIndicator,
          accessTokenFormat: rs.accessTokenFormat ?? 'jwt',
          ...(rs.accessTokenFormat === 'opaque' ? {} : { jwt: { sign: { alg: 'RS256' } } }),
        };
      },
    },
  },
};

// --- App-issued tokens (tests/tests/token_service.rs) ----------------------------------------
// The token-service example's server logs users in with its own confidential client; the CLI
// receives the code on its loopback redirect URI and hands it to the server, or the server
// runs the device flow (RFC 8628; enabled in the command-line login block) and the CLI only
// shows the user code. Accounts can be disabled through a loopback-only admin route
// (`POST /test/accounts/<id>/disable`): a disabled account is not found any more, so its
// refresh_token grants fail with invalid_grant.
const TOKEN_SERVICE_REDIRECT_URI = 'http://127.0.0.1:8976/callback';
const DISABLED_ACCOUNTS = new Set();
configuration.clients.push({
  client_id: 'token-service',
  client_secret: 'token-service-secret',
  redirect_uris: [TOKEN_SERVICE_REDIRECT_URI],
  grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
  response_types: ['code'],
  scope: 'openid profile offline_access',
});
{
  const findAccount = configuration.findAccount;
  configuration.findAccount = async (ctx, sub, token) => (
    DISABLED_ACCOUNTS.has(sub) ? undefined : findAccount(ctx, sub, token)
  );
}
// Answers the admin route (true) or leaves the request to the provider (false).
function testAdmin(req, res) {
  const match = /^\/test\/accounts\/([^/]+)\/disable$/.exec(req.url ?? '');
  if (!match) return false;
  const loopback = ['127.0.0.1', '::1', '::ffff:127.0.0.1'].includes(req.socket.remoteAddress);
  if (req.method !== 'POST' || !loopback) {
    res.writeHead(req.method !== 'POST' ? 405 : 403).end();
    return true;
  }
  DISABLED_ACCOUNTS.add(decodeURIComponent(match[1]));
  res.writeHead(204).end();
  return true;
}
// --- end of app-issued tokens ------------------------------------------------------------------

// --- Command-line login (tests/tests/cli_login.rs) --------------------------------------------
// A public native client (RFC 8252): no secret, PKCE; as application_type 'native' its
// loopback redirect URI http://127.0.0.1/callback matches any port. The device flow (RFC 8628,
// user code entered at /device) and token revocation (RFC 7009, /token/revocation) are on.
configuration.clients.push({
  client_id: 'cli',
  application_type: 'native',
  token_endpoint_auth_method: 'none',
  redirect_uris: ['http://127.0.0.1/callback'],
  grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
  response_types: ['code'],
  scope: 'openid profile offline_access',
});
configuration.features.deviceFlow = { ...configuration.features.deviceFlow, enabled: true };
configuration.features.revocation = { enabled: true };
// --- end of command-line login ----------------------------------------------------------------

// --- Token exchange (tests/tests/token_exchange.rs) -------------------------------------------
// RFC 8693, which oidc-provider does not implement: registered below with
// provider.registerGrantType. `obo-app` is a confidential code-flow client whose users get
// opaque access tokens (it has no default resource, so they are AccessTokens stored by the
// provider); it exchanges such a token for an RFC 9068 JWT access token of one of the
// resource servers above (API_RESOURCE…), for the same user. The handler looks the subject
// token up as an AccessToken (unknown, expired or revoked: invalid_grant), requires it to be
// a user's token issued to a client on EXCHANGE_SUBJECT_CLIENTS (an allow-list) whose account
// still exists, and issues a token that lives at most as long as the subject token.
const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const OBO_CLIENT = 'obo-app';
const EXCHANGE_SUBJECT_CLIENTS = new Set([OBO_CLIENT]);
configuration.clients.push({
  client_id: OBO_CLIENT,
  client_secret: 'obo-secret',
  redirect_uris: ['http://127.0.0.1:8977/callback'],
  grant_types: ['authorization_code', 'refresh_token', TOKEN_EXCHANGE_GRANT],
  response_types: ['code'],
  scope: 'openid profile api:read',
});
{
  const { defaultResource } = configuration.features.resourceIndicators;
  configuration.features.resourceIndicators.defaultResource = (ctx, client, oneOf) => (
    client?.clientId === OBO_CLIENT ? oneOf : defaultResource(ctx, client, oneOf)
  );
}
// The acting client of an exchanged token, as the RFC 8693 §4.1 `act` claim.
{
  const { extraTokenClaims } = configuration;
  configuration.extraTokenClaims = async (ctx, token) => {
    const extra = await extraTokenClaims?.(ctx, token);
    return token.gty === 'token_exchange' ? { ...extra, act: { sub: token.clientId } } : extra;
  };
}
async function tokenExchange(ctx) {
  const { provider, client, params } = ctx.oidc;
  if (!params.subject_token) throw new errors.InvalidRequest('missing required parameter subject_token');
  if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest('subject_token_type must be the access token type');
  }
  if (params.requested_token_type !== undefined && params.requested_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest('only access tokens are issued');
  }
  const subject = await provider.AccessToken.find(params.subject_token);
  if (!subject || subject.isExpired) throw new errors.InvalidGrant('subject token is invalid, expired or revoked');
  if (!EXCHANGE_SUBJECT_CLIENTS.has(subject.clientId) || !subject.accountId) {
    throw new errors.InvalidGrant('subject token is not a user token of a client whose tokens may be exchanged');
  }
  const account = await configuration.findAccount(ctx, subject.accountId, subject);
  if (!account) throw new errors.InvalidGrant('the subject token\'s user is gone');
  const targets = [params.resource, params.audience].filter(Boolean);
  if (targets.length !== 1) throw new errors.InvalidTarget('exactly one resource or audience is required');
  const rs = await configuration.features.resourceIndicators.getResourceServerInfo(ctx, targets[0], client);
  const allowed = new Set(rs.scope.split(' ').filter((s) => client.scope?.split(' ').includes(s)));
  const requested = (params.scope ?? '').split(' ').filter(Boolean);
  if (requested.some((s) => !allowed.has(s))) throw new errors.InvalidScope('requested scope is not allowed');
  const token = new provider.AccessToken({
    accountId: subject.accountId,
    client,
    grantId: subject.grantId,
    gty: 'token_exchange',
    scope: requested.join(' ') || undefined,
    expiresIn: Math.min(rs.accessTokenTTL ?? 3600, subject.remainingTTL),
  });
  token.resourceServer = {
    ...rs,
    identifier: () => targets[0],
  };
  ctx.oidc.entity('Account', account);
  ctx.oidc.entity('AccessToken', token);
  const value = await token.save();
  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: token.expiration,
    scope: token.scope,
  };
}
function registerTokenExchange(provider) {
  provider.registerGrantType(TOKEN_EXCHANGE_GRANT, tokenExchange, [
    'subject_token', 'subject_token_type', 'requested_token_type', 'resource', 'audience', 'scope',
  ]);
}
// --- end of token exchange --------------------------------------------------------------------

const server = createServer();

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (process.env.EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  process.stdin.resume();
}

server.on('error', (err) => {
  console.error(`server error: ${err.message}`);
  process.exit(1);
});

server.listen(PORT, HOST, () => {
  const { port } = server.address();
  const issuer = `http://localhost:${port}`;
  const provider = new Provider(issuer, configuration);
  registerTokenExchange(provider);
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  provider.on('grant.success', (ctx) => {
    const { oidc } = ctx;
    const account = oidc.entities.Account?.accountId
      ?? oidc.entities.RefreshToken?.accountId
      ?? oidc.entities.AuthorizationCode?.accountId
      ?? '-';
    process.stdout.write(`GRANT ${oidc.params.grant_type} ${oidc.client?.clientId ?? '-'} ${account}\n`);
  });
  provider.on('backchannel.error', (ctx, err, client) => {
    console.error(`backchannel.error ${client.clientId}: ${err.message}`);
  });
  const callback = provider.callback();
  server.on('request', (req, res) => testAdmin(req, res) || callback(req, res));
  process.stdout.write(`READY ${issuer}\n`);
});
