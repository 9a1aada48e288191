"""Chat flows in use: conversations, the editor's chat panel, and chat links (a public
chat page at ``/c/<token>/`` and a widget other sites embed).

``models.py`` holds links, conversations and their messages; ``service.py`` the rules (what
makes a flow a chat flow, a turn, the history it gets, rate limits, allowed origins);
``stream.py`` a reply as Server-Sent Events; ``public.py`` the pages and calls behind a
link (no login), ``panel.py`` the editor's panel, ``api.py`` the links' management.
"""
