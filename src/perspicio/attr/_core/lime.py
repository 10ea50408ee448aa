"""``captum.attr._core.lime``'s names, where ported code imports LIME's helpers from.

Example:
    >>> from perspicio.attr._core.lime import Lime, get_exp_kernel_similarity_function
    >>> lime = Lime(lambda x: x.sum(1), similarity_func=get_exp_kernel_similarity_function())
"""

from perspicio.perturbation.kernel_shap import KernelShap
from perspicio.perturbation.lime import Lime, LimeBase
from perspicio.perturbation.lime_functions import (
    construct_feature_mask,
    default_from_interp_rep_transform,
    default_perturb_func,
    get_exp_kernel_similarity_function,
)

__all__ = [
    "KernelShap",
    "Lime",
    "LimeBase",
    "construct_feature_mask",
    "default_from_interp_rep_transform",
    "default_perturb_func",
    "get_exp_kernel_similarity_function",
]
