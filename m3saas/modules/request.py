"""`ModuleRequest`: the DRF request of a module view, typed with what the platform adds to it.

The middleware sets `module_version` (the full version asked for) and `api_key` (the caller's
key, or None) on the request; DRF's request reaches them through its Django request. The type
checker learns of them here (djangorestframework-stubs 3.16.7+ no longer types unknown
attributes as `Any`); at run time it is DRF's `Request` itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.request import Request

if TYPE_CHECKING:
    from m3saas.access import ApiKeyInfo
    from m3saas.modules.versions import Version

    class ModuleRequest(Request):
        module_version: Version
        api_key: ApiKeyInfo | None

else:
    ModuleRequest = Request

__all__ = ["ModuleRequest"]
