"""Adding a node type is its module plus its registry line: the web app follows alone.

The type below is defined here, as it would be in ``graphs/nodes/shout.py``, and
registered in a copy of the registry, as ``graphs/nodes/__init__.py`` would list it.
Its palette entry, starting config, config form, help, per-field errors and colour all
come from what it says about itself, with no change to ``webapp/``, ``templates/`` or
``static/``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

import pytest
from django.test import Client
from pydantic import Field

from graphs.nodes import NODE_TYPES
from graphs.nodes.base import CATEGORIES, CommonConfig, FieldProblem, NodeContext, NodeType
from webapp.flows import forms, services
from webapp.flows.templatetags.node_types import node_category

ROOT = Path(__file__).parents[2]


# ---- What a new module in graphs/nodes/ holds ---------------------------------------------


class ShoutConfig(CommonConfig):
    suffix: str = Field(default="!", max_length=10, description="Added after the text.")
    times: int = Field(default=1, ge=1, le=5, description="How often the text is repeated.")
    style: Literal["upper", "title"] = Field(default="upper", description="How it shouts.")


class ShoutNode(NodeType):
    name = "shout"
    label = "Shout"
    description = "Shouts its `text`; emits `text`."
    category = "text"
    Config = ShoutConfig
    default_config = {"suffix": "!!"}

    def input_ports(self, config: ShoutConfig) -> frozenset[str]:
        return frozenset({"text"})

    def output_ports(self, config: ShoutConfig) -> frozenset[str]:
        return frozenset({"text"})

    def problems(self, config: ShoutConfig, services: object) -> list[FieldProblem]:
        if config.suffix.strip() != config.suffix:
            return [FieldProblem("suffix", "a suffix neither starts nor ends with a space")]
        return []

    async def run(self, ctx: NodeContext, config: ShoutConfig, inputs: dict) -> dict:
        text = str(inputs["text"])
        shouted = text.upper() if config.style == "upper" else text.title()
        return {"text": " ".join([shouted] * config.times) + config.suffix}


# ---- ...and its registry line -------------------------------------------------------------


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setattr(forms, "NODE_TYPES", {**NODE_TYPES, "shout": ShoutNode()})


@pytest.fixture
def flow(alice):
    return services.create(alice, "Shouting", services.starter_graph("Shouting"))


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def payload(html: str) -> dict:
    return json.loads(html.split('<script type="application/json">')[1].split("</script>")[0])


def test_the_palette_offers_it_with_its_starting_config_ports_and_colour(alice, flow, registered):
    response = client_for(alice).get(f"/flows/{flow.pk}/")
    html = response.content.decode()
    assert 'data-testid="palette-shout"' in html
    assert 'title="Shout: Shouts its `text`; emits `text`."' in html
    assert '<span class="ty-chip" data-category="text">shout</span>' in html
    data = response.context["editor_data"]
    assert data["palette"]["shout"]["config"] == {"suffix": "!!"}
    assert data["palette"]["shout"]["ports"]["inputs"] == ["text"]
    assert data["palette"]["shout"]["ports"]["outputs"] == ["text"]
    assert data["categories"]["shout"] == "text"


def test_its_form_is_generated_with_its_help(alice, flow, registered):
    html = (
        client_for(alice)
        .post(
            f"/flows/{flow.pk}/node-form/",
            {"type": "shout", "node_id": "shout1", "config": json.dumps({"suffix": "!!"})},
        )
        .content.decode()
    )
    assert '<span class="ty-chip" data-category="text" title="Shout">shout</span>' in html
    assert "Shouts its <code>text</code>; emits <code>text</code>." in html
    assert re.search(r'<input type="text" id="nf-\w+-suffix" name="f_suffix" value="!!">', html)
    assert re.search(r'name="f_times" value="1" step="1" min="1" max="5">', html)
    assert '<option value="title">title</option>' in html
    for help_text in ("Added after the text.", "How often the text is repeated."):
        assert f'<p class="help">{help_text}</p>' in html
    assert "needs attention" not in html  # its starting config is valid


def test_its_problems_land_on_their_fields(alice, flow, registered):
    def edit(**fields: str) -> str:
        body = {"type": "shout", "node_id": "shout1", "form_key": "k1", **fields}
        return client_for(alice).post(f"/flows/{flow.pk}/node-form/", body).content.decode()

    # The model's own limits first: a node whose config does not parse.
    html = edit(f_suffix=" !", f_times="9", f_style="title")
    assert 'data-testid="error-times">Input should be less than or equal to 5' in html
    assert payload(html)["valid"] is False
    # Then the type's problems(), each under the field it names.
    html = edit(f_suffix=" !")
    assert 'data-testid="error-suffix">a suffix neither starts nor ends with a space' in html
    assert payload(html)["valid"] is False
    html = edit(f_suffix="?", f_times="2")
    assert payload(html)["valid"] is True
    assert payload(html)["config"] == {"suffix": "?", "times": 2}


def test_its_category_has_a_colour_every_page_uses(registered):
    assert node_category("shout") == "text"  # the version diff's chips
    assert forms.categories()["shout"] == "text"  # every canvas: editor, versions, runs
    tokens = (ROOT / "static/css/tokens.css").read_text()
    rules = (ROOT / "static/css/editor.css").read_text()
    for category in CATEGORIES:
        assert re.search(rf"--cat-{category}: #[0-9a-f]{{6}};", tokens), category
        assert f'[data-category="{category}"] {{ --ty: var(--cat-{category}); }}' in rules
