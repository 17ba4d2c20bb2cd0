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
//   AT_TTL        lifetime in seconds of the access tokens of `web-app` (default 3600)
//   JWKS_FILE     optional path of a private JWKS kept across restarts
//   ROTATE_KEYS=1 generate a new RSA key and put it *first* (it signs from now on);
//                 keys already in JWKS_FILE stay published after it
//
// Prints exactly one line `READY <issuer>` on stdout once it accepts connections, one line
// `GRANT <grant_type> <client_id> <account id or ->` per successful token request, and
// exits with status 0 on SIGTERM/SIGINT, or when stdin is closed if EXIT_ON_STDIN_EOF=1.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number.parseInt(process.env.PORT ?? '4000', 10);
const API_RESOURCE = process.env.API_RESOURCE || 'http://localhost:3000/api';
const OTHER_RESOURCE = process.env.OTHER_RESOURCE || 'http://localhost:3999/other-api';
const APP_URLS = (process.env.APP_URL || 'http://localhost:3000')
  .split(/\s+/)
  .filter(Boolean)
  .map((url) => url.replace(/\/+$/, ''));
const AT_TTL = Number.parseInt(process.env.AT_TTL || '3600', 10) || 3600;
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
      // Gets no default resource: its client_credentials tokens are opaque.
      client_id: 'svc-opaque',
      client_secret: 'opaque-secret',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: 'api:read',
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
      if (client?.clientId === 'web-app') return AT_TTL;
      return token.resourceServer?.accessTokenTTL || 60 * 60;
    },
  },
  jwks: loadKeys(),
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: {
    clientCredentials: { enabled: true },
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
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
};

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
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  provider.on('grant.success', (ctx) => {
    const { oidc } = ctx;
    const account = oidc.entities.Account?.accountId
      ?? oidc.entities.RefreshToken?.accountId
      ?? oidc.entities.AuthorizationCode?.accountId
      ?? '-';
    process.stdout.write(`GRANT ${oidc.params.grant_type} ${oidc.client?.clientId ?? '-'} ${account}\n`);
  });
  server.on('request', provider.callback());
  process.stdout.write(`READY ${issuer}\n`);
});
