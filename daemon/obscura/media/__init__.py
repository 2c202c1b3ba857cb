"""Media I/O: decoding and re-encoding of video files."""
