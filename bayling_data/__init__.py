"""bayling-data: cross-lingual instruction data around Chinese and English pivots."""

__version__ = "0.1.0"
