"""HiveMQ file-RBAC `credentials.xml`: one `<tenant name>/#`-scoped broker user per tenant.

The extension's password hashes are `base64(salt):iterations:base64(PBKDF2-HMAC-SHA512(password,
salt, iterations, 64 bytes))`, so no broker container is needed to hash a password.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import secrets
import string
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from m3saas.identifiers import is_digits
from m3saas.passwords import password_decrypt
from m3saas.tenancy.info import TenantInfo

DEFAULT_HASH_ITERATIONS = 10_000
# The extension derives 512 bits (PKCS5S2 with SHA-512) and compares the whole key.
HASH_KEY_BYTES = 64
TENANT_ROLE = "tenant-scoped"
TENANT_TOPIC = "${{username}}/#"
MANAGED_MARK = "managed by manage.py mqtt_credentials"


class MQTTPasswordSource(enum.StrEnum):
    """Where a tenant's broker password comes from."""

    DERIVED = "derived"  # HMAC-SHA256(dbSalt, tenant password): never the database password
    TENANT = "tenant"  # the tenant password itself


def mqtt_password_hash(*, password: str, salt: str | None = None, iterations: int = DEFAULT_HASH_ITERATIONS) -> str:
    """`base64(salt):iterations:base64(PBKDF2-HMAC-SHA512(password, salt, iterations, 64 bytes))`.

    `salt` is base64; by default 32 random letters and digits, as the extension's own tool makes.
    """
    if not password:
        raise ValueError("the password is empty")
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    if salt is None:
        alphabet = string.ascii_letters + string.digits
        salt = base64.b64encode("".join(secrets.choice(alphabet) for _ in range(32)).encode()).decode()
    salt_bytes = _b64decode(salt, what="salt")
    key = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt_bytes, iterations, HASH_KEY_BYTES)
    return f"{salt}:{iterations}:{base64.b64encode(key).decode()}"


def mqtt_password_verify(*, password: str, encoded: str) -> bool:
    """Whether `password` matches a file-RBAC hash, compared as the extension compares it."""
    parts = encoded.strip().split(":")
    if len(parts) != 3 or not is_digits(parts[1]) or int(parts[1]) < 1:
        return False
    try:
        salt, expected = _b64decode(parts[0], what="salt"), _b64decode(parts[2], what="hash")
    except ValueError:
        return False
    key = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(parts[1]), HASH_KEY_BYTES)
    return hmac.compare_digest(key, expected)


def _b64decode(value: str, *, what: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"the {what} is not base64: {value!r}") from exc


def mqtt_tenant_password(*, tenant: TenantInfo, source: str = MQTTPasswordSource.DERIVED) -> str:
    """The MQTT password of the tenant's broker user.

    `derived`: HMAC-SHA256 of the tenant password keyed with `dbSalt` (not the database
    password, which it never equals); `tenant`: the tenant password itself.
    """
    if source not in (MQTTPasswordSource.TENANT, MQTTPasswordSource.DERIVED):
        raise ValueError(f"password source is one of {', '.join(MQTTPasswordSource)}, not {source!r}")
    clear = password_decrypt(tenant.password)
    if source == MQTTPasswordSource.TENANT:
        return clear
    key = settings.M3SAAS_CONFIG.db_salt.encode("utf-8")
    return hmac.new(key, b"mqtt\0" + clear.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass
class CredentialsChange:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # a user of that name exists and is not ours
    written: bool = False


_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
_EMPTY_CREDENTIALS = f"{_XML_DECLARATION}\n<file-rbac><users/><roles/></file-rbac>\n"


def mqtt_credentials_write(
    *,
    path: Path,
    tenants: Iterable[TenantInfo],
    password_source: str = MQTTPasswordSource.DERIVED,
    iterations: int = DEFAULT_HASH_ITERATIONS,
) -> CredentialsChange:
    """Make `credentials.xml` hold one `<tenant name>/#`-scoped user per tenant.

    Users and roles it did not create are kept as they are; a user it created is marked with
    a comment and removed when its tenant is gone. An entry whose hash still matches is left
    alone, and the file is rewritten only when something changed (in place, so a bind-mounted
    file stays the broker's file).
    """
    text = path.read_text(encoding="utf-8") if path.exists() else _EMPTY_CREDENTIALS
    root = ET.fromstring(text, parser=ET.XMLParser(target=ET.TreeBuilder(insert_comments=True)))  # noqa: S314
    if root.tag != "file-rbac":
        raise ValueError(f"{path}: the root element is <{root.tag}>, not <file-rbac>")
    users = _child(root, "users", index=0)
    roles = _child(root, "roles")
    change = CredentialsChange()
    if _ensure_tenant_role(roles):
        change.written = True

    existing = {(u.findtext("name") or "").strip(): u for u in users.findall("user")}
    wanted = {t.name: mqtt_tenant_password(tenant=t, source=password_source) for t in tenants}
    for name, password in sorted(wanted.items()):
        current = existing.get(name)
        if current is None:
            users.append(_user_element(name, password, iterations))
            change.added.append(name)
        elif not _is_managed(current):
            change.skipped.append(name)
        elif _role_ids(current) == [TENANT_ROLE] and mqtt_password_verify(
            password=password, encoded=current.findtext("password") or ""
        ):
            change.unchanged.append(name)
        else:
            users.insert(list(users).index(current), _user_element(name, password, iterations))
            users.remove(current)
            change.updated.append(name)
    for name, current in existing.items():
        if name not in wanted and _is_managed(current):
            users.remove(current)
            change.removed.append(name)

    if change.added or change.updated or change.removed:
        change.written = True
    if change.written:
        ET.indent(root, space="    ")
        body = ET.tostring(root, encoding="unicode")
        path.parent.mkdir(parents=True, exist_ok=True)
        # In place, not a rename: a file bind-mounted into the broker's container keeps its inode.
        with path.open("w", encoding="utf-8") as out:
            out.write(f"{_XML_DECLARATION}\n{body}\n")
    return change


def _child(root: ET.Element, tag: str, *, index: int | None = None) -> ET.Element:
    found = root.find(tag)
    if found is None:
        found = ET.Element(tag)
        if index is None:
            root.append(found)
        else:
            root.insert(index, found)
    return found


def _is_managed(user: ET.Element) -> bool:
    return any(child.tag is ET.Comment and MANAGED_MARK in (child.text or "") for child in user)


def _role_ids(user: ET.Element) -> list[str]:
    return [(r.text or "").strip() for r in user.findall("roles/id")]


def _user_element(name: str, password: str, iterations: int) -> ET.Element:
    user = ET.Element("user")
    user.append(ET.Comment(f" {MANAGED_MARK}: tenant {name} "))
    ET.SubElement(user, "name").text = name
    ET.SubElement(user, "password").text = mqtt_password_hash(password=password, iterations=iterations)
    ET.SubElement(ET.SubElement(user, "roles"), "id").text = TENANT_ROLE
    return user


def _ensure_tenant_role(roles: ET.Element) -> bool:
    """Add the `<username>/#`-scoped role when missing; True when added."""
    for role in roles.findall("role"):
        if (role.findtext("id") or "").strip() == TENANT_ROLE:
            return False
    role = ET.SubElement(roles, "role")
    role.append(ET.Comment(f" {MANAGED_MARK}: each tenant user may use <username>/# only "))
    ET.SubElement(role, "id").text = TENANT_ROLE
    ET.SubElement(ET.SubElement(ET.SubElement(role, "permissions"), "permission"), "topic").text = TENANT_TOPIC
    return True
