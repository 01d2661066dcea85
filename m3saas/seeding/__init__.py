"""Seeds for the master and tenant databases: `files` (the format), `runner` (applying them).

The services module authors and operators call are re-exported here.
"""

from m3saas.seeding.files import SeedError
from m3saas.seeding.runner import (
    SeedAction,
    SeedReport,
    seed_file_list,
    seeds_apply,
    seeds_run,
    seeds_temporary_apply,
    seeds_temporary_remove,
)

__all__ = [
    "SeedAction",
    "SeedError",
    "SeedReport",
    "seed_file_list",
    "seeds_apply",
    "seeds_run",
    "seeds_temporary_apply",
    "seeds_temporary_remove",
]
