"""OAuth sign-in with clients and a browser others wrote, driven by tests/it/oauth.rs.

Scenarios (argv[1]):

- `sdk-flow`: the official MCP Python SDK's `OAuthClientProvider` against `MCP_URL`:
  discovery (401 → protected resource metadata → authorization server metadata), dynamic
  client registration, PKCE, the sign-in completed in a real headless Chromium (Playwright
  driving Debian's /usr/bin/chromium: it loads the authorize URL, types `USER_KEY`, approves),
  the token, `create_task`, then a refresh (the access token lives `ACCESS_TTL` seconds) and
  another call on the same session. Prints the tokens it ended with as JSON on its last line,
  for the Rust side's negative cases.
- `browser-sign-in`: only the browser's part, for tests/ts/oauth.mjs: signs in at `AUTH_URL`
  with `USER_KEY` and prints the URL the browser was sent back to (with `PASS_THROUGH`, the
  browser really goes there: mcp-remote's own callback server).
- `page-defences`: the sign-in page in Chromium: its CSP stops an injected inline script, a
  forged form without the page's request token is refused, a framed page does not render,
  and a wrong key gets a clear message on the page.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import sys
import urllib.parse

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from playwright.async_api import async_playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# A loopback redirect: the browser never reaches it, Playwright intercepts the request.
REDIRECT = "http://127.0.0.1:33418/callback"


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


class Memory:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def launch(p):
    return await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])


async def sign_in_through(browser, authorize_url: str, key: str) -> str:
    """Signs in and lets the browser go on to the client's own callback server (a client such
    as mcp-remote listens on loopback); the callback URL once it loaded."""
    page = await browser.new_page()
    await page.goto(authorize_url)
    await page.get_by_label("Your Handinger API key").fill(key)
    await page.get_by_role("button", name="Approve").click()
    await page.wait_for_url(lambda url: "code=" in url, timeout=30000)
    url = page.url
    await page.close()
    return url


async def sign_in_in_browser(browser, authorize_url: str, key: str) -> str:
    """Loads the sign-in page, types the key, approves; the URL the browser was sent back to."""
    page = await browser.new_page()
    back: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def catch(route):
        if not back.done():
            back.set_result(route.request.url)
        await route.fulfill(status=200, body="signed in", content_type="text/plain")

    await page.route("http://127.0.0.1:33418/**", catch)
    response = await page.goto(authorize_url)
    check(response is not None and response.status == 200, f"the sign-in page answered {response and response.status}")
    await page.get_by_label("Your Handinger API key").fill(key)
    await page.get_by_role("button", name="Approve").click()
    url = await asyncio.wait_for(back, 30)
    await page.close()
    return url


async def sdk_flow(url: str, key: str, access_ttl: float) -> None:
    storage = Memory()
    async with async_playwright() as p:
        browser = await launch(p)
        redirected: list[str] = []

        async def redirect_handler(authorize_url: str) -> None:
            redirected.append(await sign_in_in_browser(browser, authorize_url, key))

        async def callback_handler() -> AuthorizationCodeResult:
            query = urllib.parse.parse_qs(urllib.parse.urlparse(redirected[-1]).query)
            check("code" in query, f"no code in the redirect: {redirected[-1]}")
            return AuthorizationCodeResult(
                code=query["code"][0], state=query.get("state", [None])[0], iss=query.get("iss", [None])[0]
            )

        provider = OAuthClientProvider(
            server_url=url,
            client_metadata=OAuthClientMetadata(
                client_name="Python SDK test client",
                redirect_uris=[REDIRECT],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                token_endpoint_auth_method="none",
            ),
            storage=storage,
            redirect_handler=redirect_handler,
            callback_handler=callback_handler,
        )
        async with httpx2.AsyncClient(auth=provider, timeout=60) as http:
            async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
                created = await client.call_tool("create_task", {"input": "oauth question"})
                check(created.is_error is not True, str(created))
                check(storage.client is not None and storage.client.client_id.startswith("hmcp_client_"), "registered")
                first = storage.tokens
                check(first is not None and first.refresh_token, "a refresh token was issued")
                # Past the access token's life the SDK refreshes before its next request.
                await asyncio.sleep(access_ttl + 1.5)
                looked_up = await client.call_tool("get_task", {"taskId": created.structured_content["taskId"]})
                check(looked_up.is_error is not True, str(looked_up))
                second = storage.tokens
                check(second.refresh_token != first.refresh_token, "the refresh token was rotated")
                check(second.access_token != first.access_token, "a new access token")
        check(len(redirected) == 1, f"one sign-in, not {len(redirected)}")
        await browser.close()
    print(json.dumps({
        "client_id": storage.client.client_id,
        "used_refresh_token": first.refresh_token,
        "refresh_token": second.refresh_token,
        "access_token": second.access_token,
    }))


async def page_defences(url: str, base: str, key: str, wrong_key: str) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        registered = await http.post(f"{base}/register", json={"redirect_uris": [REDIRECT], "client_name": "<b>Page test</b>"})
        check(registered.status_code == 201, registered.text)
        client_id = registered.json()["client_id"]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    authorize = f"{base}/authorize?" + urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": "s1",
        "code_challenge": challenge, "code_challenge_method": "S256", "resource": url,
    })
    async with async_playwright() as p:
        browser = await launch(p)
        page = await browser.new_page()
        violations: list[str] = []
        page.on("console", lambda message: violations.append(message.text))
        response = await page.goto(authorize)
        headers = response.headers
        check("frame-ancestors 'none'" in headers.get("content-security-policy", ""), str(headers))
        check(headers.get("referrer-policy") == "no-referrer", str(headers))
        # The client's name is shown as text, marked unverified.
        check("<b>Page test</b>" in await page.inner_text("main"), await page.content())
        check("unverified" in await page.inner_text("main"), "the name is marked unverified")
        # An inline script injected into the page does not run.
        await page.evaluate(
            "() => { const s = document.createElement('script'); s.textContent = 'window.__injected = 1'; document.body.appendChild(s); }"
        )
        ran = await page.evaluate("() => window.__injected")
        check(ran is None, "an injected inline script ran despite the CSP")
        check(any("Content Security Policy" in v for v in violations), f"no CSP violation reported: {violations}")
        # The key field has a label, and focus starts on it.
        focused = await page.evaluate("() => document.activeElement && document.activeElement.id")
        check(focused == "api_key", f"focus starts on {focused!r}")

        # A wrong key: a clear message on the page, no redirect.
        await page.get_by_label("Your Handinger API key").fill(wrong_key)
        await page.get_by_role("button", name="Approve").click()
        await page.wait_for_load_state()
        check(page.url.startswith(f"{base}/authorize"), f"stayed on the page: {page.url}")
        check("did not accept this key" in await page.inner_text("main"), await page.inner_text("main"))

        # A forged form (posted from another page, without the request token) is refused.
        forged = await browser.new_page()
        await forged.set_content(
            f'<form method="post" action="{base}/authorize"><input name="api_key" value="{key}">'
            '<input name="action" value="approve"><button id="go">go</button></form>'
        )
        async with forged.expect_navigation():
            await forged.click("#go")
        body = await forged.inner_text("body")
        check("not valid here" in body, f"the forged form was not refused: {body}")

        # Framed, the page does not render.
        # The framing page is served by a real server on another loopback port, so only the
        # sign-in page's own headers can stop the frame (Chrome's local network access
        # checks keep pages from other address spaces from framing loopback by themselves).
        framing = f'<iframe id="f" src="{authorize}" width="600" height="400"></iframe>'.encode()

        async def serve_framing(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\nconnection: close\r\n"
                + f"content-length: {len(framing)}\r\n\r\n".encode()
                + framing
            )
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve_framing, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        framer = await browser.new_page()
        await framer.goto(f"http://127.0.0.1:{port}/framer")
        await framer.wait_for_timeout(1500)
        frame = framer.frames[1] if len(framer.frames) > 1 else None
        rendered = False
        if frame is not None:
            try:
                rendered = await frame.query_selector("#api_key") is not None
            except Exception:
                rendered = False
        check(not rendered, "the sign-in page rendered inside a frame")
        server.close()
        await browser.close()
    print(json.dumps({"client_id": client_id}))


async def main(scenario: str) -> None:
    url = os.environ.get("MCP_URL", "")
    key = os.environ["USER_KEY"]
    if scenario == "sdk-flow":
        await sdk_flow(url, key, float(os.environ.get("ACCESS_TTL", "2")))
    elif scenario == "browser-sign-in":
        # For another language's client: sign in at AUTH_URL, print where the browser went.
        async with async_playwright() as p:
            browser = await launch(p)
            if os.environ.get("PASS_THROUGH"):
                print(await sign_in_through(browser, os.environ["AUTH_URL"], key))
            else:
                print(await sign_in_in_browser(browser, os.environ["AUTH_URL"], key))
            await browser.close()
        return
    elif scenario == "page-defences":
        base = url.removesuffix("/mcp")
        await page_defences(url, base, key, os.environ["WRONG_KEY"])
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    print(f"{scenario}: ok", file=sys.stderr)


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1]))
    except AssertionError as failure:
        print(f"{sys.argv[1]}: FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
