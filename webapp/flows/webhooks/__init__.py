"""A flow's webhooks: URLs that start runs when a signed request arrives."""
