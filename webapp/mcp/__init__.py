"""The MCP server at ``/mcp``: a user's published flows as tools (README, "The MCP server").

``endpoint.py`` is the HTTP side (origin, token, the SDK's transport, its lifecycle under
Daphne), ``server.py`` the SDK server and its two handlers, ``tools.py`` what a user's
tools are and how a call starts a run.
"""
