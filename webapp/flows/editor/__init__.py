"""The flow editor: its page, the node configuration form, and what the canvas asks the
engine while you edit (``/api/editor``: ports, auto-layout)."""
