"""Files API over real HTTP: upload, list, retrieve, content, delete, expiry, as OpenAI shapes them."""

import time

import openai
import pytest

from tests.api.conftest import Tenant
from tests.api.helpers import FILE_KEYS, LIST_KEYS, assert_error, upload

BROKER_OPTIONS = {"workers": False, "planner": False}  # no batch runs here


def _leftovers(tenant: Tenant) -> list[str]:
    """Upload temp files left in the data dir (a refused upload must not leave any)."""
    return [p.name for p in tenant.broker.settings.files_dir.iterdir() if p.name.startswith(".upload-")]


def test_upload_returns_exact_file_object(tenant: Tenant) -> None:
    content = b'{"custom_id": "a"}\n{"custom_id": "b"}\n'
    before = int(time.time())
    resp = upload(tenant.http, content, filename="my input.jsonl")
    after = int(time.time())
    assert resp.status_code == 200, resp.text
    obj = resp.json()
    assert set(obj) == FILE_KEYS
    assert obj["id"].startswith("file")
    assert obj["object"] == "file"
    assert obj["bytes"] == len(content)
    assert before <= obj["created_at"] <= after
    assert obj["filename"] == "my input.jsonl"
    assert obj["purpose"] == "batch"
    assert obj["status"] == "processed"
    assert obj["expires_at"] == obj["created_at"] + 30 * 86_400  # OpenAI's default for batch files
    assert obj["status_details"] is None
    # the same object comes back from retrieve, and through the SDK
    assert tenant.http.get(f"/files/{obj['id']}").json() == obj
    sdk = tenant.client.files.retrieve(obj["id"])
    assert sdk.model_dump() == obj


def test_sdk_upload_keeps_purpose_and_unicode_filename(tenant: Tenant) -> None:
    f = tenant.client.files.create(file=("données-é.jsonl", b"{}\n"), purpose="user_data")
    assert (f.filename, f.purpose, f.bytes) == ("données-é.jsonl", "user_data", 3)


@pytest.mark.parametrize(("purpose", "fields", "param"), [
    (None, {}, "purpose"),
    ("", {}, "purpose"),
    ("bogus", {}, "purpose"),
    ("batch_output", {}, "purpose"),  # written by the broker, never uploaded
    ("batch", {"expires_after[anchor]": "last_accessed_at", "expires_after[seconds]": "3600"},
     "expires_after.anchor"),
    ("batch", {"expires_after[seconds]": "3599"}, "expires_after.seconds"),
    ("batch", {"expires_after[seconds]": "2592001"}, "expires_after.seconds"),
    ("batch", {"expires_after[seconds]": "an hour"}, "expires_after.seconds"),
])
def test_bad_upload_fields_are_400_and_leave_nothing(tenant: Tenant, purpose: str | None, fields: dict[str, str],
                                                      param: str) -> None:
    assert_error(upload(tenant.http, b"{}\n", purpose=purpose, **fields), 400, param=param)
    assert tenant.http.get("/files").json()["data"] == []
    assert _leftovers(tenant) == []


def test_upload_without_file_part_is_400(tenant: Tenant) -> None:
    resp = tenant.http.post("/files", data={"purpose": "batch"}, files={"other": ("x", b"x")})
    assert_error(resp, 400, param="file")
    resp = tenant.http.post("/files", json={"purpose": "batch"})  # not multipart at all
    assert_error(resp, 400)
    assert tenant.http.get("/files").json()["data"] == []


def test_sdk_bad_purpose_raises_bad_request(tenant: Tenant) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        tenant.client.files.create(file=("x.jsonl", b"{}\n"), purpose="nonsense")  # type: ignore[arg-type]
    assert info.value.status_code == 400
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "purpose"


def test_expires_after_sets_expires_at(tenant: Tenant) -> None:
    f = tenant.client.files.create(file=("x.jsonl", b"{}\n"), purpose="batch",
                                   expires_after={"anchor": "created_at", "seconds": 7200})
    assert f.expires_at == f.created_at + 7200
    raw = upload(tenant.http, b"{}\n", **{"expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"})
    assert raw.status_code == 200, raw.text
    assert raw.json()["expires_at"] == raw.json()["created_at"] + 3600
    assert tenant.client.files.retrieve(f.id).expires_at == f.expires_at


def test_content_returns_the_exact_bytes(tenant: Tenant) -> None:
    content = bytes(range(256)) * 17 + b"\r\n\x00 trailing, no newline"
    f = tenant.client.files.create(file=("blob.bin", content), purpose="user_data")
    assert f.bytes == len(content)
    resp = tenant.http.get(f"/files/{f.id}/content")
    assert resp.status_code == 200
    assert resp.content == content
    assert int(resp.headers["content-length"]) == len(content)
    assert tenant.client.files.content(f.id).content == content


def test_list_paginates_with_cursor_order_and_purpose(tenant: Tenant) -> None:
    purposes = ["batch", "user_data", "batch", "batch", "user_data"]
    ids = [upload(tenant.http, f"{i}\n".encode(), purpose=p).json()["id"] for i, p in enumerate(purposes)]
    newest_first = ids[::-1]

    full = tenant.http.get("/files").json()
    assert set(full) == LIST_KEYS and full["object"] == "list"
    assert [f["id"] for f in full["data"]] == newest_first
    assert (full["first_id"], full["last_id"], full["has_more"]) == (ids[-1], ids[0], False)
    assert all(set(f) == FILE_KEYS for f in full["data"])

    page1 = tenant.http.get("/files", params={"limit": 2}).json()
    assert [f["id"] for f in page1["data"]] == newest_first[:2]
    assert (page1["first_id"], page1["last_id"], page1["has_more"]) == (newest_first[0], newest_first[1], True)
    page2 = tenant.http.get("/files", params={"limit": 2, "after": page1["last_id"]}).json()
    assert [f["id"] for f in page2["data"]] == newest_first[2:4] and page2["has_more"] is True
    page3 = tenant.http.get("/files", params={"limit": 2, "after": page2["last_id"]}).json()
    assert [f["id"] for f in page3["data"]] == newest_first[4:] and page3["has_more"] is False
    assert page3["first_id"] == page3["last_id"] == ids[0]

    asc = tenant.http.get("/files", params={"order": "asc", "limit": 3}).json()
    assert [f["id"] for f in asc["data"]] == ids[:3] and asc["has_more"] is True
    asc2 = tenant.http.get("/files", params={"order": "asc", "after": asc["last_id"]}).json()
    assert [f["id"] for f in asc2["data"]] == ids[3:] and asc2["has_more"] is False

    batch_only = tenant.http.get("/files", params={"purpose": "batch"}).json()
    batch_ids = [i for i, p in zip(ids, purposes, strict=True) if p == "batch"]
    assert [f["id"] for f in batch_only["data"]] == batch_ids[::-1]
    user_page = tenant.http.get("/files", params={"purpose": "user_data", "limit": 1}).json()
    assert [f["id"] for f in user_page["data"]] == [ids[4]] and user_page["has_more"] is True

    # the SDK follows the cursor by itself
    assert [f.id for f in tenant.client.files.list(limit=2)] == newest_first
    assert [f.id for f in tenant.client.files.list(purpose="user_data", order="asc")] == [ids[1], ids[4]]


def test_empty_list_and_bad_list_params(tenant: Tenant) -> None:
    empty = tenant.http.get("/files").json()
    assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
    assert_error(tenant.http.get("/files", params={"limit": 0}), 400, param="limit")
    assert_error(tenant.http.get("/files", params={"limit": 10_001}), 400, param="limit")
    assert_error(tenant.http.get("/files", params={"order": "sideways"}), 400, param="order")


def test_delete_then_file_is_gone(tenant: Tenant) -> None:
    keep = upload(tenant.http, b"keep\n").json()["id"]
    gone = upload(tenant.http, b"gone\n").json()["id"]
    resp = tenant.http.delete(f"/files/{gone}")
    assert resp.status_code == 200
    assert resp.json() == {"id": gone, "object": "file", "deleted": True}
    assert_error(tenant.http.get(f"/files/{gone}"), 404)
    assert_error(tenant.http.get(f"/files/{gone}/content"), 404)
    assert_error(tenant.http.delete(f"/files/{gone}"), 404)
    assert [f["id"] for f in tenant.http.get("/files").json()["data"]] == [keep]
    assert not (tenant.broker.settings.files_dir / gone).exists()
    assert tenant.http.get(f"/files/{keep}/content").content == b"keep\n"
    with pytest.raises(openai.NotFoundError):
        tenant.client.files.retrieve(gone)
    deleted = tenant.client.files.delete(keep)
    assert (deleted.id, deleted.deleted) == (keep, True)


def test_unknown_file_is_404_envelope(tenant: Tenant) -> None:
    for resp in (tenant.http.get("/files/file_doesnotexist"), tenant.http.get("/files/file_doesnotexist/content"),
                 tenant.http.delete("/files/file_doesnotexist")):
        error = assert_error(resp, 404)
        assert "file_doesnotexist" in error["message"]
