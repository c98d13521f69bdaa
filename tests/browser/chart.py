#!/usr/bin/env python3
"""Opens each SVG chart given in Chromium (Playwright): as an image, which a browser shows only
if the SVG is valid, and as a document of its own; saves a screenshot of each for a person to
look at, and fails if any does not render.

Usage: chart.py SCREENSHOT_DIR FILE.svg...
"""

import os
import pathlib
import sys

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("FERRY_CHROMIUM", "/usr/bin/chromium")
WAIT_MS = 20_000


def main():
    shots = pathlib.Path(sys.argv[1])
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--allow-file-access-from-files"])
        page = browser.new_page(viewport={"width": 940, "height": 1200})
        page.set_default_timeout(WAIT_MS)
        for svg in map(pathlib.Path, sys.argv[2:]):
            uri = svg.resolve().as_uri()
            # As an image, on a page beside it: a broken SVG loads with no size.
            view = svg.with_suffix(".html")
            view.write_text(f'<!doctype html><img id="chart" src="{svg.name}">')
            page.goto(view.resolve().as_uri())
            page.wait_for_function("document.getElementById('chart').complete")
            width, height = page.evaluate(
                "[document.getElementById('chart').naturalWidth,"
                " document.getElementById('chart').naturalHeight]")
            if width < 100 or height < 100:
                sys.exit(f"{svg.name} did not render as an image ({width}x{height})")
            # As a document: the browser's XML parser reports no error.
            page.goto(uri)
            errors = page.evaluate("document.getElementsByTagName('parsererror').length")
            root = page.evaluate("document.documentElement.tagName")
            if errors or root != "svg":
                sys.exit(f"{svg.name}: the browser found {errors} parse errors, root <{root}>")
            page.set_viewport_size({"width": max(width, 100), "height": max(height, 100)})
            page.screenshot(path=str(shots / f"chart-{svg.stem}.png"))
            print(f"{svg.name}: {width}x{height}, screenshot chart-{svg.stem}.png")
        browser.close()


if __name__ == "__main__":
    main()
