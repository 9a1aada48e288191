"""Editing a flow together: who else has it open (``presence.py``, over the flow socket in
``consumers.py``), and what the editor shows when a teammate saves first (``views.py``)."""
