"""OpenAPI naming for the nested Input/Output serializer convention (DESIGN.md, "Layout").

Every view nests its serializers as `InputSerializer` / `OutputSerializer`; drf-spectacular would
name them all "Input" and "Output" and collide. Name them after their view instead:
`DocumentListCreateApi.InputSerializer` becomes `DocumentListCreateInput`.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema


class CitableAutoSchema(AutoSchema):
    def get_serializer_name(self, serializer, direction):
        name = super().get_serializer_name(serializer, direction)
        qualname = type(serializer).__qualname__.split(".")
        if len(qualname) >= 2 and name in {"InputSerializer", "OutputSerializer"}:
            outer = qualname[-2].removesuffix("Api").removesuffix("View")
            return f"{outer}{name}"
        return name
