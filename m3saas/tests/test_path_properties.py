"""Properties of the path parser: any path or version string is parsed or refused, never an exception."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from m3saas.exceptions import NotFoundError
from m3saas.modules.versions import VERSION_RE, Version
from m3saas.tenancy.context import TenantInfo
from m3saas.tenancy.paths import resolve_module_version, tenant_path_regex

# Bounded and reproducible: the same examples on every run, in CI too.
bounded = settings(max_examples=300, deadline=None, derandomize=True, database=None)

digits = st.text(alphabet="0123456789", min_size=1, max_size=12)
versions = st.lists(st.integers(min_value=0, max_value=10**9 - 1), min_size=1, max_size=4).map(
    lambda parts: ".".join(map(str, parts))
)
path_texts = st.text(alphabet=st.sampled_from("0123456789/v.test-x\x00\n %é"), max_size=40) | st.text(max_size=40)


TENANT = TenantInfo(id=1, name="t1", user="t1", password="secret", modules=(("test", 1),))


@bounded
@given(path=path_texts, sub_directory=st.sampled_from(["", "api", "api/saas"]))
@example(path="/" + "9" * 5_000 + "/test/v1/animals", sub_directory="")
def test_any_path_matches_or_not_without_an_exception(path, sub_directory):
    match = tenant_path_regex(sub_directory).match(path)
    if match is not None:
        assert int(match["tenant"]) >= 0  # a tenant id the middleware can always convert
        assert "/" not in match["module"]


@bounded
@given(tenant_id=digits, module=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10))
def test_a_tenant_path_gives_back_its_parts(tenant_id, module):
    match = tenant_path_regex("").match(f"/{tenant_id}/{module}/v1/animals")
    assert match is not None
    assert (match["tenant"], match["module"], match["version"]) == (tenant_id, module, "v1")


@bounded
@given(segment=st.one_of(st.none(), st.text(max_size=30), st.builds(lambda d: "v" + d, digits)))
@example(segment="v" + "1" * 5_000)
@example(segment="v1." + "1" * 5_000)
def test_any_version_segment_is_served_or_refused_with_a_404(segment):
    try:
        version = resolve_module_version(TENANT, "test", segment)
    except NotFoundError:
        return
    assert version.major == 1
    assert segment == f"v{version}"


@bounded
@given(text=st.text(max_size=30) | versions)
@example(text="1" * 5_000)
@example(text="1\n")
def test_any_version_string_parses_or_is_refused_with_a_value_error(text):
    try:
        version = Version(text)
    except ValueError:
        assert not VERSION_RE.fullmatch(text)
        return
    assert str(version) == text
    assert version == Version(text)


@bounded
@given(minor=st.text(alphabet="0123456789.", max_size=8))
def test_v10_never_selects_v1(minor):
    match = tenant_path_regex("").match(f"/1/test/v10{minor}/x")
    assert match is not None and match["version"].startswith("v10")
    with pytest.raises(NotFoundError):
        resolve_module_version(TENANT, "test", f"v10{minor}")


@bounded
@given(a=versions, b=versions, c=versions)
def test_version_ordering_is_consistent(a, b, c):
    va, vb, vc = Version(a), Version(b), Version(c)
    assert (va < vb) + (va == vb) + (va > vb) == 1  # exactly one holds
    if va == vb:
        assert hash(va) == hash(vb)
    if va <= vb <= vc:
        assert va <= vc
    assert (va < vb) == (va.parts + (0,) * 4 < vb.parts + (0,) * 4)  # numeric, trailing zeros ignored
    assert Version(a + ".0") == va
