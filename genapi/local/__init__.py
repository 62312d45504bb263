"""``python -m genapi.local``: the local stand-in for the Generative APIs (a test double, not the product)."""

from genapi.local.server import Knobs, StandIn, make_server

__all__ = ["Knobs", "StandIn", "make_server"]
