"""Editing together in two real browsers: alice and bob, her team's editor, on a team flow.

Each sees the other present; saves from the same base give one new version and one
banner, never an overwrite; a teammate's save updates a clean canvas in place, and a
dirty one gets the banner, where "Save mine as a copy" makes a new flow.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Server, log_in, pause
from tests.e2e.test_runs import TIMEOUT_MS, flow_document, start_run, streamed_text
from tests.support.wait import wait_for
from webapp.flows import services
from webapp.flows.models import Flow
from webapp.teams.models import Membership, Role, Team

READY = "() => document.documentElement.dataset.canvas === 'ready'"


def flow_state(server: Server, flow_id: int) -> tuple[int, int, str]:
    """(version, number of versions, the newest version's flow name) from the database."""

    def state() -> tuple[int, int, str]:
        flow = Flow.objects.get(pk=flow_id)
        return flow.version, flow.versions.count(), flow.current().graph["graph"]["name"]

    return server.orm(state)


@pytest.fixture
def team_flow(server: Server) -> tuple[str, str, int]:
    """A flow of alice's team, where bob is an editor."""
    suffix = uuid.uuid4().hex[:6]
    alice = server.create_user(f"alice_{suffix}")
    bob = server.create_user(f"bob_{suffix}")

    def create() -> int:
        users = get_user_model().objects
        owner, editor = users.get(username=alice), users.get(username=bob)
        team = Team.objects.create(name="Research")
        Membership.objects.create(team=team, user=owner, role=Role.OWNER)
        Membership.objects.create(team=team, user=editor, role=Role.EDITOR)
        graph = services.starter_graph("Team flow")
        return services.create(owner, "Team flow", graph, team=team).pk

    return alice, bob, server.orm(create)


@pytest.fixture
def two_pages(browser: Browser) -> Iterator[tuple[Page, Page, list[str]]]:
    errors: list[str] = []
    contexts = [browser.new_context(viewport={"width": 1280, "height": 800}) for _ in range(2)]
    pages = [context.new_page() for context in contexts]
    for page in pages:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pages[0], pages[1], errors
    for context in contexts:
        context.close()
    assert errors == []


def open_editor(page: Page, server: Server, username: str, flow_id: int) -> None:
    log_in(page, server, username)
    page.goto(f"{server.url}/flows/{flow_id}/")
    page.wait_for_function(READY)


def rename(page: Page, name: str) -> None:
    page.get_by_test_id("flow-name").fill(name)
    expect(page.get_by_test_id("dirty")).to_be_visible()


def present(page: Page, username: str):
    return page.locator(f'[data-testid="present-user"][data-username="{username}"]')


def test_two_browsers_edit_one_flow_without_overwriting_each_other(
    server: Server, team_flow: tuple[str, str, int], two_pages: tuple[Page, Page, list[str]]
) -> None:
    alice, bob, flow_id = team_flow
    alice_page, bob_page, _ = two_pages
    open_editor(alice_page, server, alice, flow_id)
    open_editor(bob_page, server, bob, flow_id)

    # Each sees the other, and not themselves.
    expect(present(alice_page, bob)).to_be_visible()
    expect(present(bob_page, alice)).to_be_visible()
    expect(present(alice_page, alice)).to_have_count(0)

    # Both edit version 1 and save at about the same moment.
    rename(alice_page, "Alice's version")
    rename(bob_page, "Bob's version")
    alice_page.get_by_test_id("save").click()
    bob_page.get_by_test_id("save").click()
    banner = "[data-testid='collab-banner']"

    def banners() -> list[Page]:
        return [page for page in (alice_page, bob_page) if page.locator(banner).count()]

    wait_for(banners, timeout=10, interval=0.1, message="a banner", sleep=pause(alice_page))
    # Give a second banner, were there one, the time to show up.
    alice_page.wait_for_timeout(500)
    shown = banners()
    assert len(shown) == 1, "exactly one of the two saves is refused with the banner"
    loser = shown[0]
    winner = bob_page if loser is alice_page else alice_page
    winner_name, loser_name = (
        ("Bob's version", "Alice's version")
        if winner is bob_page
        else ("Alice's version", "Bob's version")
    )
    expect(winner.get_by_test_id("version")).to_have_text("v2")
    expect(loser.get_by_test_id("version")).to_have_text("v1")
    expect(loser.locator(banner)).to_contain_text("saved v2 while you were editing")
    assert flow_state(server, flow_id) == (2, 2, winner_name)
    # The loser's page keeps one banner: the canvas's own 409 line was replaced.
    expect(loser.get_by_test_id("conflict")).to_have_count(0)
    expect(winner.locator(banner)).to_have_count(0)

    # Saving again from the old base is still refused: nothing is overwritten.
    with loser.expect_response(lambda r: r.request.method == "PUT") as refused:
        loser.get_by_test_id("save").click()
    assert refused.value.status == 409
    expect(loser.locator(banner)).to_have_count(1)
    expect(loser.get_by_test_id("conflict")).to_have_count(0)
    assert flow_state(server, flow_id) == (2, 2, winner_name)

    # The difference: the loser's name against the winner's.
    loser.get_by_test_id("collab-diff").click()
    difference = loser.get_by_test_id("collab-difference")
    expect(difference).to_contain_text("to yours")
    expect(difference).to_contain_text(loser_name)

    # Discard mine, load theirs: the loser's canvas is version 2, clean.
    loser.get_by_test_id("collab-discard").click()
    expect(loser.get_by_test_id("version")).to_have_text("v2")
    expect(loser.get_by_test_id("flow-name")).to_have_value(winner_name)
    expect(loser.get_by_test_id("dirty")).to_be_hidden()
    expect(loser.locator(banner)).to_have_count(0)

    # Alice saves again while bob has no changes: his canvas follows, without a reload.
    bob_page.evaluate("window.__sameDocument = true")
    rename(alice_page, "Alice again")
    alice_page.get_by_test_id("save").click()
    expect(alice_page.get_by_test_id("version")).to_have_text("v3")
    expect(bob_page.get_by_test_id("version")).to_have_text("v3")
    expect(bob_page.get_by_test_id("flow-name")).to_have_value("Alice again")
    expect(bob_page.get_by_test_id("dirty")).to_be_hidden()
    assert bob_page.evaluate("window.__sameDocument") is True
    expect(bob_page.locator(banner)).to_have_count(0)

    # Bob has unsaved changes when alice saves: the banner, and his work as a copy.
    rename(bob_page, "Bob's idea")
    rename(alice_page, "Alice once more")
    alice_page.get_by_test_id("save").click()
    expect(alice_page.get_by_test_id("version")).to_have_text("v4")
    expect(bob_page.locator(banner)).to_contain_text(f"{alice} saved v4 while you were editing")
    expect(bob_page.get_by_test_id("version")).to_have_text("v3")
    bob_page.get_by_test_id("collab-copy").click()
    copied = bob_page.get_by_test_id("collab-copied")
    expect(copied).to_contain_text("Bob's idea (my copy)")
    expect(bob_page.get_by_test_id("version")).to_have_text("v4")
    expect(bob_page.get_by_test_id("flow-name")).to_have_value("Alice once more")
    expect(bob_page.get_by_test_id("dirty")).to_be_hidden()

    def copy() -> tuple[str, int | None, int]:
        flow = Flow.objects.get(name="Bob's idea (my copy)")
        return flow.owner.username, flow.team_id, flow.version

    assert server.orm(copy) == (bob, None, 1)
    assert flow_state(server, flow_id) == (4, 4, "Alice once more")

    # Bob leaves: alice no longer sees him.
    bob_page.close()
    expect(present(alice_page, bob)).to_have_count(0)


def test_a_teammate_watches_a_run_live_as_its_starter_does(
    server: Server, two_pages: tuple[Page, Page, list[str]], team_flow
) -> None:
    alice, bob, flow_id = team_flow
    prompt = "Go slowly through {{ topic }}, word by word. #fake:chunk_delay=0.5"

    def save() -> None:
        flow = Flow.objects.get(pk=flow_id)
        author = get_user_model().objects.get(username=alice)
        services.save(flow, author, flow_document(prompt), flow.version)

    server.orm(save)
    alice_page, bob_page, _ = two_pages
    # Bob signs in first, so that only opening the run page stands between the start and
    # his joining (the run streams for about four seconds).
    log_in(bob_page, server, bob)
    open_editor(alice_page, server, alice, flow_id)
    run_id = start_run(alice_page)
    bob_page.goto(f"{server.url}/runs/{run_id}/")
    # Bob joined while it ran: he follows it live, token by token, like alice.
    expect(bob_page.get_by_test_id("run-status")).to_have_attribute(
        "data-status", "running", timeout=TIMEOUT_MS
    )
    expected = "fake reply: Go slowly through queues, word by word."
    for page in (alice_page, bob_page):
        expect(page.get_by_test_id("run-status")).to_have_attribute(
            "data-status", "succeeded", timeout=TIMEOUT_MS
        )
        expect(page.get_by_test_id("outputs")).to_contain_text(expected)
    full = expected + " #fake:chunk_delay=0.5"
    assert [streamed_text(page, "write") for page in (alice_page, bob_page)] == [full, full]
