"""Media I/O: video decoding and encoding."""
