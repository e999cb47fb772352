"""Certification suite: the error bound against an extended-precision truth reference."""
