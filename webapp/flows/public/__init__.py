"""The read-only pages behind a share link (``/s/<token>/``), for people without an account."""
