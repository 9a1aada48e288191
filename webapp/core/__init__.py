"""Helpers every app's pages share: what the canvas is started with, values shown as text."""
