"""The input of one reconcile, parsed."""

import json
from typing import Any, Iterable, Optional

from .conditions import Condition, conditions_from_status
from .errors import permanent

#: The condition type the host owns; dropped from :meth:`Request.conditions`.
SYNCED_CONDITION = "Synced"


def _parse(what: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise permanent(f"{what} is not JSON: {e}") from None


class Request:
    """The parent, the observed children and the configuration of one reconcile."""

    def __init__(
        self,
        parent: dict[str, Any],
        observed: Optional[list[dict[str, Any]]] = None,
        finalizing: bool = False,
        config: Optional[dict[str, str]] = None,
    ) -> None:
        self.parent = parent
        self.observed = observed or []
        self.finalizing = finalizing
        self.config = config or {}

    @classmethod
    def from_json(
        cls,
        parent: str,
        observed: Iterable[str] = (),
        finalizing: bool = False,
        config: Iterable[tuple[str, str]] = (),
    ) -> "Request":
        """From the contract's JSON texts; raises a permanent error on bad JSON."""
        return cls(
            _parse("parent", parent),
            [_parse(f"observed child #{i + 1}", t) for i, t in enumerate(observed)],
            finalizing,
            dict(config),
        )

    @property
    def metadata(self) -> dict[str, Any]:
        md = self.parent.get("metadata") if isinstance(self.parent, dict) else None
        return md if isinstance(md, dict) else {}

    @property
    def name(self) -> str:
        return self.metadata.get("name") or ""

    @property
    def namespace(self) -> Optional[str]:
        """None for cluster-scoped kinds."""
        return self.metadata.get("namespace")

    @property
    def uid(self) -> Optional[str]:
        return self.metadata.get("uid")

    @property
    def generation(self) -> Optional[int]:
        """``metadata.generation``, for ``observedGeneration``."""
        g = self.metadata.get("generation")
        return g if isinstance(g, int) and not isinstance(g, bool) else None

    @property
    def spec(self) -> Any:
        return self.parent.get("spec") if isinstance(self.parent, dict) else None

    @property
    def status(self) -> Any:
        """The parent's current status, as the plugin and the host last wrote it."""
        return self.parent.get("status") if isinstance(self.parent, dict) else None

    def conditions(self) -> list[Condition]:
        """The previous conditions without the host-owned ``Synced`` one."""
        return [c for c in conditions_from_status(self.status) if c["type"] != SYNCED_CONDITION]

    def observed_of(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.observed if o.get("apiVersion") == api_version and o.get("kind") == kind]

    def find_observed(self, api_version: str, kind: str, name: str) -> Optional[dict[str, Any]]:
        """The observed child with this apiVersion, kind and name."""
        for o in self.observed_of(api_version, kind):
            if (o.get("metadata") or {}).get("name") == name:
                return o
        return None

    def config_value(self, key: str) -> Optional[str]:
        return self.config.get(key)
