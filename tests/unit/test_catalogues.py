"""The shipped catalogues are complete and sound: `pybabel extract` over the code and
templates finds no string a catalogue lacks (or leaves untranslated or fuzzy), no
translation breaks or drops a placeholder, and each committed .mo is its .po compiled."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "newsletter" / "translations"
CATALOGUES = sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"))
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|%[sd]")


def extracted(tmp_path: Path) -> Catalog:
    pot = tmp_path / "messages.pot"
    subprocess.run([str(Path(sys.executable).parent / "pybabel"), "-q", "extract",
                    "-F", "babel.cfg", "-k", "_", "-k", "gettext", "-k", "ngettext:1,2",
                    "--no-location", "-o", str(pot), "."], cwd=ROOT, check=True)
    with pot.open("rb") as file:
        return read_po(file)


def placeholders(text: str) -> list[str]:
    return sorted(match.group(0) for match in PLACEHOLDER.finditer(text))


def problems(template: Catalog, catalogue: Catalog) -> list[str]:
    """What is wrong with ``catalogue`` against the extracted ``template``."""
    found = []
    for message in template:
        if not message.id:
            continue
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        mine = catalogue.get(message.id)
        if mine is None:
            found.append(f"missing: {key!r}")
            continue
        if mine.fuzzy:
            found.append(f"fuzzy: {key!r}")
        strings = mine.string if isinstance(mine.string, tuple) else (mine.string,)
        sources = message.id if isinstance(message.id, tuple) else (message.id,)
        wanted = set(placeholders(sources[-1])) | set(placeholders(sources[0]))
        for string in strings:
            if not string:
                found.append(f"untranslated: {key!r}")
            elif set(placeholders(string)) - wanted or (
                    set(placeholders(sources[0])) - {"%(num)d"}) - set(placeholders(string)):
                found.append(f"placeholders differ: {key!r} -> {string!r}")
    known = {message.id for message in template}
    found += [f"not in the code any more: {message.id!r}" for message in catalogue
              if message.id and message.id not in known]
    return found


def test_french_ships():
    assert [path.parent.parent.name for path in CATALOGUES] == ["fr"]


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda path: path.parent.parent.name)
def test_every_extracted_string_is_translated_with_its_placeholders(path, tmp_path):
    with path.open("rb") as file:
        catalogue = read_po(file)
    assert problems(extracted(tmp_path), catalogue) == []


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda path: path.parent.parent.name)
def test_the_committed_mo_is_the_po_compiled(path):
    def as_tuple(value):
        return tuple(value) if isinstance(value, list | tuple) else value

    def entries(catalogue: Catalog) -> dict:
        return {as_tuple(message.id): as_tuple(message.string)
                for message in catalogue if message.id}

    with path.open("rb") as file:
        source = entries(read_po(file))
    with path.with_suffix(".mo").open("rb") as file:
        compiled = entries(read_mo(file))
    assert compiled == source, "run: pybabel compile -d newsletter/translations"


def test_the_check_catches_a_broken_or_missing_translation():
    template = Catalog()
    template.add("Welcome to %(site_name)s", flags=["python-format"])
    template.add(("%(num)d week", "%(num)d weeks"), flags=["python-format"])
    template.add("Unsubscribe")
    broken = Catalog(locale="fr")
    broken.add("Welcome to %(site_name)s", "Bienvenue à %(site)s")  # renamed placeholder
    broken.add(("%(num)d week", "%(num)d weeks"), ("%(num)d semaine", "", ""))
    broken.add("Gone", "Parti")
    assert problems(template, broken) == [
        "placeholders differ: 'Welcome to %(site_name)s' -> 'Bienvenue à %(site)s'",
        "untranslated: '%(num)d week'",
        "untranslated: '%(num)d week'",
        "missing: 'Unsubscribe'",
        "not in the code any more: 'Gone'",
    ]
