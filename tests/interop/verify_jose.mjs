// An independent verifier of the s2s issuer: npm `jose` (createRemoteJWKSet + jwtVerify) on Node.
//
//   node verify_jose.mjs ISSUER AUDIENCE COOLDOWN_MS
//
// First checks the issuer's RFC 8414 metadata and prints one JSON line: {metadata: {...}, ...}.
// Then reads one token per stdin line and answers one JSON line per token: {ok, header, payload,
// jwks_fetches} or {ok: false, code, message, jwks_fetches}. One remote key set lives as long as
// the process, the way a resource service would hold it: cached for 10 minutes, refetched on an
// unknown kid at most once per COOLDOWN_MS.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

import { createRemoteJWKSet, customFetch, decodeProtectedHeader, jwtVerify } from 'jose';

const [issuer, audience, cooldown] = process.argv.slice(2);
const joseVersion = JSON.parse(
  readFileSync(new URL('./node_modules/jose/package.json', import.meta.url), 'utf8'),
).version;

function fail(message) {
  console.log(JSON.stringify({ fatal: message, jose: joseVersion, node: process.version }));
  process.exit(1);
}

async function getJson(url) {
  const response = await fetch(url, { redirect: 'error' });
  if (response.status !== 200) fail(`${url} answered ${response.status}`);
  if (!(response.headers.get('content-type') || '').includes('application/json')) {
    fail(`${url} is not application/json`);
  }
  return response.json();
}

// RFC 8414 §3: for an issuer without a path the metadata lives at /.well-known/oauth-authorization-server.
const base = new URL(issuer);
const metadataUrl = new URL(`/.well-known/oauth-authorization-server${base.pathname.replace(/\/$/, '')}`, base);
const metadata = await getJson(metadataUrl);
// RFC 8414 §3.3: the issuer in the document must be identical to the one the URL was built from.
if (metadata.issuer !== issuer) fail(`metadata issuer ${metadata.issuer} is not ${issuer}`);
const openid = await getJson(new URL('/.well-known/openid-configuration', base));
// The OpenID document is the RFC 8414 one plus what OpenID Connect Discovery §3 requires (an
// issuer without login names the response type "none" where RFC 8414 lists none at all).
for (const [name, value] of Object.entries(metadata)) {
  if (name !== 'response_types_supported' && JSON.stringify(openid[name]) !== JSON.stringify(value)) {
    fail(`openid-configuration ${name} differs from RFC 8414 metadata`);
  }
}
for (const name of ['authorization_endpoint', 'response_types_supported', 'subject_types_supported',
  'id_token_signing_alg_values_supported']) {
  if (!(name in openid)) fail(`openid-configuration lacks ${name}`);
}
for (const name of ['token_endpoint', 'jwks_uri']) {
  const url = new URL(metadata[name]);
  if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname.replace(/\/$/, ''))) {
    fail(`${name} ${metadata[name]} is not under the issuer ${issuer}`);
  }
}
if (!metadata.grant_types_supported?.includes('client_credentials')) fail('client_credentials not advertised');
const jwks = await getJson(metadata.jwks_uri);
const privateMembers = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'];
for (const key of jwks.keys) {
  if (!key.kid) fail('a published key has no kid');
  if (privateMembers.some((m) => m in key)) fail(`published key ${key.kid} has private members`);
}
const algorithms = metadata.access_token_signing_alg_values_supported;
if (!Array.isArray(algorithms) || algorithms.length === 0) fail('no access_token_signing_alg_values_supported');

let jwksFetches = 0;
const keySet = createRemoteJWKSet(new URL(metadata.jwks_uri), {
  cacheMaxAge: 600_000,
  cooldownDuration: Number(cooldown),
  [customFetch]: (...args) => {
    jwksFetches += 1;
    return fetch(...args);
  },
});

console.log(JSON.stringify({
  jose: joseVersion,
  node: process.version,
  metadata_url: metadataUrl.href,
  metadata,
  published_kids: jwks.keys.map((k) => k.kid),
}));

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const token = line.trim();
  if (!token) continue;
  try {
    const { payload, protectedHeader } = await jwtVerify(token, keySet, {
      issuer,
      audience,
      typ: 'at+jwt',
      algorithms,
      requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
    });
    console.log(JSON.stringify({ ok: true, header: protectedHeader, payload, jwks_fetches: jwksFetches }));
  } catch (err) {
    let header = null;
    try {
      header = decodeProtectedHeader(token);
    } catch {}
    // The code and message only: jose's messages name claims, never the token.
    console.log(JSON.stringify({ ok: false, code: err.code, message: err.message, header, jwks_fetches: jwksFetches }));
  }
}
