"""`lab new --from-pcap FILE`: a draft lab file from a capture (tcplab.draft does the work)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import List, Optional

import typer

from .common import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, die, out, write_out


def _copy_programs(folder: Path) -> None:  # folder: <the draft's folder>/PROGRAMS
    """The shipped labs' programs (tcpctl and its Dockerfile) beside a draft that builds its hosts from them; a
    file already there is the user's and stays."""
    from ..draft.parts import PROGRAMS
    from ..paths import LABS_DIR
    source = LABS_DIR / PROGRAMS
    try:
        folder.mkdir(exist_ok=True)
        for f in sorted(source.iterdir()):
            if f.is_file() and not (folder / f.name).exists():
                shutil.copyfile(f, folder / f.name)
    except OSError as e:
        die(EXIT_ENVIRONMENT, f"{folder}: cannot copy the programs from {source}: {e.strerror}")


def register(app: typer.Typer) -> None:
    """Add `lab new` to `app`."""
    app.command("new")(new_cmd)


def new_cmd(
    from_pcap: Path = typer.Option(..., "--from-pcap", metavar="FILE",
                                   help="A capture (pcap or pcapng) to draft the lab from."),
    connection: Optional[List[str]] = typer.Option(
        None, "--connection", metavar="N", help="The connection to replay, by its number (repeat it, or 'all'); "
                                   "without it a capture of several connections lists them."),
    out_file: Optional[Path] = typer.Option(None, "--out", metavar="PATH",
                                            help="Where to write (default ./<name>.yaml)."),
) -> None:
    """Write a draft lab that replays a capture's connection(s); '# could not infer' marks its guesses."""
    from ..draft import CaptureError, draft_lab, list_connections, read_capture_file
    from ..model import LabError
    try:
        capture = read_capture_file(from_pcap)
    except CaptureError as e:
        die(EXIT_BAD_INPUT, f"--from-pcap {from_pcap}: {e}")
    total = len(capture.connections)
    chosen: list[int] = []
    for value in connection or []:
        if value == "all":
            chosen.extend(range(1, total + 1))
        elif value.isdigit() and 1 <= int(value) <= total:
            chosen.append(int(value))
        else:
            die(EXIT_BAD_INPUT, f"--connection {value}: no such connection (the capture has 1 to {total}, or all)")
    if not chosen:
        if total > 1:
            out.print(f"{from_pcap}: {total} connections; choose with --connection N (or all):", markup=False)
            for line in list_connections(capture):
                out.print(f"  {line}", markup=False)
            raise typer.Exit(EXIT_BAD_INPUT)
        chosen = [1]
    try:
        draft = draft_lab(capture, sorted(set(chosen)), from_pcap.name)
    except CaptureError as e:
        die(EXIT_BAD_INPUT, f"--from-pcap {from_pcap}: {e}")
    except LabError as e:  # a lab's own limits (steps, expectations): too much of the capture at once
        die(EXIT_BAD_INPUT, f"--from-pcap {from_pcap}: no valid lab from these connections ({e}); "
                            "choose fewer with --connection")
    target = out_file if out_file is not None else Path(f"{draft.name}.yaml")
    if target.is_dir():
        die(EXIT_BAD_INPUT, f"--out {target}: is a directory; name the file")
    write_out(target, draft.text)
    if draft.programs:
        _copy_programs(target.parent / "programs")
    unsure = draft.text.count("could not infer")
    out.print(f"wrote {target}: a draft of connection{'s' if len(draft.connections) > 1 else ''} "
              f"{', '.join(map(str, draft.connections))}; {unsure} comments say what could not be inferred",
              markup=False)
    if draft.programs:
        out.print(f"its hosts build {target.parent / 'programs'}/ (tcpctl, copied from the project's labs)",
                  markup=False)
