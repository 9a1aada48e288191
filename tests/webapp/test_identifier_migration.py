"""Flows saved before node ids became identifiers get a new version that runs again."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

import graphs
from webapp.flows import services
from webapp.flows.models import FlowVersion

migration = importlib.import_module("webapp.flows.migrations.0005_identifier_node_ids")

pytestmark = pytest.mark.django_db

LEGACY = {
    "graph": {"name": "legacy"},
    "nodes": [
        {"id": "the question", "type": "input", "config": {"name": "q"}},
        {"id": "1st", "type": "template", "config": {"template": "Hi {{ q }}"}},
        {"id": "../../teams/4/delete", "type": "merge"},
        {"id": "out", "type": "output", "config": {"name": "a"}},
    ],
    "edges": [
        {"source": "the question", "target": "1st", "source_port": "value", "target_port": "q"},
        {
            "source": "1st",
            "target": "../../teams/4/delete",
            "source_port": "text",
            "target_port": "a b",
        },
        {
            "source": "../../teams/4/delete",
            "target": "out",
            "source_port": "value",
            "target_port": "value",
        },
    ],
}


def test_renaming_gives_a_document_the_engine_accepts_and_says_what_changed():
    doc, changes = migration.renamed(LEGACY)
    assert [n["id"] for n in doc["nodes"]] == [
        "the_question",
        "n_1st",
        "______teams_4_delete",
        "out",
    ]
    assert graphs.validate(graphs.load(doc)) == []
    assert "'the question' -> 'the_question'" in changes
    assert "port 'a b' -> 'a_b'" in changes
    assert migration.renamed(doc)[1] == []


def test_a_flow_with_old_ids_gets_a_new_version_and_others_are_untouched(alice):
    legacy = services.create(alice, "Legacy", services.starter_graph("Legacy"))
    FlowVersion.objects.filter(flow=legacy).update(graph=LEGACY)
    fine = services.create(alice, "Fine", services.starter_graph("Fine"))
    migration.rename_ids(apps, None)
    legacy.refresh_from_db()
    fine.refresh_from_db()
    assert legacy.version == 2 and fine.version == 1
    newest = legacy.current()
    assert newest.message.startswith("Renamed to identifiers: 'the question' -> 'the_question'")
    assert graphs.validate(graphs.load(newest.graph)) == []
    assert legacy.versions.get(number=1).graph == LEGACY
