"""The apps' Simplified Chinese catalogues: complete, their own, placeholders kept, compiled."""

import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings

BASE = Path(settings.BASE_DIR)
# catalogue folder -> (at least this many entries, msgids it must hold)
CATALOGUES = {
    "allocations": (300, set()),
    "federation": (150, {"Jobs", "Centres"}),  # the top bar's labels (portal/context_processors.py)
}


def po_entries(po: Path) -> list[dict]:
    """The entries of a gettext .po file: references, flags, context, msgid, plural, msgstr."""
    text = po.read_text(encoding="utf-8")
    entries = []
    for block in text.split("\n\n")[1:]:
        if "msgid" not in block:
            continue

        def field(name, block=block):
            match = re.search(rf"^{re.escape(name)} ((?:\".*\"\n?)+)", block + "\n", re.M)
            if not match:
                return None
            raw = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', match.group(1)))
            return raw.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")

        entries.append({
            "refs": " ".join(line[3:] for line in block.splitlines() if line.startswith("#: ")),
            "fuzzy": "#, fuzzy" in block,
            "obsolete": "#~" in block,
            "context": field("msgctxt"),
            "msgid": field("msgid"),
            "plural": field("msgid_plural"),
            "msgstr": field("msgstr") if field("msgstr") is not None else field("msgstr[0]"),
        })
    return entries


def _locale(app: str) -> Path:
    return BASE / app / "locale" / "zh_Hans" / "LC_MESSAGES"


@pytest.mark.parametrize("app", CATALOGUES)
def test_every_string_of_the_app_pages_has_a_chinese_translation(app):
    entries = po_entries(_locale(app) / "django.po")
    minimum, required = CATALOGUES[app]
    assert len(entries) > minimum
    untranslated = [e["msgid"] for e in entries if not e["msgstr"] or e["fuzzy"] or e["obsolete"]]
    assert untranslated == []
    assert required <= {e["msgid"] for e in entries}


@pytest.mark.parametrize("app", CATALOGUES)
def test_the_catalogue_holds_only_strings_of_its_app(app):
    for entry in po_entries(_locale(app) / "django.po"):
        for ref in entry["refs"].split():
            assert not ref.startswith(("..", "/")), ref
            assert ref.split(":")[0].endswith((".py", ".html")), ref


@pytest.mark.parametrize("app", CATALOGUES)
def test_translations_keep_their_placeholders(app):
    pattern = re.compile(r"%\(\w+\)s|\{\w+\}")
    for entry in po_entries(_locale(app) / "django.po"):
        assert sorted(pattern.findall(entry["msgid"])) == sorted(pattern.findall(entry["msgstr"])), entry["msgid"]


@pytest.mark.parametrize("app", CATALOGUES)
def test_the_compiled_catalogue_matches_the_po_file(app):
    with open(_locale(app) / "django.mo", "rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for entry in po_entries(_locale(app) / "django.po"):
        if entry["plural"]:
            assert compiled.ngettext(entry["msgid"], entry["plural"], 1) == entry["msgstr"], entry["msgid"]
        elif entry["context"]:
            assert compiled.pgettext(entry["context"], entry["msgid"]) == entry["msgstr"], entry["msgid"]
        else:
            assert compiled.gettext(entry["msgid"]) == entry["msgstr"], entry["msgid"]
