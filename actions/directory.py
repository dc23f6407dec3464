"""The directory's command line (contract; all commands use DATABASE_URL):

    python -m actions.directory import PATH          HSDS/ORUK JSON (record, list, API page) or CSV template
    python -m actions.directory export [--id ID]     HSDS 3.0 JSON that imports back the same
    python -m actions.directory locate TEXT          the council for a postcode or place, as JSON
    python -m actions.directory find --near TEXT [--need CATEGORY] [--age N] [--json]
    python -m actions.directory ready                migrate; load the national seed if empty

Exit status: 0 done, 1 bad input (nothing written), 3 the place could not be told.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from actions.db import sessionmaker_for, upgrade
from actions.hsds_export import export_services
from actions.hsds_format import RejectedImportError
from actions.hsds_write import ensure_ready, import_path
from actions.locate import Located, gazetteer
from actions.models import NEEDS
from actions.services import Found, Listing, Wording, find_services, hours_text, render_all
from actions.settings import ROOT, get_settings

NOT_LOCATED = 3
BAD_INPUT = 1


def domain_wording() -> Wording:
    """Return the listing wording from domain.yml (the same words the bot uses)."""
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    return Wording(domain["responses"])


def cmd_import(args: argparse.Namespace) -> int:
    """Import one file; report each bad record and field; write nothing if any is bad."""
    try:
        report = import_path(get_settings().database_url, args.path)
    except RejectedImportError as rejected:
        for problem in rejected.problems:
            print(problem, file=sys.stderr)
        print(f"Nothing imported from {args.path}: {len(rejected.problems)} problem(s).", file=sys.stderr)
        return BAD_INPUT
    counts = f"{report.created} new, {report.updated} updated"
    print(f"Imported {report.services} service(s) from {args.path}: {counts}.")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Print services as HSDS 3.0 JSON."""
    url = get_settings().database_url
    upgrade(url)
    with sessionmaker_for(url).begin() as session:
        records = list(export_services(session, args.id))
    if args.id is not None and not records:
        print(f"No service with id {args.id!r}.", file=sys.stderr)
        return BAD_INPUT
    print(json.dumps(records[0] if args.id is not None else records, indent=2, ensure_ascii=False))
    return 0


def locate_or_explain(text: str) -> Located | None:
    """Return where the text points, or print why not (to stderr) and return None."""
    found = gazetteer(get_settings().geo_tables).locate(text)
    if isinstance(found, Located):
        return found
    print(found.message(), file=sys.stderr)
    return None


def cmd_locate(args: argparse.Namespace) -> int:
    """Print the council for a postcode or place as JSON, or explain (exit 3)."""
    found = locate_or_explain(" ".join(args.text))
    if found is None:
        return NOT_LOCATED
    print(json.dumps(found.as_json(), ensure_ascii=False))
    if found.ambiguous:
        names = ", ".join(a.name for a in found.others)
        print(f"Ambiguous: {found.matched} also covers {names}.", file=sys.stderr)
    return 0


def listing_json(item: Listing) -> dict[str, Any]:
    """Return one listing as JSON."""
    service = item.service
    return {
        "id": service.id,
        "name": service.name,
        "local": item.local,
        "phones": [
            {"number": p.number, "type": p.type, "description": p.description} for p in service.phones
        ],
        "url": service.url,
        "hours": "any time" if item.always_open else hours_text(service.schedules) or None,
        "open_now": item.open_now,
        "assured_date": service.assured_date.isoformat() if service.assured_date else None,
        "stale": item.stale,
    }


def cmd_find(args: argparse.Namespace) -> int:
    """Print local services near a place (up to 3), then national ones."""
    found = locate_or_explain(args.near) if args.near else None
    url = get_settings().database_url
    ensure_ready(url)
    with sessionmaker_for(url).begin() as session:
        result: Found = find_services(
            session,
            authority=found.authority if found else None,
            need=args.need,
            age=args.age,
            now=dt.datetime.now(dt.UTC),
        )
        if args.json:
            out = {
                "area": found.as_json() if found else None,
                "local": [listing_json(item) for item in result.local],
                "national": [listing_json(item) for item in result.national],
            }
            print(json.dumps(out, indent=2, ensure_ascii=False))
        else:
            words = domain_wording()
            if found:
                print(f"Near {found.matched}: {found.authority.name} ({found.authority.code})\n")
            if result.local:
                print(render_all(result.local, words) + "\n")
            print(render_all(result.national, words))
    return 0


def cmd_ready(_args: argparse.Namespace) -> int:
    """Migrate the database and load the national seed when the directory is empty."""
    seeded = ensure_ready(get_settings().database_url)
    print("Database ready" + (" (national services loaded)." if seeded else "."))
    return 0


def age(value: str) -> int:
    """Parse --age."""
    number = int(value)
    if not 0 <= number <= 130:
        raise argparse.ArgumentTypeError("age must be from 0 to 130")
    return number


def parser() -> argparse.ArgumentParser:
    """Return the command line parser."""
    main = argparse.ArgumentParser(prog="python -m actions.directory", description=__doc__.splitlines()[0])
    commands = main.add_subparsers(dest="command", required=True)
    p = commands.add_parser("import", help="import an HSDS/ORUK JSON file or the CSV template")
    p.add_argument("path", type=Path)
    p.set_defaults(run=cmd_import)
    p = commands.add_parser("export", help="print HSDS 3.0 JSON")
    p.add_argument("--id", help="only this service")
    p.set_defaults(run=cmd_export)
    p = commands.add_parser("locate", help="the council for a postcode or place")
    p.add_argument("text", nargs="+")
    p.set_defaults(run=cmd_locate)
    p = commands.add_parser("find", help="services near a place")
    p.add_argument("--near", default="", help="a postcode or place (may be a sentence)")
    p.add_argument("--need", choices=NEEDS)
    p.add_argument("--age", type=age)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_find)
    p = commands.add_parser("ready", help="migrate and seed if empty (every run target does this)")
    p.set_defaults(run=cmd_ready)
    return main


def main(argv: list[str] | None = None) -> int:
    """Run one command."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
