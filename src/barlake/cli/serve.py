"""``lake serve``: the REST API, the admin page and queue workers in one process."""

from __future__ import annotations

import contextlib
import copy
import signal
from collections.abc import Iterator

import click

from barlake.cli.exits import EXIT_USAGE, fail, handles_errors
from barlake.cli.state import State


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="0: any free."
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(0, 64),
    help="Queue workers run in this process (0: the API only).",
)
@click.pass_obj
@handles_errors
def serve(state: State, /, host: str, port: int, workers: int) -> None:
    """Serve the REST API and admin page, with queue workers, until Ctrl-C (its URL on stdout).

    Changes need `Authorization: Bearer <token>`, the token in LAKE_API_TOKEN (or the
    variable lake.yaml's api.token_env names); another address than loopback needs one.
    """
    from barlake.api.security import check_binding, is_loopback, token_from

    lake = state.lake()
    name = lake.config.api.token_env
    token = token_from(name)
    check_binding(host, token, name)
    import uvicorn

    from barlake.api import create_app
    from barlake.api.listener import listen
    from barlake.cli.service import log_lines

    try:
        listener = listen(host, port)  # from now on clients wait in the backlog
    except OSError as exc:
        fail(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port", EXIT_USAGE)
    bound = listener.getsockname()[1]
    app = create_app(
        lake,
        token=token,
        workers=workers,
        public_reads=is_loopback(host),
        log=log_lines(json_logs=False),
    )
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"http://{shown}:{bound}/")
    if token is None:
        state.say(f"no token in {name}: the API is read-only until you set one")
    # stdout carries the URL alone: every log line, the access log too, goes to stderr.
    logs = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    logs["handlers"]["access"]["stream"] = "ext://sys.stderr"
    config = uvicorn.Config(app, log_config=logs, log_level="warning" if state.quiet else "info")
    _server_class()(config).run(sockets=[listener])


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that SIGINT and SIGTERM end it with status 0 (as
        ``lake emulate``) instead of being raised again once it has shut down."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            stops = (signal.SIGINT, signal.SIGTERM)
            previous = {s: signal.signal(s, self.handle_exit) for s in stops}
            try:
                yield
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)

    return Server
