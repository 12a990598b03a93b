"""temporal_nsr: temporally equivariant neural scene representations."""

__version__ = "0.1.0"
