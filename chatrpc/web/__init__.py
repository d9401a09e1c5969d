"""The browser adapter: the web app, its WebSocket session and its JSON API (aiohttp).

``chatrpc-server`` serves it beside gRPC, in the same event loop, over the same
hub and session core (see README, "The web API"). Modules: :mod:`.jsonwire`
(events as proto3 JSON, encoded once per message), :mod:`.closes` (how a session
end maps to a WebSocket close), :mod:`.security` (cookie, Origin, headers),
:mod:`.app` (routes and the WebSocket handler). The page itself is plain ES
modules under ``static/``.
"""

from .app import WebServer

__all__ = ["WebServer"]
