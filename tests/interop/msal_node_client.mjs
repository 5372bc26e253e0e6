// MSAL Node (@azure/msal-node) client credentials against an OIDC authority, as an application
// would configure it: protocolMode "OIDC", discovery only (no authorityMetadata), the resource as
// `<resource>/.default`. Config (a JSON file, argv[2]): authority, clientId, scopes, calls, and
// either clientSecret or clientCertificate {thumbprintSha256, privateKey, x5c}.
// Prints one JSON object: the MSAL version and, per call, the result or the error.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { ConfidentialClientApplication } from "@azure/msal-node";

const require = createRequire(import.meta.url);
const version = require("@azure/msal-node/package.json").version;
const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const auth = {
  clientId: config.clientId,
  authority: config.authority,
  knownAuthorities: [new URL(config.authority).host],
};
if (config.clientSecret) auth.clientSecret = config.clientSecret;
if (config.clientCertificate) auth.clientCertificate = config.clientCertificate;
// MSAL's own log (no PII) goes to stderr, which the test shows when a call fails.
// msal-node 7 reads protocolMode from `system` (earlier versions from `auth`).
const system = {
  protocolMode: "OIDC",
  loggerOptions: { logLevel: 3, piiLoggingEnabled: false, loggerCallback: (_, message) => console.error(message) },
};
const app = new ConfidentialClientApplication({ auth, system });
const calls = [];
for (let i = 0; i < (config.calls ?? 1); i++) {
  try {
    const result = await app.acquireTokenByClientCredential({ scopes: config.scopes });
    calls.push({ accessToken: result.accessToken, fromCache: result.fromCache, scopes: result.scopes });
  } catch (error) {
    calls.push({ error: String(error.errorCode ?? error.name), message: String(error.errorMessage ?? error.message) });
  }
}
process.stdout.write(JSON.stringify({ version, calls }));
