"""Exceptions raised by certrb.

Every failure specific to the library derives from :class:`CertRBError`. Bad
arguments raise :class:`ValueError` / :class:`TypeError` subclasses so that
callers catching the built-in types keep working.
"""

from __future__ import annotations


class CertRBError(Exception):
    """Base class of all certrb-specific failures."""


class ParameterError(CertRBError, ValueError):
    """A parameter batch is malformed: wrong shape, NaN, or outside the domain."""


class ShapeError(CertRBError, ValueError):
    """Arrays or operators have inconsistent sizes."""


class InnerProductError(CertRBError, ValueError):
    """The inner-product matrix is not Hermitian positive definite."""


class EstimatorError(CertRBError, ValueError):
    """Unknown estimator name, or an estimator that cannot serve the request."""


class StabilityError(CertRBError, ValueError):
    """A stability lower bound cannot be computed or is not positive."""


class ModelFileError(CertRBError, OSError):
    """A model file is unreadable, of an unknown version, or corrupted."""


class ExpressionError(CertRBError, ValueError):
    """A coefficient expression is outside the grammar of :mod:`certrb.online.expressions`."""


class InteropError(CertRBError, ValueError):
    """A model from another library (pyMOR) holds a piece that certrb cannot translate exactly."""


class SpecError(CertRBError, ValueError):
    """A problem spec (TOML file and the matrix files it names) is invalid; the message names section, key, file."""
