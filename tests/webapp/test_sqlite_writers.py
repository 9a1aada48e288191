"""The process's SQLite writers take turns on a lock of ours (webapp/sqlite), held exactly
while a transaction is open: given back at commit, at rollback and when the connection
closes, so that no writer can keep the others waiting."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from webapp.flows import services
from webapp.flows.models import Flow
from webapp.sqlite.base import _lock_for

pytestmark = pytest.mark.django_db(transaction=True)

DOC = {
    "graph": {"name": "echo"},
    "nodes": [
        {"id": "q", "type": "input", "config": {"name": "q"}},
        {"id": "o", "type": "output", "config": {"name": "a"}},
    ],
    "edges": [{"source": "q", "target": "o", "source_port": "value", "target_port": "value"}],
}


def write_lock():
    return _lock_for(str(connection.settings_dict["NAME"]))


def on_thread(fn) -> threading.Thread:
    """`fn` on a thread with a database connection of its own, closed when it ends."""

    def body() -> None:
        try:
            fn()
        finally:
            connection.close()

    thread = threading.Thread(target=body)
    thread.start()
    return thread


def test_bobs_write_waits_for_alices_open_transaction_and_sees_what_it_committed(alice, bob):
    flow = services.create(alice, "echo", DOC)
    alice_inside, alice_may_commit, bob_inside = (threading.Event() for _ in range(3))
    held_while_open: list[bool] = []
    bob_read: list[str] = []

    def alice_renames() -> None:
        with transaction.atomic():
            Flow.objects.filter(pk=flow.pk).update(name="renamed by alice")
            held_while_open.append(write_lock().locked())
            alice_inside.set()
            alice_may_commit.wait(10)

    def bob_reads_in_a_transaction() -> None:
        alice_inside.wait(10)
        with transaction.atomic():
            bob_inside.set()
            bob_read.append(Flow.objects.get(pk=flow.pk).name)

    threads = [on_thread(alice_renames), on_thread(bob_reads_in_a_transaction)]
    assert alice_inside.wait(10)
    assert not bob_inside.wait(0.3), "bob's transaction began while alice's was open"
    alice_may_commit.set()
    for thread in threads:
        thread.join(10)
    assert held_while_open == [True]
    assert bob_read == ["renamed by alice"]
    assert not write_lock().locked()


def test_a_transaction_that_fails_rolls_back_and_gives_the_lock_back(alice):
    flow = services.create(alice, "echo", DOC)
    with pytest.raises(ValueError), transaction.atomic():
        Flow.objects.filter(pk=flow.pk).update(name="never stored")
        assert write_lock().locked()
        raise ValueError("the view failed")
    assert not write_lock().locked()
    with transaction.atomic():
        Flow.objects.filter(pk=flow.pk).update(name="stored")
    assert Flow.objects.get(pk=flow.pk).name == "stored"
    assert not write_lock().locked()


def test_a_connection_closed_inside_a_transaction_gives_the_lock_back(alice):
    flow = services.create(alice, "echo", DOC)
    with transaction.atomic():
        Flow.objects.filter(pk=flow.pk).update(name="lost with the connection")
        connection.close()
    assert not write_lock().locked()
    assert Flow.objects.get(pk=flow.pk).name == "echo"


def test_a_nested_block_keeps_the_lock_until_the_outer_one_commits(alice):
    flow = services.create(alice, "echo", DOC)
    with transaction.atomic():
        with transaction.atomic():
            Flow.objects.filter(pk=flow.pk).update(name="inner")
        assert write_lock().locked()
    assert not write_lock().locked()
