// A real OpenID provider (npm `oidc-provider`) for the interoperability tests.
//
//   node provider.mjs CONFIG.json
//
// CONFIG: { issuer, port, cert, key, jwks: {keys: [private JWKs]}, clients: [...],
//           resources: { "<resource indicator>": "<JWS alg>" }, account }
// The issuer URL has a path (/oidc) because MSAL refuses an authority without one; requests under
// that path go to the provider, /interaction/<uid> is an interaction that logs in `account` and
// grants what was asked (no login page: the tests only need a real ID token from a real flow).
// Serves HTTPS on 127.0.0.1 with the given certificate; prints one JSON line when listening.
import { readFileSync } from 'node:fs';
import https from 'node:https';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuerUrl = new URL(config.issuer);
const mount = issuerUrl.pathname.replace(/\/$/, '');

// MSAL asks for a resource only as `scope=<resource>/.default` (the Entra ID convention) and sends
// no `resource` parameter: map that scope onto the resource indicator. An unknown resource is an
// error (as at Entra ID), not a silent fallback to an opaque token without an audience.
function resourceFromScope(scope) {
  for (const value of (scope || '').split(' ')) {
    if (value.endsWith('/.default')) {
      const resource = value.slice(0, -'/.default'.length);
      if (!(resource in config.resources)) {
        throw new errors.InvalidTarget('unknown resource in a .default scope');
      }
      return resource;
    }
  }
  return undefined;
}

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: config.jwks,
  scopes: ['openid', 'api:read'],
  claims: { openid: ['sub'] },
  findAccount(ctx, id) {
    return { accountId: id, claims: () => ({ sub: id }) };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx) => resourceFromScope(ctx.oidc.params.scope),
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, resourceIndicator) {
        const alg = config.resources[resourceIndicator];
        if (!alg) throw new errors.InvalidTarget();
        return {
          scope: 'api:read',
          audience: resourceIndicator,
          // MSAL treats a token with less than 5 minutes left as expired: give it 15.
          accessTokenTTL: 900,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg } },
        };
      },
    },
  },
  pkce: { required: () => true },
  ttl: { AccessToken: 900, ClientCredentials: 900, IdToken: 300 },
});

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  let result;
  if (prompt.name === 'login') {
    result = { login: { accountId: config.account } };
  } else {
    const grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    grant.addOIDCScope(params.scope);
    result = { consent: { grantId: await grant.save() } };
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
const server = https.createServer(
  { cert: readFileSync(config.cert), key: readFileSync(config.key) },
  (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interaction(req, res).catch((err) => {
        console.error('interaction failed:', err);
        res.statusCode = 500;
        res.end();
      });
    } else if (req.url === mount || req.url.startsWith(`${mount}/`)) {
      req.originalUrl = req.url;
      req.url = req.url.slice(mount.length) || '/';
      callback(req, res);
    } else {
      res.statusCode = 404;
      res.end();
    }
  },
);

provider.on('server_error', (ctx, err) => console.error('server_error:', err));
provider.on('grant.error', (ctx, err) => console.error('grant.error:', err.message, err.error_description));

const version = JSON.parse(
  readFileSync(new URL('./node_modules/oidc-provider/package.json', import.meta.url), 'utf8'),
).version;

server.listen(config.port, '127.0.0.1', () => {
  console.log(JSON.stringify({ listening: config.issuer, oidc_provider: version, node: process.version }));
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
