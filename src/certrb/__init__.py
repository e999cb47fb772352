"""certrb: certified reduced basis models with round-off-robust error bounds."""

from .affine import AffineFunctional, AffineOperator
from .basis import extend, gram_schmidt, pod
from .eim import deim, eim_greedy, interpolation_coefficients_ls, remove_point, symmetric_eim
from .errors import (
    CertRBError,
    EstimatorError,
    InnerProductError,
    ModelFileError,
    ParameterError,
    ShapeError,
    StabilityError,
)
from .estimators.base import ESTIMATOR_NAMES
from .greedy import GreedyResult, GreedyStep, weak_greedy
from .innerproduct import InnerProduct
from .io import load, save
from .matrix_eim import MatrixEIM, matrix_eim, vector_eim
from .nonaffine import eim_functional, eim_operator, interpolation_indicator
from .parallel import ParallelMap, solve_snapshots
from .parameters import ParameterSpace
from .problem import Problem, dual_problem
from .reduce import OfflineBuilder, reduce
from .rom import OnlineResult, ReducedModel
from .scm import SCM
from .stability import MinTheta
from .truth import true_error, truth_residual_norm

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

__version__ = "0.1.0"
