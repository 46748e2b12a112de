"""Write the README's benchmark tables from bench/results/results.json.

    python bench/summary.py            # print the tables
    python bench/summary.py --write    # replace them in README.md, between the markers

So every number the README quotes comes from the one committed run of bench/run.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from run import _fmt, _ratio  # the same formatting as results.md

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def tables(results: dict[str, Any]) -> str:
    machine = results["machine"]
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items())
    load = results.get("load")
    busy = (
        f" Other work used {load['others_share']:.0%} of the machine's CPU during the run."
        if load
        else ""
    )
    shorts = {bench["id"]: bench["short"] for bench in results["benchmarks"]}
    reruns = "".join(
        f" Run again {rerun['started']}: "
        + "; ".join(shorts.get(b, b) for b in rerun["benchmarks"])
        + "."
        for rerun in results.get("reruns", [])
    )
    lines = [
        f"Run {results['started']} on {machine['cpu']} ({machine['cores']} cores), "
        f"{machine['system']}, Python {machine['python']}; {versions}. "
        f"`{results['command']}` took {results['duration']:.0f} s.{busy}{reruns} Host "
        "names are resolved through a DNS server in its own process inside a network "
        "namespace (the lab; localhost through its hosts file). Medians; the ratio is "
        "connectbyname's over stock's (the median of back-to-back pairs where the two "
        "sides ran in turn). Spreads, sample counts and how each figure was taken: "
        "[`bench/results/results.md`](bench/results/results.md).",
        "",
    ]
    for bench in results["benchmarks"]:
        rows = [
            row
            for row in bench["rows"]
            if row.get("stock")
            and row.get("adapted")
            and (bench["id"] != "scale_dead_addresses" or row["client"].endswith(", 8 dead"))
        ]
        if not rows:
            continue
        lines += [
            f"**{bench['title']}**",
            "",
            "| client | stock | connectbyname | ratio | target |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in rows:
            targets = "; ".join(
                f"{t['target']}: {'met' if t['met'] else '**missed**'}"
                for t in row.get("targets", [])
            )
            lines.append(
                f"| {row['client']} | {_fmt(row['stock']['median'], bench['unit'])} "
                f"| {_fmt(row['adapted']['median'], bench['unit'])} "
                f"| {'' if row['ratio'] is None else _ratio(row['ratio'])} | {targets} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "bench/results/results.json")
    parser.add_argument("--write", action="store_true", help="update README.md in place")
    args = parser.parse_args(argv)
    text = tables(json.loads(args.results.read_text()))
    if not args.write:
        sys.stdout.write(text)
        return 0
    readme = ROOT / "README.md"
    content = readme.read_text()
    head, start, rest = content.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        print(f"README.md has no {START} ... {END} section", file=sys.stderr)
        return 1
    readme.write_text(f"{head}{START}\n{text}{END}{tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
