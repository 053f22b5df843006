"""The ``livewave`` command: with no sub-command and a display, the app; otherwise the
engine's CLI (``livewave.cli``: play headless, or render the demo where there is no audio
device). Lives in ``ui`` because the engine never imports the GUI."""
from __future__ import annotations

import os
import sys


def wants_app(argv: list[str]) -> str | None:
    """None when the app should start, else why the CLI runs instead."""
    if argv and not argv[0].startswith("-"):
        return "a sub-command"
    if argv:
        return "options of the headless player"
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and \
            os.environ.get("QT_QPA_PLATFORM", "") in ("", "xcb", "wayland"):
        return "no display"
    try:
        import PyQt6.QtWidgets  # noqa: F401
    except ImportError as exc:
        return f"PyQt6 is not installed ({exc})"
    return None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    why = wants_app(argv)
    if why is None:
        from .app import main as app_main
        return app_main([])
    if not argv:
        print(f"livewave: {why}: playing without the window (livewave --help for the options)", file=sys.stderr)
    from livewave.cli import main as cli_main
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
