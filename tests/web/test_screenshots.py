"""The screenshot script keeps working: it photographs every page of a demo installation."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_screenshot_script_photographs_every_page(tmp_path, browser):
    from tests.web.make_screenshots import take

    written = take(tmp_path, browser)
    assert len(written) == 13
    for path in written:
        assert path.stat().st_size > 10_000, path  # a real picture, not a blank page
