"""Node ids and port names became identifiers (graphs.document.IDENTIFIER): a flow whose
current version has others gets a new version with them renamed, so it can be saved and run
again. Older versions and recorded runs stay as they were (versions are never changed);
pages build no URL from an id outside the set."""

import re

from django.db import migrations

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,99}")


def _identifier(name, taken):
    text = re.sub(r"[^A-Za-z0-9_-]", "_", str(name)) or "node"
    if not re.match(r"[A-Za-z_]", text):
        text = f"n_{text}"
    text = text[:90]
    candidate, n = text, 2
    while candidate in taken:
        candidate, n = f"{text}_{n}", n + 1
    taken.add(candidate)
    return candidate


def renamed(doc):
    """The document with identifiers everywhere, and the renames made ("old -> new")."""
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        return doc, []
    changes = []
    taken = {n.get("id") for n in doc["nodes"] if IDENTIFIER.fullmatch(str(n.get("id")))}
    ids = {}
    nodes = []
    for node in doc["nodes"]:
        node = dict(node) if isinstance(node, dict) else node
        if isinstance(node, dict):
            old = node.get("id")
            if not (isinstance(old, str) and IDENTIFIER.fullmatch(old)):
                ids[old] = node["id"] = _identifier(old, taken)
                changes.append(f"{old!r} -> {node['id']!r}")
            config = node.get("config")
            if isinstance(config, dict) and isinstance(config.get("flow"), dict):
                inner, inner_changes = renamed(config["flow"])
                node["config"] = {**config, "flow": inner}
                changes += [f"{node['id']}: {c}" for c in inner_changes]
        nodes.append(node)
    edges = []
    for edge in doc.get("edges") or []:
        if isinstance(edge, dict):
            edge = dict(edge)
            for end in ("source", "target"):
                if edge.get(end) in ids:
                    edge[end] = ids[edge[end]]
            for port in ("source_port", "target_port"):
                value = edge.get(port)
                if isinstance(value, str) and not IDENTIFIER.fullmatch(value):
                    edge[port] = _identifier(value, set())
                    changes.append(f"port {value!r} -> {edge[port]!r}")
        edges.append(edge)
    return {**doc, "nodes": nodes, "edges": edges}, changes


def rename_ids(apps, schema_editor):
    Flow = apps.get_model("flows", "Flow")
    FlowVersion = apps.get_model("flows", "FlowVersion")
    for flow in Flow.objects.iterator():
        current = FlowVersion.objects.filter(flow=flow, number=flow.version).first()
        if current is None:
            continue
        graph, changes = renamed(current.graph)
        if not changes:
            continue
        number = flow.version + 1
        message = "Renamed to identifiers: " + ", ".join(changes)
        FlowVersion.objects.create(
            flow=flow, number=number, graph=graph, author=None, message=message[:500]
        )
        Flow.objects.filter(pk=flow.pk).update(version=number)


class Migration(migrations.Migration):
    dependencies = [("flows", "0004_pending_shares")]

    operations = [migrations.RunPython(rename_ids, migrations.RunPython.noop)]
