"""A hub served over real HTTP, fed by the simulators, and a real headless Chromium looking at it.

Chromium is Debian's (`/usr/bin/chromium`), driven by Playwright with `executable_path`: no browser
download. Screenshots go to `test-artifacts/` (or `SMARTHUB_TEST_ARTIFACTS`) for people to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from hub.app import Hub
from hub.config import Settings, parse_mqtt_url
from simulators.community import Community, build, registry_of
from simulators.runner import LiveRun
from tests.support.hub_fixtures import ADMIN_TOKEN, eventually
from tests.support.mqtt_fixtures import DEVICE_PASSWORD, DEVICE_USER, Broker
from tests.support.processes import free_port, require_binary

STEP_S = 30.0
"""No step of a browser test (a hub stopping or starting, a page answering) may take longer: a hang then names
the step instead of running into the whole test's timeout."""
ARTIFACTS = Path(os.environ.get("SMARTHUB_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]
"""Headless as root on a machine with no internet: without the last ones Chromium keeps dialling out."""
T = TypeVar("T")


@dataclass
class ServedHub:
    """A hub with its HTTP server on a loopback port; `restart()` stops it and starts a new one there."""

    settings: Settings
    community: Community | None
    """Added to the hub's registry when given (else the hub reads SMARTHUB_REGISTRY)."""
    port: int
    hub: Hub | None = None
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    _serving: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        await within(STEP_S, "the hub starting", self._start())

    async def _start(self) -> None:
        self.hub = await self._stack.enter_async_context(Hub(self.settings))
        if self.community is not None:
            self.hub.registry.add(registry_of(self.community))
        server = self.hub.http_server("127.0.0.1", self.port)
        self._serving = asyncio.create_task(server.serve())
        self._server = server
        await eventually(lambda: server.started and self.hub is not None and self.hub.mqtt.connected, timeout=15,
                         what="hub to serve HTTP and connect to MQTT")

    async def stop(self) -> None:
        await within(STEP_S, "the hub stopping", self._stop())

    async def _stop(self) -> None:
        if self._serving is not None:
            self._server.should_exit = True
            await asyncio.gather(self._serving, return_exceptions=True)
            self._serving = None
        await self._stack.aclose()
        self._stack = contextlib.AsyncExitStack()
        self.hub = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def api(self, token: str = ADMIN_TOKEN) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Bearer {token}"})


@contextlib.asynccontextmanager
async def served_hub(settings: Settings, broker: Broker, devices: int = 40, speed: float = 30,
                     seed: int = 5) -> AsyncIterator[ServedHub]:
    """A hub on real HTTP with a simulated community of `devices` talking to it through `broker`.

    At `speed` the community lives an hour in two minutes, so every panel has something to show soon.
    """
    community = build("sunshine", seed, devices)
    served = ServedHub(settings, community, free_port())
    await served.start()
    live = LiveRun(community, parse_mqtt_url(broker.url(DEVICE_USER, DEVICE_PASSWORD)), settings.root, speed)
    simulating = asyncio.create_task(live.run(int(time.time() * 1000), None))
    try:
        yield served
    finally:
        live.stop()
        simulating.cancel()
        await asyncio.gather(simulating, return_exceptions=True)
        await live.close()
        await served.stop()


@dataclass
class Screen:
    """One browser page on the big screen, collecting what went wrong in it."""

    page: Any
    errors: list[str]

    async def state(self) -> dict[str, Any]:
        return await within(STEP_S, "the page reporting its state",  # type: ignore[no-any-return]
                            self.page.evaluate("window.screenState"))

    async def wait_ready(self, timeout_s: float = 30, panels: tuple[str, ...] = ()) -> None:
        """Wait until every panel (or each of `panels`) has drawn with data once.

        On timeout, say which panels stayed empty and why: a small community at night may see no car
        for half an hour, so a test that needs only some panels names them.
        """
        from playwright.async_api import TimeoutError as PageTimeout

        done = ("window.screenState && window.screenState.ready" if not panels else
                " && ".join(f"!!document.querySelector('[data-panel={p}][data-filled]')" for p in panels))
        try:
            await self.page.wait_for_function(done, timeout=timeout_s * 1000)
        except PageTimeout:
            state = await self.page.evaluate("window.screenState || null")
            empty = await self.page.locator("[data-panel]:not([data-filled])").evaluate_all(
                "sections => sections.map(s => s.dataset.panel)")
            raise AssertionError(f"the screen was not ready after {timeout_s} s: panels never drawn {empty}; "
                                 f"page errors {self.errors}; state {state}") from None

    async def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"bigscreen-{name}.png"
        await self.page.wait_for_timeout(1_000)  # let the charts finish their entry animation
        await self.page.screenshot(path=str(path))
        return path


@contextlib.asynccontextmanager
async def chromium(width: int = 1920, height: int = 1080) -> AsyncIterator[Any]:
    """A fresh headless Debian Chromium; yields a function that opens a `Screen` at a URL."""
    executable = require_binary("chromium", "chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            async def open_screen(url: str) -> Screen:
                page = await browser.new_page(viewport={"width": width, "height": height})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
                page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}")
                        if m.type == "error" else None)
                await page.goto(url)
                return Screen(page, errors)

            yield open_screen
        finally:
            await within(STEP_S, "Chromium closing", browser.close())


async def within(seconds: float, what: str, step: Awaitable[T]) -> T:
    """Await `step`, failing with its name after `seconds`."""
    try:
        return await asyncio.wait_for(step, seconds)
    except TimeoutError:
        raise AssertionError(f"{what} took more than {seconds:g} s") from None


@pytest.fixture
def playwright_available() -> None:
    """Skip (fail under CI) when the Playwright package is missing."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        from tests.support.processes import IN_CI

        if IN_CI:
            pytest.fail("playwright is not installed: pip install -e '.[test]' (bash .ci/run does)")
        pytest.skip("playwright is not installed")
