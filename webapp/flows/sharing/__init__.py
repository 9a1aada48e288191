"""Who can reach a flow: shares with people and teams, handing a flow to a new owner, and
read-only links (``service.py`` holds the rules, ``views.py`` the owner's share panel and
the recipient's answer, ``api.py`` and ``pending_api.py`` the API). The pages a link opens are
``flows/public``."""
