"""Obscura's measuring tools, apart from the daemon: ``obscura bench`` (speed against its own
ceiling and a peer), ``obscura flicker`` (faces flashing into view on video), ``obscura eval``
(recall and precision on annotated images) and ``obscura plates build`` (the composite plate
benchmark). The ``obscura`` command loads them when this distribution is installed."""
