"""certrb: certified reduced basis models with round-off-robust error bounds.

The package is split by stage: :mod:`certrb.online` (the reduced model and everything it
evaluates with: small arrays only) and :mod:`certrb.offline` (truth problems, builders,
greedies, certificates). Online code never imports offline code.
"""

from importlib.metadata import PackageNotFoundError, version

from .errors import (
    CertRBError,
    EstimatorError,
    InnerProductError,
    ModelFileError,
    ParameterError,
    ShapeError,
    StabilityError,
)
from .io import load, save
from .offline.affine import AffineFunctional, AffineOperator
from .offline.basis import extend, gram_schmidt, pod
from .offline.builder import OfflineBuilder
from .offline.eim import deim, eim_greedy, interpolation_coefficients_ls, remove_point, symmetric_eim
from .offline.greedy import GreedyResult, GreedyStep, weak_greedy
from .offline.innerproduct import InnerProduct
from .offline.matrix_eim import MatrixEIM, matrix_eim, vector_eim
from .offline.nonaffine import eim_functional, eim_operator, interpolation_indicator
from .offline.problem import Problem, dual_problem
from .offline.reduce import reduce
from .offline.scm import SCM
from .offline.snapshots import solve_snapshots
from .offline.stability import MinTheta
from .offline.truth import true_error, truth_residual_norm
from .online.estimators import ESTIMATOR_NAMES
from .online.evaluate import OnlineResult
from .online.model import ReducedModel
from .online.parameters import ParameterSpace
from .parallel import ParallelMap

__all__ = [
    "ESTIMATOR_NAMES",
    "SCM",
    "AffineFunctional",
    "AffineOperator",
    "CertRBError",
    "EstimatorError",
    "GreedyResult",
    "GreedyStep",
    "InnerProduct",
    "InnerProductError",
    "MatrixEIM",
    "MinTheta",
    "ModelFileError",
    "OfflineBuilder",
    "OnlineResult",
    "ParallelMap",
    "ParameterError",
    "ParameterSpace",
    "Problem",
    "ReducedModel",
    "ShapeError",
    "StabilityError",
    "deim",
    "dual_problem",
    "eim_functional",
    "eim_greedy",
    "eim_operator",
    "extend",
    "gram_schmidt",
    "interpolation_coefficients_ls",
    "interpolation_indicator",
    "load",
    "matrix_eim",
    "pod",
    "reduce",
    "remove_point",
    "save",
    "solve_snapshots",
    "symmetric_eim",
    "true_error",
    "truth_residual_norm",
    "vector_eim",
    "weak_greedy",
]

try:
    __version__ = version("certrb")
except PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0+unknown"
