"""The HTTP/REST transport: routes, handler, ASGI app, uvicorn server."""
