"""The offline stage: truth problems, bases, builders, greedies, certificates.

Offline modules may import :mod:`certrb.online`; the reverse never happens.
"""
