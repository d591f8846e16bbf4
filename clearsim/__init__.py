"""clearsim: a cross-region medical-insurance clearing hub simulator."""

__version__ = "0.1.0"
