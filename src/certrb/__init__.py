"""certrb: certified reduced basis models with round-off-robust error bounds."""

from .affine import AffineFunctional, AffineOperator
from .basis import extend, gram_schmidt, pod
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
from .parameters import ParameterSpace
from .problem import Problem, dual_problem
from .reduce import OfflineBuilder, reduce
from .rom import OnlineResult, ReducedModel
from .stability import MinTheta
from .truth import true_error, truth_residual_norm

__all__ = [
    "ESTIMATOR_NAMES",
    "AffineFunctional",
    "AffineOperator",
    "CertRBError",
    "EstimatorError",
    "GreedyResult",
    "GreedyStep",
    "InnerProduct",
    "InnerProductError",
    "MinTheta",
    "ModelFileError",
    "OfflineBuilder",
    "OnlineResult",
    "ParameterError",
    "ParameterSpace",
    "Problem",
    "ReducedModel",
    "ShapeError",
    "StabilityError",
    "dual_problem",
    "extend",
    "gram_schmidt",
    "load",
    "pod",
    "reduce",
    "save",
    "true_error",
    "truth_residual_norm",
    "weak_greedy",
]

__version__ = "0.1.0"
