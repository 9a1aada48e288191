"""Reading a run's events on PostgreSQL itself, where the stored text is jsonb's (its own
key order, non-ASCII unescaped): the share link's events go out byte for byte as stored,
as the API's do, and an events page counts a long log exactly without reading all of it."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.test import Client

from tests.webapp.test_api import assert_event_pages_count_without_reading_the_log
from tests.webapp.test_sharing import assert_shared_events_read_back_as_stored


def test_a_shared_runs_events_read_back_as_stored_non_ascii_included(db):
    alice = get_user_model().objects.create_user("alice", "alice@example.com")
    assert_shared_events_read_back_as_stored(Client(), alice)


def test_event_pages_count_a_long_log_without_reading_it_all(db):
    alice = get_user_model().objects.create_user("alice", "alice@example.com")
    assert_event_pages_count_without_reading_the_log(alice)
