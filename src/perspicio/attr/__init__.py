"""Attribution methods with Captum-compatible names, signatures and defaults."""

from perspicio._core.attribution import (
    Attribution,
    GradientAttribution,
    LayerAttribution,
    NeuronAttribution,
    PerturbationAttribution,
)
from perspicio.attr import visualization as visualization
from perspicio.gradient.activation import LayerActivation, LayerGradientXActivation, NeuronGradient
from perspicio.gradient.cam import GuidedGradCam, LayerGradCam, vit_reshape
from perspicio.gradient.cam_free import LayerAblationCam, LayerEigenCam, LayerScoreCam
from perspicio.gradient.cam_gradient import (
    LayerCam,
    LayerGradCamPlusPlus,
    LayerHiResCam,
    LayerXGradCam,
)
from perspicio.gradient.input_x_gradient import InputXGradient
from perspicio.gradient.saliency import Saliency
from perspicio.path.conductance import InternalInfluence, LayerConductance, NeuronConductance
from perspicio.path.gradient_shap import GradientShap, LayerGradientShap, NeuronGradientShap
from perspicio.path.integrated_gradients import (
    IntegratedGradients,
    LayerIntegratedGradients,
    NeuronIntegratedGradients,
)
from perspicio.path.noise_tunnel import NoiseTunnel, NoiseTunnelType
from perspicio.perturbation.ablation import FeatureAblation, Occlusion
from perspicio.perturbation.dataloader import DataLoaderAttribution
from perspicio.perturbation.kernel_shap import KernelShap
from perspicio.perturbation.layer_ablation import (
    LayerFeatureAblation,
    LayerFeaturePermutation,
    NeuronFeatureAblation,
)
from perspicio.perturbation.lime import Lime, LimeBase
from perspicio.perturbation.permutation import FeaturePermutation
from perspicio.perturbation.shapley import ShapleyValues, ShapleyValueSampling
from perspicio.propagation.deep_lift import DeepLift, DeepLiftShap
from perspicio.propagation.guided import (
    Deconvolution,
    GuidedBackprop,
    NeuronDeconvolution,
    NeuronGuidedBackprop,
)
from perspicio.propagation.layer_deep_lift import (
    LayerDeepLift,
    LayerDeepLiftShap,
    NeuronDeepLift,
    NeuronDeepLiftShap,
)
from perspicio.propagation.lrp import LRP, LayerLRP
from perspicio.propagation.lrp_rules import (
    Alpha1_Beta0_Rule,
    EpsilonRule,
    GammaRule,
    IdentityRule,
    PropagationRule,
)
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
from perspicio.text.embedding import (
    InterpretableEmbeddingBase,
    TokenReferenceBase,
    configure_interpretable_embedding_layer,
    remove_interpretable_embedding_layer,
)

# isort: split
# LLM attribution wraps the methods above (imported last: it imports them from here).
from perspicio.llm.attribution import (
    DEFAULT_GEN_ARGS,
    ContrastiveTarget,
    LLMAttribution,
    LLMGradientAttribution,
)
from perspicio.llm.inputs import (
    ImageMaskInput,
    InterpretableInput,
    ProductBaselines,
    TextTemplateInput,
    TextTokenInput,
)
from perspicio.llm.remote import RemoteLLMAttribution, RemoteLLMProvider, VLLMProvider
from perspicio.llm.result import LLMAttributionResult

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
    # perturbation
    "DataLoaderAttribution",
    "FeatureAblation",
    "FeaturePermutation",
    "KernelShap",
    "Lime",
    "LimeBase",
    "Occlusion",
    "ShapleyValueSampling",
    "ShapleyValues",
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
    # layer and neuron
    "GuidedGradCam",
    "InternalInfluence",
    "InterpretableEmbeddingBase",
    "LayerActivation",
    "LayerConductance",
    "LayerDeepLift",
    "LayerDeepLiftShap",
    "LayerFeatureAblation",
    "LayerFeaturePermutation",
    "LayerGradCam",
    "LayerGradientShap",
    "LayerGradientXActivation",
    "LayerIntegratedGradients",
    "NeuronConductance",
    "NeuronDeconvolution",
    "NeuronDeepLift",
    "NeuronDeepLiftShap",
    "NeuronFeatureAblation",
    "NeuronGradient",
    "NeuronGradientShap",
    "NeuronGuidedBackprop",
    "NeuronIntegratedGradients",
    "TokenReferenceBase",
    "configure_interpretable_embedding_layer",
    "remove_interpretable_embedding_layer",
    # LRP
    "Alpha1_Beta0_Rule",
    "EpsilonRule",
    "GammaRule",
    "IdentityRule",
    "LRP",
    "LayerLRP",
    "PropagationRule",
    # the CAM family (perspicio extensions)
    "LayerAblationCam",
    "LayerCam",
    "LayerEigenCam",
    "LayerGradCamPlusPlus",
    "LayerHiResCam",
    "LayerScoreCam",
    "LayerXGradCam",
    "vit_reshape",
    # LLM attribution
    "ContrastiveTarget",
    "DEFAULT_GEN_ARGS",
    "ImageMaskInput",
    "InterpretableInput",
    "LLMAttribution",
    "LLMAttributionResult",
    "LLMGradientAttribution",
    "ProductBaselines",
    "RemoteLLMAttribution",
    "RemoteLLMProvider",
    "TextTemplateInput",
    "TextTokenInput",
    "VLLMProvider",
]
