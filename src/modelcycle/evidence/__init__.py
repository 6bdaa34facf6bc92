"""Documents for reviewers, computed from the registry and the audit trail: model cards and
signed evidence packs. Sits above the workspace's stages (it reads all of them) and below the
interfaces that serve it (CLI ``models card``, ``audit pack``; HTTP ``.../card``)."""

from modelcycle.evidence.card import build_card, card_html, card_markdown
from modelcycle.evidence.pack import build_pack, verify_pack

__all__ = ["build_card", "build_pack", "card_html", "card_markdown", "verify_pack"]
