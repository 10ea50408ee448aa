"""Attribution methods with Captum-compatible names, signatures and defaults."""

from perspicio._core.attribution import (
    Attribution,
    GradientAttribution,
    LayerAttribution,
    NeuronAttribution,
    PerturbationAttribution,
)
from perspicio.attr import visualization as visualization
from perspicio.gradient.input_x_gradient import InputXGradient
from perspicio.gradient.saliency import Saliency
from perspicio.path.gradient_shap import GradientShap
from perspicio.path.integrated_gradients import IntegratedGradients
from perspicio.path.noise_tunnel import NoiseTunnel, NoiseTunnelType
from perspicio.propagation.deep_lift import DeepLift, DeepLiftShap
from perspicio.propagation.guided import Deconvolution, GuidedBackprop
from perspicio.summary import (
    MSE,
    ClassSummarizer,
    CommonStats,
    Count,
    Max,
    Mean,
    Min,
    StatValue,
    StdDev,
    Sum,
    Summarizer,
    SummarizerSingleTensor,
    Var,
)

__all__ = [
    "Attribution",
    "Deconvolution",
    "DeepLift",
    "DeepLiftShap",
    "GradientAttribution",
    "GradientShap",
    "GuidedBackprop",
    "InputXGradient",
    "IntegratedGradients",
    "LayerAttribution",
    "NeuronAttribution",
    "NoiseTunnel",
    "NoiseTunnelType",
    "PerturbationAttribution",
    "Saliency",
    # summaries
    "ClassSummarizer",
    "CommonStats",
    "Count",
    "MSE",
    "Max",
    "Mean",
    "Min",
    "StatValue",
    "StdDev",
    "Sum",
    "Summarizer",
    "SummarizerSingleTensor",
    "Var",
    "visualization",
]
