"""The server's routers, one per API: :mod:`.openai`, :mod:`.ollama`, :mod:`.search`, :mod:`.page`.

Each module has ``router(state, guarded) -> APIRouter``; :func:`obembed.server.app.create_app` includes them.
A new route goes into the router of its API (or a new module here, included in ``create_app``); it parses the
request, calls the library (or :class:`~obembed.server.state.ServerState`) and renders the answer, nothing more.
"""
