"""Path methods: integrated gradients and relatives, and NoiseTunnel."""
