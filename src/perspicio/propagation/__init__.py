"""Modified-backpropagation methods: rules, composites, DeepLift, LRP, Guided/Deconv."""
