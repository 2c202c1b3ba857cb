"""Obscura: an edge daemon that detects and anonymizes faces, plates, persons and vehicles."""

__version__ = "0.1.0"
