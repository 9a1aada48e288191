"""A flow's versions: the history page, one version drawn, the diff of two, restoring one
(``service.py`` holds the rules, ``views.py`` the pages, ``api.py`` the API)."""
