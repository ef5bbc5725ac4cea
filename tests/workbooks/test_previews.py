"""Generated previews (issue 18 §1): one distinct, deterministic chart per workbook, small and inline."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from django.urls import reverse

from tests.factories import TagFactory, WorkbookFactory
from workbooks import previews


def svg(workbook_id: int, slugs=(), colour="#2456d3") -> str:
    return str(
        previews.preview_svg(workbook_id=workbook_id, tag_slugs=slugs, colour=colour, width=640, height=360)
    )


def test_previews_are_deterministic_valid_and_small():
    for pk in range(1, 200):
        first = svg(pk)
        assert first == svg(pk)
        ET.fromstring(first)  # well-formed
        assert len(first) < 700, (pk, len(first))
        assert 'width="640" height="360"' in first


def test_every_kind_occurs_and_shapes_differ_between_workbooks():
    kinds = {previews.chart_kind(pk, ()) for pk in range(1, 60)}
    assert kinds == set(previews.KINDS)
    bars = [svg(pk, ["sales"]) for pk in range(1, 30)]
    assert all('data-chart="bar"' in s for s in bars)
    assert len(set(bars)) == len(bars)  # same kind, different shape


@pytest.mark.parametrize(
    ("slugs", "kind"),
    [(["geo-analytics"], "map"), (["finance"], "area"), (["cohort-analysis"], "table"), (["sales"], "bar"),
     (["web-analytics", "zzz"], "line"), (["pricing"], "scatter")],
)  # fmt: skip
def test_tags_choose_the_kind(slugs, kind):
    assert previews.chart_kind(7, slugs) == kind
    assert f'data-chart="{kind}"' in svg(7, slugs)


@pytest.mark.django_db
def test_home_cards_show_varied_previews_in_the_tag_colour(client):
    for i, name in enumerate(["sales", "finance", "geo", "cohorts", "pricing", "traffic"]):
        WorkbookFactory(tags=[TagFactory(name=name, colour=f"#0{i}0{i}0{i}")])
    html = client.get(reverse("home")).content.decode()
    charts = re.findall(r'data-chart="(\w+)"', html)
    assert len(set(charts)) >= 5
    assert 'fill="#010101"' in html or 'stroke="#010101"' in html
