"""The "does nothing" reference: a bare reverse proxy in front of the mock upstream.

One pooled aiohttp session forwards each request body and streams the answer
back; no auth, no accounting, no traces. pilothouse's added latency is
reported as a ratio to this proxy's, measured in the same run, because that
ratio moves far less than absolute times on a shared machine.

Run: ``python benchmarks/bare_proxy.py --port 9300 --upstream http://127.0.0.1:9100``
"""

from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web

HOP = {"content-length", "transfer-encoding", "connection", "keep-alive", "host"}


def build_app(upstream: str) -> web.Application:
    app = web.Application()

    async def open_session(app: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        app["session"] = aiohttp.ClientSession(upstream, connector=connector)

    async def close_session(app: web.Application) -> None:
        await app["session"].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        session: aiohttp.ClientSession = request.app["session"]
        headers = {"content-type": request.headers.get("content-type", "application/json")}
        async with session.post(request.path, data=body, headers=headers) as upstream_resp:
            resp = web.StreamResponse(status=upstream_resp.status)
            for name, value in upstream_resp.headers.items():
                if name.lower() not in HOP:
                    resp.headers[name] = value
            await resp.prepare(request)
            async for chunk in upstream_resp.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    app.router.add_post("/v1/chat/completions", forward)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    web.run_app(build_app(args.upstream), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
