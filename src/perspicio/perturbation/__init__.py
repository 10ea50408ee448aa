"""Perturbation attribution: the sweep engine, feature masks, ablation, occlusion, permutation,
Shapley values, LIME and Kernel SHAP."""
