// A real token issuer for the --oauth-issuer tests (driven by tests/it/oauth.rs): the npm
// oauth2-mock-server, which signs real RS256 JWTs and serves a real JWKS and discovery
// document. Prints `ISSUER <url>` once listening, and runs until its stdin closes.
// A client_credentials token request's `aud`, `sub` and `expired=1` (issued an hour ago)
// shape the token, so the tests can ask for exactly the token they need.
//
// Env: ISSUER_DIR (the package's directory).

import { join } from "node:path";
import { pathToFileURL } from "node:url";

const { OAuth2Server } = await import(pathToFileURL(join(process.env.ISSUER_DIR, "dist/index.mjs")).href);
const server = new OAuth2Server();
await server.issuer.keys.generate("RS256");
server.service.on("beforeTokenSigning", (token, req) => {
  token.payload.sub = req.body.sub ?? "service-account";
  if (req.body.expired === "1") {
    const now = Math.floor(Date.now() / 1000);
    token.payload.iat = now - 7200;
    token.payload.exp = now - 3600;
  }
});
await server.start(0, "127.0.0.1");
console.log(`ISSUER ${server.issuer.url}`);
process.stdin.resume();
process.stdin.on("end", async () => {
  await server.stop();
  process.exit(0);
});
